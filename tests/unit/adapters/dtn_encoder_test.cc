#include "gw/adapters/dtn_encoder.h"

#include <gtest/gtest.h>

#include "gw/adapters/dtn_events.h"
#include "gw/envelope.h"
#include "tests/support/test_support.h"

namespace gw::adapters {
namespace {

std::shared_ptr<const FlowCatalogue> Catalogue() {
  auto c = FlowCatalogue::LoadDirectory(gw::testing::SourceDir() + "/config/flows");
  EXPECT_TRUE(c.ok());
  return *c;
}

// file -> events -> envelopes on the wire -> events -> file
std::string RoundTrip(const std::string& text, const GatewayInfo* gw) {
  DtnDecoder decoder(Catalogue());
  DtnEventOptions opts;
  opts.dip_mapping = gw != nullptr;
  opts.gateway = gw;
  std::vector<Event> events;
  DtnResult r = DecodeDtnToEvents(decoder, text, "t", opts, &events);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].message);
  EXPECT_FALSE(events.empty());
  DtnFileWriter w(Catalogue(), DtnHeaderFor(events[0]));
  for (const Event& e : events) {
    auto parsed = ParseEnvelope(ToEnvelopeJson(e));
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    Status s = w.Add(*parsed);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return w.Finish();
}

TEST(DtnEncoderTest, D0010RoundTripGivesTheSameRecordsAndHeader) {
  for (const char* name : {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475657.uff", "D0010_UDMS_BGAS_0000475658.uff"}) {
    std::string original = gw::testing::ReadFileOrEmpty(gw::testing::SourceDir() + "/config/samples/" + name);
    std::string back = RoundTrip(original, nullptr);
    EXPECT_EQ(gw::testing::DtnRecords(back), gw::testing::DtnRecords(original)) << name;
    EXPECT_EQ(back.substr(0, back.find('\n')), original.substr(0, original.find_first_of("\r\n"))) << name;
  }
}

TEST(DtnEncoderTest, D0036ThroughIf021RoundTripGivesTheSameRecords) {
  gw::testing::TempDir dir;
  std::string out;
  ASSERT_EQ(gw::testing::RunCommand({"/usr/bin/python3", gw::testing::SourceDir() + "/tests/tools/gen_d0036.py", dir.path(),
                                     "--mpans", "4", "--days", "4", "--start", "20261023"}, &out), 0) << out;
  std::string original = gw::testing::ReadFileOrEmpty(dir / "D0036_UDMS_MRCY_0003600000.uff");
  ASSERT_FALSE(original.empty());
  GatewayInfo g;
  g.environment = "SIT";
  g.dip_id = "1009012345";
  g.dip.role = "SDS";
  g.dip.default_distributor_dip_id = "2509012345";
  std::string back = RoundTrip(original, &g);
  EXPECT_EQ(gw::testing::DtnRecords(back), gw::testing::DtnRecords(original));
  EXPECT_EQ(back.substr(0, back.find('\n')), original.substr(0, original.find('\n')));
  // Generic D0036 events round-trip too.
  EXPECT_EQ(gw::testing::DtnRecords(RoundTrip(original, nullptr)), gw::testing::DtnRecords(original));
}

TEST(DtnEncoderTest, MissingMandatoryFieldNamesEventAndField) {
  Event e;
  e.id = "X-1";
  e.type = "D0010002";
  e.sender = Party{"UDMS", "D", ""};
  e.recipients = {Party{"MRCY", "X", ""}};
  e.payload = R"({"mpanCore":"1200023305967","meters":[]})";
  DtnFileWriter w(Catalogue(), DtnHeaderFor(e));
  Status s = w.Add(e);
  EXPECT_EQ(s.message(), "event X-1: 026 bscValidationStatus: missing");
  e.payload = R"({"mpanCore":"1200023305967","bscValidationStatus":"V"})";
  EXPECT_EQ(w.Add(e).message(), "event X-1: meters: missing (group 028)");
  e.payload = "not json";
  EXPECT_EQ(w.Add(e).message().rfind("event X-1: payload is not valid JSON", 0), 0u);
  e.type = "IF-021";
  EXPECT_EQ(w.Add(e).message(), "event X-1: type IF-021 does not belong in a D0010002 file");
}

}  // namespace
}  // namespace gw::adapters
