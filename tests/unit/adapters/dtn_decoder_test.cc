#include "gw/adapters/dtn_decoder.h"

#include <gtest/gtest.h>

#include <cstring>

#include "gw/adapters/dtn_events.h"
#include "tests/support/test_support.h"

namespace gw::adapters {
namespace {

std::shared_ptr<const FlowCatalogue> Catalogue() {
  static auto cat = [] {
    auto c = FlowCatalogue::LoadDirectory(gw::testing::SourceDir() + "/config/flows");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return *c;
  }();
  return cat;
}

// The FORMATS.md sample: two MPANs, three registers.
const char kSample[] =
    "ZHV|0000475656|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n"
    "026|1200023305967|V|\n"
    "028|F75A 00802|D|\n"
    "030|S|20160222000000|56311.0|||T|N|\n"
    "026|2200031930792|V|\n"
    "028|S85D24767|C|\n"
    "030|01|20160301000000|20231.0|||T|N|\n"
    "030|02|20160301000000|64472.0|||T|N|\n"
    "ZPT|0000475656|7||2|20160302154650|\n";

std::vector<std::string> Messages(const DtnResult& r) {
  std::vector<std::string> out;
  for (const DtnError& e : r.errors) out.push_back(std::to_string(e.line) + ": " + e.message);
  return out;
}

DtnResult Decode(const std::string& text, std::vector<Event>* events = nullptr) {
  DtnDecoder d(Catalogue());
  std::vector<Event> local;
  DtnEventOptions opts;
  opts.dip_mapping = false;
  return DecodeDtnToEvents(d, text, "test:f.uff", opts, events ? events : &local);
}

TEST(DtnDecoderTest, ValidD0010GivesOneEventPerMpanWithNestedReadings) {
  std::vector<Event> events;
  DtnResult r = Decode(kSample, &events);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(Messages(r));
  EXPECT_EQ(r.records, 7);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "UDMS-0000475656-1");
  EXPECT_EQ(events[1].id, "UDMS-0000475656-2");
  EXPECT_EQ(events[0].type, "D0010002");
  EXPECT_EQ(events[0].sender.mpid, "UDMS");
  EXPECT_EQ(events[0].sender.role, "D");
  ASSERT_EQ(events[0].recipients.size(), 1u);
  EXPECT_EQ(events[0].recipients[0].mpid, "MRCY");
  EXPECT_EQ(events[0].created_at, "2016-03-02T15:31:51+00:00");
  EXPECT_EQ(events[0].correlation_id, "UDMS-0000475656");
  EXPECT_EQ(events[0].origin, "test:f.uff:2");
  EXPECT_EQ(events[0].payload,
            R"({"mpanCore":"1200023305967","bscValidationStatus":"V","meters":[{"meterId":"F75A 00802",)"
            R"("readingType":"D","registers":[{"meterRegisterId":"S","readingDateTime":"2016-02-22T00:00:00",)"
            R"("registerReading":"56311.0","mdResetDateTime":null,"numberOfMdResets":null,"readingFlag":"T",)"
            R"("readingMethod":"N"}]}]})");
  EXPECT_NE(events[1].payload.find(R"("registers":[{"meterRegisterId":"01")"), std::string::npos);
  EXPECT_NE(events[1].payload.find(R"(},{"meterRegisterId":"02")"), std::string::npos);
}

TEST(DtnDecoderTest, SameFileAlwaysGivesSameIdsAndPayloads) {
  std::vector<Event> a, b;
  ASSERT_TRUE(Decode(kSample, &a).ok());
  ASSERT_TRUE(Decode(kSample, &b).ok());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id);
    EXPECT_EQ(a[i].payload, b[i].payload);
  }
}

TEST(DtnDecoderTest, CrlfAndBomAreAccepted) {
  std::string crlf = "\xEF\xBB\xBF";
  for (char c : std::string(kSample)) {
    if (c == '\n') crlf += "\r\n"; else crlf += c;
  }
  std::vector<Event> events;
  DtnResult r = Decode(crlf, &events);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(Messages(r));
  EXPECT_EQ(events.size(), 2u);
}

TEST(DtnDecoderTest, BstHeaderTimeCarriesPlusOneOffset) {
  std::string s = kSample;
  s.replace(s.find("20160302153151"), 14, "20260715093000");
  std::vector<Event> events;
  ASSERT_TRUE(Decode(s, &events).ok());
  EXPECT_EQ(events[0].created_at, "2026-07-15T09:30:00+01:00");
}

TEST(DtnDecoderTest, WrongGroupCountNamesTrailerField) {
  std::string s = kSample;
  s.replace(s.find("ZPT|0000475656|7|"), 17, "ZPT|0000475656|6|");
  DtnResult r = Decode(s);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(Messages(r)[0], "9: ZPT groupCount: does not match the 7 records in the file (6)");
}

