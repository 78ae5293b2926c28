#include "gw/envelope.h"

#include <gtest/gtest.h>

namespace gw {
namespace {

Event Sample() {
  Event e;
  e.id = "UDMS-0000475656-1";
  e.type = "IF-021";
  e.event_code = "[ActivePower]";
  e.sender = Party{"UDMS", "SDS", "1009012345"};
  e.recipients = {Party{"MRCY", "X", ""}, Party{"BGAS", "SUP", "2009012345"}};
  e.created_at = "2026-07-16T06:00:00+01:00";
  e.correlation_id = "UDMS-0000475656";
  e.payload = R"({"a": [1, 2.5e3, "x\"y\u00e9"], "b": {"c": null}})";
  e.signature = R"({"alg":"RS256","value":"abc"})";
  return e;
}

TEST(EnvelopeTest, ParsesWhatItWritesAndKeepsPayloadBytes) {
  Event e = Sample();
  auto back = ParseEnvelope(ToEnvelopeJson(e));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->type, e.type);
  EXPECT_EQ(back->event_code, e.event_code);
  EXPECT_EQ(back->sender, e.sender);
  EXPECT_EQ(back->recipients, e.recipients);
  EXPECT_EQ(back->created_at, e.created_at);
  EXPECT_EQ(back->correlation_id, e.correlation_id);
  EXPECT_EQ(back->payload, e.payload) << "payload bytes must be kept exactly";
  EXPECT_EQ(back->signature, e.signature);
  EXPECT_EQ(ToEnvelopeJson(*back), ToEnvelopeJson(e));
}

TEST(EnvelopeTest, StringEscapesAreDecoded) {
  auto e = ParseEnvelope(R"({"v":1,"id":"a\u00e9\n\"b","type":"T","sender":{"mpid":"UDMS","role":"D"},"payload":{}})");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->id, "a\xC3\xA9\n\"b");
}

TEST(EnvelopeTest, HostileInputIsRefusedWithTheField) {
  struct Case { const char* json; const char* error; };
  const Case cases[] = {
      {"", "envelope: not a JSON object at byte 0"},
      {"[]", "envelope: not a JSON object at byte 0"},
      {R"({"id":"a"})", "envelope type: missing"},
      {R"({"id":"a","type":"T","payload":{}})", "envelope sender: missing"},
      {R"({"id":"a","type":"T","sender":{"mpid":"X"}})", "envelope payload: missing"},
      {R"({"id":5,"type":"T","sender":{"mpid":"X"},"payload":{}})", "envelope id: must be a string"},
      {R"({"v":2,"id":"a","type":"T","sender":{"mpid":"X"},"payload":{}})", "envelope v: unsupported envelope version 2"},
      {R"({"id":"a","type":"T","sender":"UDMS","payload":{}})", "envelope sender: must be an object"},
      {R"({"id":"a","type":"T","sender":{"mpid":"X"},"recipients":["X"],"payload":{}})", "envelope recipients[0]: must be an object"},
      {R"({"id":"a","type":"T","sender":{"mpid":"X"},"payload":"x"})", "envelope payload: must be a JSON object or array"},
      {R"({"id":"a","id":"b"})", "envelope: member \"id\" appears twice at byte 18"},
      {R"({"id":"a\x01"})", nullptr},
      {R"({"id":"a"} x)", "envelope: trailing bytes after the object at byte 11"},
      {R"({"id":"a","type":"T","sender":{"mpid":"X"},"payload":{"x":01}})", nullptr},
      {R"({"id":"\ud800","type":"T"})", nullptr},
  };
  for (const Case& c : cases) {
    auto e = ParseEnvelope(c.json);
    EXPECT_FALSE(e.ok()) << c.json;
    if (c.error) {
      EXPECT_EQ(e.status().message(), c.error) << c.json;
    }
  }
  std::string deep = R"({"id":"a","type":"T","sender":{"mpid":"X"},"payload":)" + std::string(100, '[') + std::string(100, ']') + "}";
  auto d = ParseEnvelope(deep);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("nested deeper than 64"), std::string::npos);
  EnvelopeLimits small;
  small.max_bytes = 10;
  EXPECT_EQ(ParseEnvelope(R"({"id":"abcdefghij"})", small).status().message(), "envelope: 19 bytes, more than the limit of 10");
  std::string bad_utf8 = std::string(R"({"id":")") + "\xC3\x28" + R"(","type":"T"})";
  EXPECT_NE(ParseEnvelope(bad_utf8).status().message().find("invalid UTF-8"), std::string::npos);
  // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8 either.
  for (const char* bytes : {"\xE0\x80\xAF", "\xF0\x80\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80"}) {
    std::string json = std::string(R"({"id":")") + bytes + R"(","type":"T","sender":{"mpid":"X"},"payload":{}})";
    auto r = ParseEnvelope(json);
    ASSERT_FALSE(r.ok()) << "accepted bytes " << ::testing::PrintToString(std::string(bytes));
    EXPECT_NE(r.status().message().find("invalid UTF-8"), std::string::npos) << r.status().message();
  }
  // Well-formed multi-byte text is kept.
  auto ok = ParseEnvelope(std::string(R"({"id":")") + "\xC2\xA3-\xE2\x82\xAC-\xF0\x9F\x98\x80" + R"(","type":"T","sender":{"mpid":"X"},"payload":{}})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->id, "\xC2\xA3-\xE2\x82\xAC-\xF0\x9F\x98\x80");
}

TEST(EnvelopeTest, ErrorsAreClassifiedForTheMetrics) {
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope("not json").status()), "malformed");
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope(R"({"v":2,"id":"a"})").status()), "unsupported_version");
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope(R"({"id":"a","type":"T","payload":{}})").status()), "missing_field");
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope(R"({"id":7,"type":"T"})").status()), "wrong_type");
  std::string deep = R"({"id":"a","payload":)" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope(deep).status()), "too_deep");
  EnvelopeLimits small;
  small.max_bytes = 10;
  EXPECT_EQ(EnvelopeErrorCode(ParseEnvelope(R"({"id":"abcdefghij"})", small).status()), "oversized");
}

}  // namespace
}  // namespace gw
