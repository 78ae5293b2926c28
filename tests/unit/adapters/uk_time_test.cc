#include "gw/adapters/uk_time.h"

#include <gtest/gtest.h>

namespace gw::adapters {
namespace {

TEST(UkTimeTest, SettlementDayLengths) {
  EXPECT_EQ(SettlementPeriods(2026, 7, 15), 48);
  EXPECT_EQ(SettlementPeriods(2026, 3, 29), 46);   // clocks go forward
  EXPECT_EQ(SettlementPeriods(2026, 10, 25), 50);  // clocks go back
  EXPECT_EQ(SettlementPeriods(2025, 3, 30), 46);
  EXPECT_EQ(SettlementPeriods(2025, 10, 26), 50);
  EXPECT_EQ(SettlementPeriods(2025, 10, 25), 48);
}

TEST(UkTimeTest, MidnightOfAClockChangeDayInUtc) {
  // FORMATS.md: settlement day 2026-10-25 runs from 2026-10-24T23:00Z to 2026-10-26T00:00Z.
  EXPECT_EQ(FormatUtcOffset(UkMidnightUtc(2026, 10, 25)), "2026-10-24T23:00:00+00:00");
  EXPECT_EQ(FormatUtcOffset(UkMidnightUtc(2026, 10, 26)), "2026-10-26T00:00:00+00:00");
  EXPECT_EQ(FormatUtcOffset(UkMidnightUtc(2026, 3, 29)), "2026-03-29T00:00:00+00:00");
  EXPECT_EQ(FormatUtcOffset(UkMidnightUtc(2026, 3, 30)), "2026-03-29T23:00:00+00:00");
}

TEST(UkTimeTest, LocalTimesGetTheOffsetInForce) {
  EXPECT_EQ(UkLocalToIsoOffset(2026, 1, 10, 12, 0, 0), "2026-01-10T12:00:00+00:00");
  EXPECT_EQ(UkLocalToIsoOffset(2026, 7, 10, 12, 0, 0), "2026-07-10T12:00:00+01:00");
}

TEST(UkTimeTest, CalendarValidity) {
  EXPECT_TRUE(IsValidDate(2024, 2, 29));
  EXPECT_FALSE(IsValidDate(2026, 2, 29));
  EXPECT_FALSE(IsValidDate(1900, 2, 29));
  EXPECT_TRUE(IsValidDate(2000, 2, 29));
  EXPECT_FALSE(IsValidDate(2026, 4, 31));
  EXPECT_FALSE(IsValidDate(2026, 13, 1));
  int y, m, d;
  CivilFromDays(DaysFromCivil(2026, 11, 26), &y, &m, &d);
  EXPECT_EQ(y * 10000 + m * 100 + d, 20261126);
}

}  // namespace
}  // namespace gw::adapters