TEST(DtnDecoderTest, WrongFlowCountIsAnError) {
  std::string s = kSample;
  s.replace(s.find("|7||2|"), 6, "|7||3|");
  DtnResult r = Decode(s);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(Messages(r)[0], "9: ZPT flowCount: does not match the 2 top-level groups in the file (3)");
}

TEST(DtnDecoderTest, BadFieldsAreAllReportedWithLineGroupFieldAndValue) {
  std::string s = kSample;
  s.replace(s.find("1200023305967"), 13, "12000233059X7");
  s.replace(s.find("20160222000000"), 14, "20160231000000");
  s.replace(s.find("56311.0"), 7, "5631,.0");
  s.replace(s.find("|T|N|"), 5, "|Q|N|");
  std::vector<Event> events;
  DtnResult r = Decode(s, &events);
  EXPECT_TRUE(events.empty()) << "an invalid file yields no events";
  EXPECT_EQ(Messages(r), (std::vector<std::string>{
                             "2: 026 mpanCore: expected exactly 13 digits (12000233059X7)",
                             "4: 030 readingDateTime: not a valid date-time YYYYMMDDHHMMSS (20160231000000)",
                             "4: 030 registerReading: not a decimal number (5631,.0)",
                             "4: 030 readingFlag: not one of the allowed values (T F) (Q)",
                         }));
}

TEST(DtnDecoderTest, MissingTrailerIsAnError) {
  std::string s = kSample;
  s.erase(s.find("ZPT|"));
  DtnResult r = Decode(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Messages(r).back(), "8: missing ZPT trailer record: the file is incomplete");
}

TEST(DtnDecoderTest, WrongHierarchyNamesTheMissingParent) {
  // A register (030) straight under an MPAN (026), with no meter (028) between.
  std::string s =
      "ZHV|0000000001|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n"
      "026|1200023305967|V|\n"
      "030|S|20160222000000|56311.0|||T|N|\n"
      "ZPT|0000000001|2||1|20160302154650|\n";
  DtnResult r = Decode(s);
  EXPECT_EQ(Messages(r), (std::vector<std::string>{
                             "3: 030: must follow a 028 record (found after 026)",
                             "2: 026: needs at least 1 028 record(s) beneath it, found 0",
                         }));
}

TEST(DtnDecoderTest, RecordBeforeAnyParentIsAnError) {
  std::string s =
      "ZHV|0000000001|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n"
      "028|F75A 00802|D|\n"
      "ZPT|0000000001|1||0|20160302154650|\n";
  DtnResult r = Decode(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Messages(r)[0], "2: 028: must follow a 026 record (found after ZHV)");
}

TEST(DtnDecoderTest, EmptyAndBinaryFilesAreClearErrors) {
  EXPECT_EQ(Messages(Decode("")), std::vector<std::string>{"0: empty file"});
  EXPECT_EQ(Messages(Decode(std::string("ZHV|\0\0\x01", 7))),
            std::vector<std::string>{"1: binary file (contains NUL bytes); a DTN file is text"});
}

TEST(DtnDecoderTest, NonAsciiByteIsReportedWithItsColumn) {
  std::string s = kSample;
  s.replace(s.find("F75A 00802"), 10, "F75A \xC3\xA9" "802");
  DtnResult r = Decode(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Messages(r)[0], "3: non-ASCII or control byte 0xC3 at column 10");
}

TEST(DtnDecoderTest, UnknownFlowAndMissingHeaderAreReported) {
  std::string s = kSample;
  s.replace(s.find("D0010002"), 8, "D9999001");
  EXPECT_EQ(Messages(Decode(s))[0], "1: ZHV flow: unknown flow and version (the catalogue has none such) (D9999001)");
  EXPECT_EQ(Messages(Decode("026|1200023305967|V|\n"))[0], "1: file must start with a ZHV header record (found 026)");
}

TEST(DtnDecoderTest, WrongFieldCountIsReported) {
  std::string s = kSample;
  s.replace(s.find("028|F75A 00802|D|"), 17, "028|F75A 00802|");
  DtnResult r = Decode(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Messages(r)[0], "3: 028: expected 2 fields, found 1");
}

TEST(DtnDecoderTest, ErrorsAreCappedAtOneHundred) {
  std::string s = "ZHV|0000000001|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n";
  for (int i = 0; i < 150; ++i) s += "026|BAD|V|\n028|M1|D|\n030|S|20160222000000|1.0|||T|N|\n";
  s += "ZPT|0000000001|450||150|20160302154650|\n";
  DtnResult r = Decode(s);
  EXPECT_EQ(r.errors.size(), DtnDecoder::kMaxErrors);
  EXPECT_TRUE(r.errors_truncated);
  EXPECT_NE(FormatDtnErrors("x.uff", r).find("only the first 100 are listed"), std::string::npos);
}

