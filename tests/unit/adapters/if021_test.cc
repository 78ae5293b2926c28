#include "gw/adapters/if021.h"

#include <ctime>

#include <gtest/gtest.h>

#include "gw/adapters/dtn_events.h"
#include "tests/support/test_support.h"

namespace gw::adapters {
namespace {

GatewayInfo Participant() {
  GatewayInfo g;
  g.participant_mpid = "UDMS";
  g.participant_role = "C";
  g.environment = "SIT";
  g.dip_id = "1009012345";
  g.dip.role = "SDS";
  g.dip.default_distributor_dip_id = "2509012345";
  g.dip.distributor_dip_ids["19"] = "2509000019";
  return g;
}

std::string D0036(const std::vector<std::pair<std::string, int>>& days, const std::string& mpan = "1900000000017",
                  const std::string& value = "0.250") {
  std::string s = "ZHV|0000000036|D0036001|C|UDMS|X|MRCY|20261026080000||||OPER|\n101|" + mpan + "|AI|MRCY|\n";
  int records = 1;
  for (const auto& [date, periods] : days) {
    s += "102|" + date + "|\n";
    ++records;
    for (int i = 0; i < periods; ++i, ++records) s += "103|" + std::string(i % 7 == 3 ? "E" : "A") + "|" + value + "|\n";
  }
  s += "ZPT|0000000036|" + std::to_string(records) + "||1|20261026080001|\n";
  return s;
}

std::shared_ptr<const FlowCatalogue> Catalogue() {
  auto c = FlowCatalogue::LoadDirectory(gw::testing::SourceDir() + "/config/flows");
  EXPECT_TRUE(c.ok());
  return *c;
}

DtnResult Map(const std::string& text, std::vector<Event>* events, const GatewayInfo& g = Participant()) {
  DtnDecoder d(Catalogue());
  DtnEventOptions o;
  o.gateway = &g;
  return DecodeDtnToEvents(d, text, "inbox:f.uff", o, events);
}

std::vector<std::string> Sps(const std::string& payload) {
  std::vector<std::string> out;
  for (size_t p = payload.find("\"sp\":\""); p != std::string::npos; p = payload.find("\"sp\":\"", p + 1)) {
    out.push_back(payload.substr(p + 6, 25));
  }
  return out;
}

TEST(If021Test, OneEventPerMpanMqidAndDayWithHeaderFields) {
  std::vector<Event> events;
  DtnResult r = Map(D0036({{"20260715", 48}, {"20260716", 48}}), &events);
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  ASSERT_EQ(events.size(), 2u);
  const Event& e = events[0];
  EXPECT_EQ(e.id, "UDMS-0000000036-1");
  EXPECT_EQ(e.type, "IF-021");
  EXPECT_EQ(e.event_code, "[ActivePower]");
  EXPECT_EQ(e.sender, (Party{"UDMS", "SDS", "1009012345"}));
  EXPECT_EQ(e.origin, "inbox:f.uff:3");
  EXPECT_NE(e.payload.find(R"("S1":{"environmentTag":"SIT","subText":null,"senderUniqueReference":"S-IF-021-)"), std::string::npos);
  EXPECT_NE(e.payload.find(R"(-SDS-20260715-1900000000017AI")"), std::string::npos);
  EXPECT_NE(e.payload.find(R"("senderTimestamp":"2026-10-26T08:00:00+00:00")"), std::string::npos);
  EXPECT_NE(e.payload.find(R"("M0":{"MPANCore":"1900000000017","distributorDIPID":"2509000019","GSPGroupID":"_J"})"), std::string::npos);
  EXPECT_NE(e.payload.find(R"("B044":{"issuingDataServiceDIPID":"1009012345"})"), std::string::npos);
  EXPECT_NE(e.payload.find(R"({"sp":"2026-07-14T23:30:00+00:00","v":"0.250","q":"A","e":null,"arc":null})"), std::string::npos);
  EXPECT_NE(e.payload.find(R"({"sp":"2026-07-15T01:00:00+00:00","v":"0.250","q":"E","e":null,"arc":null})"), std::string::npos);
}

TEST(If021Test, PeriodEndsAreUtcAcrossClockChanges) {
  std::vector<Event> events;
  ASSERT_TRUE(Map(D0036({{"20260329", 46}, {"20261025", 50}, {"20260110", 48}}), &events).ok());
  ASSERT_EQ(events.size(), 3u);
  auto spring = Sps(events[0].payload);
  ASSERT_EQ(spring.size(), 46u);
  EXPECT_EQ(spring.front(), "2026-03-29T00:30:00+00:00");
  EXPECT_EQ(spring.back(), "2026-03-29T23:00:00+00:00");
  auto autumn = Sps(events[1].payload);
  ASSERT_EQ(autumn.size(), 50u);
  EXPECT_EQ(autumn.front(), "2026-10-24T23:30:00+00:00");
  EXPECT_EQ(autumn[2], "2026-10-25T00:30:00+00:00");
  EXPECT_EQ(autumn.back(), "2026-10-26T00:00:00+00:00");
  auto winter = Sps(events[2].payload);
  EXPECT_EQ(winter.front(), "2026-01-10T00:30:00+00:00");
  EXPECT_EQ(winter.back(), "2026-01-11T00:00:00+00:00");
  // Every period ends 30 minutes after the one before, across UTC midnights too (the date part
  // of the stamps is worked out once per UTC day).
  for (const Event& e : events) {
    auto sps = Sps(e.payload);
    for (size_t i = 1; i < sps.size(); ++i) {
      std::tm a{}, b{};
      ASSERT_NE(strptime(sps[i - 1].c_str(), "%Y-%m-%dT%H:%M:%S", &a), nullptr);
      ASSERT_NE(strptime(sps[i].c_str(), "%Y-%m-%dT%H:%M:%S", &b), nullptr);
      EXPECT_EQ(timegm(&b) - timegm(&a), 1800) << sps[i - 1] << " -> " << sps[i];
    }
  }
  // The 50-period day travels as 48 + 2 under the same settlement day (the schema's limit).
  size_t days = 0;
  for (size_t p = events[1].payload.find("\"settlementDayDate\":\"2026-10-25T00:00:00+00:00\""); p != std::string::npos;
       p = events[1].payload.find("\"settlementDayDate\":\"2026-10-25T00:00:00+00:00\"", p + 1)) ++days;
  EXPECT_EQ(days, 2u);
}

TEST(If021Test, PayloadsPassTheDipSchema) {
  std::vector<Event> events;
  ASSERT_TRUE(Map(D0036({{"20260329", 46}, {"20261025", 50}, {"20260715", 48}}), &events).ok());
  gw::testing::TempDir dir;
  std::string lines;
  for (const Event& e : events) lines += "{\"payload\":" + e.payload + "}\n";
  gw::testing::WriteFile(dir / "p.jsonl", lines);
  std::string out;
  int rc = gw::testing::RunCommand({gw::testing::SourceDir() + "/../shared/tools/dip-validate", "IF-021", dir / "p.jsonl"}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("3 valid, 0 invalid IF-021 payloads"), std::string::npos) << out;
}

// The periods are written into room worked out from the records: values of every width, from
// one digit to the longest IF-021 carries, come out whole and in order on a 50-period day.
TEST(If021Test, ValuesOfEveryWidthAreWrittenWhole) {
  const std::vector<std::pair<std::string, std::string>> forms = {
      {"1", "1.000"}, {"0.5", "0.500"}, {"-0.0004", "0.000"}, {"9.9995", "10.000"},
      {"-123456789.999", "-123456789.999"}, {"99999999.9995", "100000000.000"}, {"123456789.123", "123456789.123"}, {"0.250", "0.250"}};
  std::string text = "ZHV|0000000036|D0036001|C|UDMS|X|MRCY|20261026080000||||OPER|\n101|1900000000017|AI|MRCY|\n"
                     "102|20261025|\n";
  std::vector<std::string> want;
  for (int i = 0; i < 50; ++i) {
    const auto& [raw, formatted] = forms[static_cast<size_t>(i) % forms.size()];
    text += "103|A|" + raw + "|\n";
    want.push_back(formatted);
  }
  text += "ZPT|0000000036|52||1|20261026080001|\n";
  std::vector<Event> events;
  DtnResult r = Map(text, &events);
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  ASSERT_EQ(events.size(), 1u);
  const std::string& p = events[0].payload;
  std::vector<std::string> got;
  for (size_t at = p.find(R"("v":")"); at != std::string::npos; at = p.find(R"("v":")", at + 1)) {
    got.push_back(p.substr(at + 5, p.find('"', at + 5) - at - 5));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(p.substr(p.size() - 6), "]}]}}}");
  EXPECT_EQ(Sps(p).size(), 50u);
}

TEST(If021Test, SameFileGivesSameBytesAndReferences) {
  std::vector<Event> a, b;
  ASSERT_TRUE(Map(D0036({{"20260715", 48}}), &a).ok());
  ASSERT_TRUE(Map(D0036({{"20260715", 48}}), &b).ok());
  EXPECT_EQ(a[0].payload, b[0].payload);
}

TEST(If021Test, MissingSettingsAndUnknownDistributorAreFileErrors) {
  GatewayInfo g = Participant();
  g.dip.default_distributor_dip_id.clear();
  std::vector<Event> events;
  DtnResult r = Map(D0036({{"20260715", 48}}, "1200000000017"), &events, g);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].message, "101 mpanCore: no distributor DIP id configured for distributor 12 ([dip] distributor_dip_id.12 or distributor_dip_id)");
  EXPECT_TRUE(events.empty());
  g = Participant();
  g.dip_id.clear();
  r = Map(D0036({{"20260715", 48}}), &events, g);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "D0036 -> IF-021: [gateway] dip_id: is required to map D0036 to IF-021 (10 digits)");
}

TEST(If021Test, ValueThatIf021CannotCarryIsAnError) {
  std::vector<Event> events;
  DtnResult r = Map(D0036({{"20260715", 48}}, "1900000000017", "1234567890.5"), &events);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].message, "103 consumption: IF-021 carries at most 9 integer digits (1234567890.5)");
}

