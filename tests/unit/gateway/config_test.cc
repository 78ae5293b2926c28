#include "gw/config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace gw {
namespace {

// The exact shape issue #2 requires to keep working.
const char kConfig[] = R"ini([gateway]
participant_mpid = UDMS
participant_role = D
environment = SIT
[journal]
path = /var/lib/mhhs-gateway/journal.db
[source.inbox]
type = file
directory = /var/spool/mhhs-gateway/inbox
archive = /var/spool/mhhs-gateway/archive
rejected = /var/spool/mhhs-gateway/rejected
format = dtn
[sink.backbone]
type = mqtt
uri = tcp://127.0.0.1:1883
client_id = UDMS-gw-1
qos = 1
topic = mhhs/{environment}/{type}/{sender_role}/{sender_mpid}
[route.all]
from = inbox
to = backbone
)ini";

TEST(ConfigTest, ReferenceConfigParses) {
  auto c = ParseConfig(kConfig, "gateway.ini");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->gateway.participant_mpid, "UDMS");
  EXPECT_EQ(c->gateway.participant_role, "D");
  EXPECT_EQ(c->gateway.environment, "SIT");
  EXPECT_EQ(c->journal.path, "/var/lib/mhhs-gateway/journal.db");
  ASSERT_EQ(c->sources.size(), 1u);
  EXPECT_EQ(c->sources[0].name, "inbox");
  EXPECT_EQ(c->sources[0].type, "file");
  ASSERT_EQ(c->sinks.size(), 1u);
  EXPECT_EQ(c->sinks[0].section.GetString("uri", ""), "tcp://127.0.0.1:1883");
  EXPECT_EQ(c->SinksFor("inbox"), std::vector<std::string>{"backbone"});
  EXPECT_TRUE(c->SinksFor("nobody").empty());
}

TEST(ConfigTest, ErrorsNameFileLineSectionAndKey) {
  std::string bad = kConfig;
  bad.replace(bad.find("participant_mpid = UDMS"), 23, "participant_mpid = udms");
  auto c = ParseConfig(bad, "gw.ini");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "gw.ini:2: [gateway] participant_mpid: must be 4 upper-case letters (got \"udms\")");
}

TEST(ConfigTest, UnknownKeyInCoreSectionIsRejected) {
  std::string bad = kConfig;
  bad.replace(bad.find("[journal]\n"), 10, "[journal]\npaht = x\n");
  auto c = ParseConfig(bad, "gw.ini");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "gw.ini:6: [journal] paht: unknown key");
}

TEST(ConfigTest, HandoffPatienceIsReadAndChecked) {
  auto c = ParseConfig(kConfig, "gw.ini");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->journal.handoff_patience_ms, 50);
  std::string off = kConfig;
  off.replace(off.find("[journal]\n"), 10, "[journal]\nhandoff_patience_ms = 0\n");
  c = ParseConfig(off, "gw.ini");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->journal.handoff_patience_ms, 0);
  std::string bad = kConfig;
  bad.replace(bad.find("[journal]\n"), 10, "[journal]\nhandoff_patience_ms = -5\n");
  c = ParseConfig(bad, "gw.ini");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("gw.ini:6: [journal] handoff_patience_ms"), std::string::npos) << c.status().message();
}

TEST(ConfigTest, RouteToMissingSinkIsRejected) {
  std::string bad = kConfig;
  bad.replace(bad.find("to = backbone"), 13, "to = backbon");
  auto c = ParseConfig(bad, "gw.ini");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "gw.ini:21: [route.all] to: no [sink.backbon] section");
}

TEST(ConfigTest, SyntaxErrorsNameTheLine) {
  auto c = ParseConfig("[gateway]\nparticipant_mpid UDMS\n", "gw.ini");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "gw.ini:2: expected 'key = value' (got \"participant_mpid UDMS\")");
  auto dup = ParseConfig("[gateway]\n[gateway]\n", "gw.ini");
  EXPECT_EQ(dup.status().message(), "gw.ini:2: [gateway] appears twice");
  auto unknown = ParseConfig("[gatway]\n", "gw.ini");
  EXPECT_NE(unknown.status().message().find("gw.ini:1: [gatway]: unknown section"), std::string::npos);
}

TEST(ConfigTest, EnvironmentVariablesAreExpanded) {
  ::setenv("GW_TEST_JOURNAL_DIR", "/tmp/x", 1);
  std::string text = kConfig;
  text.replace(text.find("/var/lib/mhhs-gateway"), 21, "${GW_TEST_JOURNAL_DIR}");
  auto c = ParseConfig(text, "gw.ini");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->journal.path, "/tmp/x/journal.db");
  ::unsetenv("GW_TEST_JOURNAL_DIR");
  auto missing = ParseConfig(text, "gw.ini");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "gw.ini:6: [journal] path: environment variable GW_TEST_JOURNAL_DIR is not set");
}

TEST(ConfigSectionTest, TypedGettersNameTheKey) {
  ConfigSection s("f.ini", "sink.x", 3);
  s.Add("qos", "3", 4);
  s.Add("flag", "maybe", 5);
  auto q = s.GetInt("qos", 1, 0, 2);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "f.ini:4: [sink.x] qos: must be between 0 and 2 (got 3)");
  auto b = s.GetBool("flag", false);
  EXPECT_EQ(b.status().message(), "f.ini:5: [sink.x] flag: must be true or false (got \"maybe\")");
  EXPECT_EQ(*s.GetInt("absent", 7, 0, 10), 7);
  EXPECT_TRUE(s.CheckAllUsed().ok());
  s.Add("stray", "1", 6);
  EXPECT_EQ(s.CheckAllUsed().message(), "f.ini:6: [sink.x] stray: unknown key");
}

}  // namespace
}  // namespace gw