std::string D0036(const std::string& date, int periods) {
  std::string s = "ZHV|0000000036|D0036001|C|HHDC|X|SUPP|20261026080000||||OPER|\n";
  s += "101|1900000000017|AI|SUPP|\n102|" + date + "|\n";
  for (int i = 0; i < periods; ++i) s += "103|A|0.250|\n";
  s += "ZPT|0000000036|" + std::to_string(periods + 2) + "||1|20261026080001|\n";
  return s;
}

TEST(DtnDecoderTest, SettlementPeriodCountFollowsClockChanges) {
  EXPECT_TRUE(Decode(D0036("20260715", 48)).ok());
  EXPECT_TRUE(Decode(D0036("20260329", 46)).ok());
  EXPECT_TRUE(Decode(D0036("20261025", 50)).ok());
  DtnResult r = Decode(D0036("20261025", 48));
  EXPECT_EQ(Messages(r), std::vector<std::string>{
                             "3: 102 settlementDate: settlement day has 50 periods but 48 103 records follow (20261025)"});
  EXPECT_FALSE(Decode(D0036("20260329", 48)).ok());
}

TEST(DtnDecoderTest, D0036EventCarriesItsParentFields) {
  std::vector<Event> events;
  DtnResult r = Decode(D0036("20260715", 48), &events);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(Messages(r));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload.rfind(R"({"mpanCore":"1900000000017","measurementQuantityId":"AI","supplierMpid":"SUPP",)"
                                    R"("settlementDate":"2026-07-15","periods":[{"actualEstimatedIndicator":"A","consumption":"0.250"},)", 0),
            0u);
}

TEST(FlowCatalogueTest, BadDefinitionNamesFileLineAndKey) {
  auto spec = FlowCatalogue::ParseFlow("[flow]\nid = D0010002\nevent_group = 026\n[group.026]\nname = x\nfield = a blob 3 M\n", "x.flow");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(), "x.flow:6: [group.026] field: unknown type \"blob\" (text, digits, integer, decimal, date, datetime, enum)");
  auto parent = FlowCatalogue::ParseFlow("[flow]\nid = D0010002\nevent_group = 026\n[group.026]\nname = x\nparent = 999\nfield = a text 3 M\n", "y.flow");
  ASSERT_FALSE(parent.ok());
  EXPECT_EQ(parent.status().message(), "y.flow:6: [group.026] parent: no group 999");
}

}  // namespace
}  // namespace gw::adapters

#include <sys/mman.h>

namespace gw::adapters {
namespace {

// Regression: a look for NUL bytes over the whole content before decoding touched every page
// of a mapped file at once, so a 2 GB file cost 2 GB of resident memory. The decoder must read
// front to back: here the bytes beyond what progress() has reported (plus a window) are not
// even readable, and decoding must still succeed.
TEST(DtnDecoderTest, ReadsFrontToBackWithinTheProgressWindow) {
  std::string text = "ZHV|0000000036|D0036001|C|HHDC|X|SUPP|20261026080000||||OPER|\n";
  int records = 0, mpans = 0;
  while (text.size() < (80u << 20)) {
    char mpan[16];
    std::snprintf(mpan, sizeof mpan, "19%011d", mpans++);
    text += std::string("101|") + mpan + "|AI|SUPP|\n102|20260715|\n";
    records += 2;
    for (int i = 0; i < 48; ++i, ++records) text += "103|A|0.250|\n";
  }
  text += "ZPT|0000000036|" + std::to_string(records) + "||" + std::to_string(mpans) + "|20261026080001|\n";
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t len = (text.size() + page - 1) / page * page;
  char* mem = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  std::memcpy(mem, text.data(), text.size());
  const size_t window = 24 << 20;
  size_t readable = window;
  ASSERT_EQ(mprotect(mem + readable, len - readable, PROT_NONE), 0);
  DtnDecodeHooks hooks;
  int calls = 0;
  hooks.progress = [&](size_t offset) {
    ++calls;
    size_t want = std::min(len, (offset + window) / page * page);
    if (want > readable) {
      ASSERT_EQ(mprotect(mem + readable, want - readable, PROT_READ), 0);
      readable = want;
    }
  };
  DtnDecoder d(Catalogue());
  std::function<void(DtnUnit&&)> none;
  DtnResult r = d.Decode(std::string_view(mem, text.size()), none, hooks);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].message);
  EXPECT_GE(calls, 4);
  munmap(mem, len);
}

}  // namespace
}  // namespace gw::adapters