TEST(FormatDecimal3Test, ThreeDecimalsRoundedHalfAwayFromZero) {
  std::string out;
  auto f = [&](const char* in) { return FormatDecimal3(in, &out) ? out : std::string("ERR"); };
  EXPECT_EQ(f("0.25"), "0.250");
  EXPECT_EQ(f("12.5"), "12.500");
  EXPECT_EQ(f("7"), "7.000");
  EXPECT_EQ(f("0.0004"), "0.000");
  EXPECT_EQ(f("0.0005"), "0.001");
  EXPECT_EQ(f("-1.2345"), "-1.235");
  EXPECT_EQ(f("-0.0001"), "0.000");
  EXPECT_EQ(f("999999999.9995"), "ERR");
  EXPECT_EQ(f("999999999.9994"), "999999999.999");
  EXPECT_EQ(f("00012.000"), "12.000");
  EXPECT_EQ(f(".5"), "0.500");
  EXPECT_EQ(f("1e3"), "ERR");
  EXPECT_EQ(f(""), "ERR");
  // The usual form, taken as it is, and its near misses.
  EXPECT_EQ(f("1.966"), "1.966");
  EXPECT_EQ(f("0.000"), "0.000");
  EXPECT_EQ(f("123456789.123"), "123456789.123");
  EXPECT_EQ(f("1234567890.123"), "ERR");
  EXPECT_EQ(f("01.500"), "1.500");
  EXPECT_EQ(f("1.9x6"), "ERR");
  EXPECT_EQ(f("12.34."), "ERR");
  EXPECT_EQ(f("-1.500"), "-1.500");
  EXPECT_EQ(f("+1.500"), "1.500");
}

TEST(GspGroupTest, DistributorIdsMapToGspGroups) {
  EXPECT_EQ(GspGroupOfDistributor("10"), "_A");
  EXPECT_EQ(GspGroupOfDistributor("17"), "_P");
  EXPECT_EQ(GspGroupOfDistributor("23"), "_M");
  EXPECT_EQ(GspGroupOfDistributor("99"), "");
}

}  // namespace
}  // namespace gw::adapters
