// UK civil time and settlement periods (FORMATS.md, "Settlement periods and clock changes").
//
// UK local time is GMT (UTC+0) in winter and BST (UTC+1) from 01:00 UTC on the last Sunday of
// March to 01:00 UTC on the last Sunday of October. A settlement day is a UK local day of 46,
// 48 or 50 half-hour periods. All functions are pure and thread-safe.
#ifndef GW_ADAPTERS_UK_TIME_H_
#define GW_ADAPTERS_UK_TIME_H_

#include <cstdint>
#include <string>

namespace gw::adapters {

// Days since 1970-01-01 of a proleptic Gregorian date.
int64_t DaysFromCivil(int y, int m, int d);
void CivilFromDays(int64_t days, int* y, int* m, int* d);
bool IsValidDate(int y, int m, int d);

// True when UTC instant `utc_s` (seconds since the epoch) falls in BST.
bool IsBst(int64_t utc_s);

// The UTC instant (seconds) at which UK local midnight starts local day y-m-d.
int64_t UkMidnightUtc(int y, int m, int d);

// Number of settlement periods on UK local day y-m-d: 46, 48 or 50.
int SettlementPeriods(int y, int m, int d);

// Formats a UTC instant as "YYYY-MM-DDThh:mm:ss+00:00" (the DIP's date-time form).
std::string FormatUtcOffset(int64_t utc_s);

// Converts UK local date-time fields to "YYYY-MM-DDThh:mm:ss+HH:00" with the offset in force.
// An ambiguous local time (the repeated hour in October) is taken as the first, BST one.
std::string UkLocalToIsoOffset(int y, int mo, int d, int h, int mi, int s);

}  // namespace gw::adapters

#endif  // GW_ADAPTERS_UK_TIME_H_
