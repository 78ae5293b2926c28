// Governance and security with the real daemon, a real Mosquitto and certificates made by
// openssl: a signing gateway and a verifying one end to end, entitlements both ways, the
// journal holding no plaintext, no secret in any log line, a key readable by others stopping
// the start, and a hostile corpus of more than 200 inbound messages.
#include <sys/stat.h>

#include <map>
#include <set>

#include "gw/envelope.h"
#include "gw/security.h"
#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

constexpr const char* kJournalKey = "5f3a9c0d1e2b4a6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
constexpr const char* kAdminToken = "tok-8c1f0e9d2b7a4c3e";
constexpr const char* kMqttPassword = "mqtt-pw-71d9a3f0c2";

class SecurityIntegrationTest : public GatewayTest {
 protected:
  static std::string Pki(const std::string& name) { return SharedPki(name); }

  void SetUp() override {
    WriteSecret(dir_ / "journal.key", std::string(kJournalKey) + "\n");
    WriteSecret(dir_ / "receiver-journal.key", std::string(kJournalKey).substr(0, 60) + "abcd\n");
    WriteSecret(dir_ / "admin.token", std::string(kAdminToken) + "\n");
    WriteSecret(dir_ / "mqtt.password", std::string(kMqttPassword) + "\n");
  }

  static void WriteSecret(const std::string& path, const std::string& text) {
    WriteFile(path, text);
    ::chmod(path.c_str(), 0600);
  }

  // The sending data service: the fixture's inbox -> backbone, signing as UDMS.
  std::string SenderSecurity(const std::string& policy) {
    return "[security]\nkey = " + Pki("udms.key") + "\ncertificate = " + Pki("udms.crt") + "\npolicy = " + policy +
           "\njournal_key_file = " + dir_ / "journal.key" + "\n";
  }

  // The receiving supplier: backbone -> outbox, verifying against the CA.
  void StartReceiver(const std::string& extra_source = "") {
    receiver_config_ = dir_ / "receiver.ini";
    WriteFile(receiver_config_,
              "[gateway]\nadmin_listen = 127.0.0.1:" + std::to_string(receiver_admin_) +
                  "\nadmin_token_file = " + dir_ / "admin.token" + "\nshutdown_timeout_s = 3\n"
                  "participant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\nflow_dir = " + SourceDir() +
                  "/config/flows\nlog_level = debug\n[journal]\npath = " + dir_ / "receiver.db" + "\n"
                  "[security]\ntrust_ca_file = " + Pki("ca.crt") + "\npolicy = " + SourceDir() + "/config/policy.ini\n"
                  "journal_key_file = " + dir_ / "receiver-journal.key" + "\n"
                  "[source.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = MRCY-gw-in\n"
                  "username = MRCY\npassword_file = " + dir_ / "mqtt.password" + "\n"
                  "topics = mhhs/SIT/#\nreconnect_max_ms = 500\nconnect_timeout_s = 2\nmax_message_bytes = 65536\n" + extra_source +
                  "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\nretry_base_ms = 100\nretry_max_ms = 500\n"
                  "[route.in]\nfrom = backbone\nto = outbox\n");
    receiver_.Start({DaemonPath(), "--config", receiver_config_}, dir_ / "receiver.log");
    ASSERT_TRUE(WaitFor([&] { return ReceiverLog().find("subscribed to") != std::string::npos || !receiver_.Running(); },
                        std::chrono::seconds(20)));
    ASSERT_TRUE(receiver_.Running()) << ReceiverLog();
  }

  std::string ReceiverLog() { return ReadFileOrEmpty(dir_ / "receiver.log"); }
  std::string ReceiverMetrics() { return HttpGet(receiver_admin_, "/metrics", kAdminToken).body; }
  double Rejected(const std::string& reason) {
    double v = MetricValue(ReceiverMetrics(), "mhhs_gateway_inbound_rejected_total{source=\"backbone\",reason=\"" + reason + "\"}");
    return v < 0 ? 0 : v;
  }

  int Ctl(const std::string& config, const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {CtlPath(), "--config", config};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, out);
  }

  // Unsigned envelopes for a sample file, as the sending gateway makes them, parsed.
  std::vector<Event> SampleEvents(const std::string& file) {
    std::vector<Event> out;
    for (const std::string& line : Convert(Samples() + "/" + file)) {
      auto e = ParseEnvelope(line);
      EXPECT_TRUE(e.ok()) << e.status().ToString();
      if (e.ok()) out.push_back(std::move(e.value()));
    }
    return out;
  }

  std::unique_ptr<EventSigner> Signer(const std::string& name, const std::string& mpid) {
    SecurityConfig c;
    c.configured = true;
    c.key_file = Pki(name + ".key");
    c.certificate_file = Pki(name + ".crt");
    auto s = EventSigner::Load(c, mpid);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s.value()) : nullptr;
  }

  Process receiver_;
  std::string receiver_config_;
  int receiver_admin_ = FreePort();
};

TEST_F(SecurityIntegrationTest, SignedBySenderVerifiedByReceiverAndNothingInTheClear) {
  WriteConfig(SenderSecurity(SourceDir() + "/config/policy.ini"));
  std::string text = ReadFileOrEmpty(config_path_);
  // The sink authenticates with a password, which must never be logged either.
  text.replace(text.find("client_id = UDMS-gw-test\n"), 25,
               "client_id = UDMS-gw-test\nusername = UDMS\npassword_file = " + dir_ / "mqtt.password" + "\n");
  text.replace(text.find("shutdown_timeout_s = 3\n"), 23, "shutdown_timeout_s = 3\nadmin_token_file = " + dir_ / "admin.token" + "\n");
  WriteFile(config_path_, text);
  Subscriber sub(broker_.uri(), "sec-sub");
  sub.Connect();
  StartReceiver();
  StartGateway();
  EXPECT_NE(GatewayLog().find("signing this participant's events (RS256) as UDMS"), std::string::npos) << GatewayLog();
  EXPECT_NE(ReceiverLog().find("verifying market events against the CA bundle"), std::string::npos) << ReceiverLog();

  std::vector<std::string> files = {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475657.uff"};
  std::vector<std::string> expected;
  for (const std::string& f : files) {
    Drop(Samples() + "/" + f);
    for (const std::string& r : DtnRecords(ReadFileOrEmpty(Samples() + "/" + f))) expected.push_back(r);
  }
  ASSERT_TRUE(WaitFor([&] { return DtnRecordsInDir(dir_ / "outbox").size() == expected.size(); }, std::chrono::seconds(30)))
      << ReceiverLog();
  EXPECT_EQ(DtnRecordsInDir(dir_ / "outbox"), expected) << "the supplier receives exactly what was sent";
  // Every message on the backbone is signed with the participant's certificate carried.
  ASSERT_GE(sub.Count(), 3u);
  for (const auto& [topic, payload] : sub.Messages()) {
    EXPECT_NE(payload.find("\"signature\":{\"alg\":\"RS256\""), std::string::npos) << payload.substr(0, 200);
    EXPECT_NE(payload.find("\"certificate\":\""), std::string::npos);
  }
  EXPECT_EQ(Rejected("signature_invalid"), 0);
  std::string out;
  // The operator's check gives the daemon's verdicts: every published message passes, and an
  // altered one fails with its reason.
  std::string published;
  for (const auto& m : sub.Messages()) published += m.second + "\n";
  WriteFile(dir_ / "published.jsonl", published);
  EXPECT_EQ(Ctl(receiver_config_, {"verify", dir_ / "published.jsonl"}, &out), 0) << out;
  EXPECT_NE(out.find(": ok"), std::string::npos) << out;
  std::string altered = sub.Messages()[0].second;
  altered.insert(altered.find("\"payload\":{") + 11, "\"injected\":1,");
  WriteFile(dir_ / "altered.jsonl", altered + "\n");
  EXPECT_EQ(Ctl(receiver_config_, {"verify", dir_ / "altered.jsonl"}, &out), 1) << out;
  EXPECT_NE(out.find("content_hash_mismatch"), std::string::npos) << out;
  EXPECT_EQ(Ctl(receiver_config_, {"quarantine", "list"}, &out), 0) << out;
  EXPECT_EQ(out.find("signature"), std::string::npos) << out;

  EXPECT_EQ(StopGateway(), 0);
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
  // At rest: neither journal (nor its WAL) holds an MPAN or a meter id from the samples.
  for (const char* j : {"journal.db", "journal.db-wal", "receiver.db", "receiver.db-wal"}) {
    std::string bytes = ReadFileOrEmpty(dir_ / j);
    for (const char* clear : {"1200023305967", "F75A 00802", "1012345678901", "K05A123456"}) {
      EXPECT_EQ(bytes.find(clear), std::string::npos) << j << " holds " << clear;
    }
  }
  // Yet the operator, holding the key, reads the payload back.
  auto first = ParseEnvelope(sub.Messages()[0].second);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Ctl(config_path_, {"--json", "trace", first->id}, &out), 0) << out;
  EXPECT_NE(out.find("1200023305967"), std::string::npos) << out;
  // No secret reached a log line: key material, journal keys, the admin token, the password.
  std::vector<std::string> secrets = {kJournalKey, std::string(kJournalKey).substr(0, 60) + "abcd", kAdminToken, kMqttPassword};
  std::string key_pem = ReadFileOrEmpty(Pki("udms.key"));
  std::istringstream lines(key_pem);
  std::string line;
  while (std::getline(lines, line)) if (line.size() > 40 && line.find("-----") == std::string::npos) secrets.push_back(line);
  ASSERT_GT(secrets.size(), 10u);
  const std::string logs = GatewayLog() + ReceiverLog();
  ASSERT_NE(logs.find("sink.backbone: connected"), std::string::npos) << "debug logs of both runs";
  ASSERT_NE(logs.find("source.backbone: subscribed"), std::string::npos) << logs;
  for (const std::string& s : secrets) EXPECT_EQ(logs.find(s), std::string::npos) << "a log line holds a secret: " << s.substr(0, 12) << "...";
}

TEST_F(SecurityIntegrationTest, BatchSignaturesAreVerifiedByTheReceiver) {
  WriteConfig(SenderSecurity(SourceDir() + "/config/policy.ini") + "sign_batches = true\n");
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("client_id = UDMS-gw-test\n"), 25,
               "client_id = UDMS-gw-test\nusername = UDMS\npassword_file = " + dir_ / "mqtt.password" + "\n");
  WriteFile(config_path_, text);
  Subscriber sub(broker_.uri(), "batch-sub");
  sub.Connect();
  StartReceiver();
  StartGateway();
  EXPECT_NE(GatewayLog().find("signing this participant's events (RS256, one signature per batch over a Merkle tree)"),
            std::string::npos) << GatewayLog();
  const std::string file = "D0010_UDMS_MRCY_0000475656.uff";
  std::vector<std::string> expected = DtnRecords(ReadFileOrEmpty(Samples() + "/" + file));
  Drop(Samples() + "/" + file);
  ASSERT_TRUE(WaitFor([&] { return DtnRecordsInDir(dir_ / "outbox").size() == expected.size(); }, std::chrono::seconds(30)))
      << ReceiverLog();
  EXPECT_EQ(DtnRecordsInDir(dir_ / "outbox"), expected);
  // The file's events share one signature value, each with its own place in the tree.
  ASSERT_GE(sub.Count(), 2u);
  std::set<std::string> values, indexes;
  for (const auto& [topic, payload] : sub.Messages()) {
    auto e = ParseEnvelope(payload);
    ASSERT_TRUE(e.ok());
    size_t v = e->signature.find("\"value\":\"");
    ASSERT_NE(v, std::string::npos);
    values.insert(e->signature.substr(v, e->signature.find('"', v + 9) - v));
    size_t i = e->signature.find("\"index\":");
    ASSERT_NE(i, std::string::npos) << e->signature;
    indexes.insert(e->signature.substr(i, e->signature.find(',', i) - i));
  }
  EXPECT_EQ(values.size(), 1u);
  EXPECT_EQ(indexes.size(), sub.Count());
  EXPECT_EQ(Rejected("signature_invalid"), 0);
  std::string published, out;
  for (const auto& m : sub.Messages()) published += m.second + "\n";
  WriteFile(dir_ / "published.jsonl", published);
  EXPECT_EQ(Ctl(receiver_config_, {"verify", dir_ / "published.jsonl"}, &out), 0) << out;
  EXPECT_EQ(StopGateway(), 0);
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
}

TEST_F(SecurityIntegrationTest, WhatTheParticipantMayNotSendIsDeadLetteredNotPublished) {
  // A policy in which only suppliers send D0010: this NHH data collector (role D) may not.
  WriteFile(dir_ / "policy.ini", "[interface.D0010002]\nsenders = X\nreceivers = X\n");
  WriteConfig(SenderSecurity(dir_ / "policy.ini"));
  Subscriber sub(broker_.uri(), "sec-sub2");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    Ctl(config_path_, {"dead-letters", "list"}, &out);
    return out.find("not entitled") != std::string::npos;
  }, std::chrono::seconds(20))) << out << GatewayLog();
  EXPECT_NE(out.find("role D may not send D0010002"), std::string::npos) << out;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sub.Count(), 0u) << "nothing was published";
  EXPECT_EQ(Ctl(config_path_, {"audit", "verify"}, &out), 0) << out;
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(SecurityIntegrationTest, ReadableKeysStopTheStartWithOneClearLine) {
  for (const char* which : {"journal", "signing"}) {
    std::string key = dir_ / (std::string(which) + "-open.key");
    WriteFile(key, which == std::string("journal") ? std::string(kJournalKey) : ReadFileOrEmpty(Pki("udms.key")));
    ::chmod(key.c_str(), 0644);
    std::string extra = which == std::string("journal")
                            ? "[security]\njournal_key_file = " + key + "\n"
                            : "[security]\nkey = " + key + "\ncertificate = " + Pki("udms.crt") + "\n";
    WriteConfig(extra);
    std::string out;
    int rc = RunCommand({DaemonPath(), "--config", config_path_}, &out);
    EXPECT_EQ(rc, 78) << which << ": " << out;
    EXPECT_NE(out.find(key), std::string::npos) << out;
    EXPECT_NE(out.find("0644"), std::string::npos) << out;
    EXPECT_EQ(out.find(kJournalKey), std::string::npos) << "the refusal does not print the key";
  }
}

TEST_F(SecurityIntegrationTest, AnInboxDeclaredMarketIsVerifiedLikeTheBackbone) {
  WriteConfig("[security]\ntrust_ca_file = " + Pki("ca.crt") + "\n");
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("[source.inbox]\n"), 15, "[source.inbox]\norigin = market\n");
  WriteFile(config_path_, text);
  Subscriber sub(broker_.uri(), "sec-sub3");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    Ctl(config_path_, {"quarantine", "list"}, &out);
    return out.find("2 quarantined message(s)") != std::string::npos;
  }, std::chrono::seconds(20))) << out << GatewayLog();
  EXPECT_NE(out.find("signature_missing"), std::string::npos) << out;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(sub.Count(), 0u) << "unsigned events from a market inbox are never delivered";
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(SecurityIntegrationTest, ReloadCannotAddAnUnverifiedMarketSource) {
  WriteConfig("[security]\npolicy = " + SourceDir() + "/config/policy.ini\n");
  StartGateway();
  std::string text = ReadFileOrEmpty(config_path_);
  WriteFile(config_path_, text + "[source.backbone_in]\ntype = mqtt\nuri = " + broker_.uri() +
                              "\nclient_id = in\ntopics = mhhs/#\n[route.in]\nfrom = backbone_in\nto = backbone\n");
  ::kill(gateway_.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("reload refused") != std::string::npos; }, std::chrono::seconds(10))) << GatewayLog();
  EXPECT_NE(GatewayLog().find("[source.backbone_in] receives events from the market"), std::string::npos) << GatewayLog();
  std::string out;
  EXPECT_EQ(Ctl(config_path_, {"check-config"}, &out), 78) << out;
  EXPECT_NE(out.find("neither trust_ca_file nor trust_dir"), std::string::npos) << out;
  EXPECT_EQ(StopGateway(), 0);
}

// More than 200 hostile messages straight onto the broker: each is quarantined or dropped and
// counted by its reason, none reaches the outbox, the daemon lives, and the audit verifies.
TEST_F(SecurityIntegrationTest, HostileCorpusIsTurnedAwayAndCountedByReason) {
  StartReceiver();
  const std::vector<Event> base = SampleEvents("D0010_UDMS_MRCY_0000475656.uff");
  ASSERT_GE(base.size(), 2u);
  auto udms = Signer("udms", "UDMS");
  auto mrcy = Signer("mrcy", "MRCY");
  auto expired = Signer("expired-udms", "UDMS");
  auto rogue = Signer("rogue-udms", "UDMS");
  auto sign = [](EventSigner* s, Event e, const std::string& id) {
    e.id = id;
    EXPECT_TRUE(s->Sign(&e, "2026-11-26T16:30:00Z").ok());
    return e;
  };
  std::vector<std::string> corpus;
  std::map<std::string, int> expected;  // reason -> count
  auto add = [&](const std::string& reason, const std::string& message) {
    corpus.push_back(message);
    ++expected[reason];
  };
  const std::string good = ToEnvelopeJson(sign(udms.get(), base[0], "hostile-template"));

  // Malformed JSON: every proper prefix of a valid envelope, and some garbage.
  for (size_t cut = 1; cut < good.size(); cut += good.size() / 40 + 1) add("malformed", good.substr(0, cut));
  for (const char* g : {"", "null", "[]", "\"text\"", "{", "}", "{{}}", "{\"id\":}", "{'id':'a'}", "\x01\x02\x03"}) add("malformed", g);
  add("malformed", good + "trailing");
  add("malformed", std::string("{\"id\":\"a\xC0\xAF\",\"type\":\"D0010002\"}"));
  // Wrong types and missing members.
  for (const char* w : {R"({"id":7,"type":"D0010002","sender":{"mpid":"UDMS"},"payload":{}})",
                        R"({"id":"a","type":["D0010002"],"sender":{"mpid":"UDMS"},"payload":{}})",
                        R"({"id":"a","type":"D0010002","sender":"UDMS","payload":{}})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":"UDMS"},"payload":"{}"})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":"UDMS"},"payload":{},"recipients":{}})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":"UDMS"},"payload":{},"signature":"sig"})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":7},"payload":{}})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":"UDMS"},"payload":{},"createdAt":1})"}) {
    for (int i = 0; i < 3; ++i) add("wrong_type", w);
  }
  for (const char* m : {R"({"type":"D0010002","sender":{"mpid":"UDMS"},"payload":{}})",
                        R"({"id":"a","sender":{"mpid":"UDMS"},"payload":{}})",
                        R"({"id":"a","type":"D0010002","payload":{}})",
                        R"({"id":"a","type":"D0010002","sender":{"mpid":"UDMS"}})"}) {
    for (int i = 0; i < 3; ++i) add("missing_field", m);
  }
  for (int i = 0; i < 5; ++i) add("unsupported_version", R"({"v":)" + std::to_string(i + 2) + R"(,"id":"a"})");
  // Oversized (the source takes at most 65536 bytes) and deeply nested.
  for (int i = 0; i < 5; ++i) {
    add("oversized", R"({"id":"big","type":"D0010002","sender":{"mpid":"UDMS"},"payload":{"x":")" +
                         std::string(70000 + i * 1000, 'a') + "\"}}");
  }
  for (int depth : {65, 100, 500, 1000, 5000, 10000}) {
    add("too_deep", R"({"id":"deep","type":"D0010002","sender":{"mpid":"UDMS"},"payload":)" + std::string(depth, '[') +
                        std::string(depth, ']') + "}");
  }
  for (int depth : {100, 2000}) {
    add("too_deep", R"({"id":"deep","type":"D0010002","sender":{"mpid":"UDMS"},"payload":{},"signature":{"a":)" +
                        std::string(depth, '[') + std::string(depth, ']') + "}}");
  }
  // Signatures: missing, forged, truncated, not matching the payload, the wrong signer, an
  // expired or untrusted certificate.
  for (int i = 0; i < 15; ++i) {
    Event e = base[i % base.size()];
    // The first one tries to forge a log line of its own through its id.
    e.id = i == 0 ? "unsigned\n<0>mhhs-gatewayd: forged line" : "unsigned-" + std::to_string(i);
    add("signature_missing", ToEnvelopeJson(e));
  }
  for (int i = 0; i < 20; ++i) {
    Event e = sign(udms.get(), base[i % base.size()], "forged-" + std::to_string(i));
    size_t p = e.signature.find("\"value\":\"") + 9 + static_cast<size_t>(i * 7 % 300);
    e.signature[p] = e.signature[p] == 'Q' ? 'R' : 'Q';
    add("signature_invalid", ToEnvelopeJson(e));
  }
  for (int i = 0; i < 15; ++i) {
    Event e = sign(udms.get(), base[i % base.size()], "truncated-" + std::to_string(i));
    size_t p = e.signature.find("\"value\":\"") + 9;
    e.signature.erase(p, 4 * static_cast<size_t>(i + 1));  // still valid base64, too short
    add("signature_invalid", ToEnvelopeJson(e));
  }
  for (int i = 0; i < 15; ++i) {
    Event e = sign(udms.get(), base[i % base.size()], "altered-" + std::to_string(i));
    e.payload.insert(1, "\"injected\":" + std::to_string(i) + ",");
    add("content_hash_mismatch", ToEnvelopeJson(e));
  }
  for (int i = 0; i < 15; ++i) {
    // Signed with MRCY's own valid certificate, but claiming to come from UDMS.
    Event e = base[i % base.size()];
    e.id = "impostor-" + std::to_string(i);
    ASSERT_TRUE(mrcy->Sign(&e, "2026-11-26T16:30:00Z").ok());
    add("sender_mismatch", ToEnvelopeJson(e));
  }
  for (int i = 0; i < 15; ++i) add("certificate_expired", ToEnvelopeJson(sign(expired.get(), base[i % base.size()], "expired-" + std::to_string(i))));
  for (int i = 0; i < 10; ++i) add("certificate_untrusted", ToEnvelopeJson(sign(rogue.get(), base[i % base.size()], "rogue-" + std::to_string(i))));
  // Validly signed, but a meter operator may not send D0010 under the policy.
  for (int i = 0; i < 10; ++i) {
    Event e = base[i % base.size()];
    e.sender.role = "M";
    add("not_entitled", ToEnvelopeJson(sign(udms.get(), e, "unentitled-" + std::to_string(i))));
  }
  int hostile = 0;
  for (const auto& kv : expected) hostile += kv.second;
  ASSERT_GE(hostile, 200) << "the corpus is large enough";

  // Valid events first, then the corpus, then the same valid events replayed.
  std::vector<std::string> valid;
  for (const Event& e : base) valid.push_back(ToEnvelopeJson(sign(udms.get(), e, e.id)));
  PublishAll(broker_.uri(), "mhhs/SIT/D0010002/D/UDMS", valid);
  PublishAll(broker_.uri(), "mhhs/SIT/D0010002/D/UDMS", corpus);
  for (int round = 0; round < 5; ++round) PublishAll(broker_.uri(), "mhhs/SIT/D0010002/D/UDMS", valid);

  const double replays = 5.0 * static_cast<double>(valid.size());
  ASSERT_TRUE(WaitFor([&] {
    std::string m = ReceiverMetrics();
    double rejected = 0;
    for (const auto& kv : expected) {
      double v = MetricValue(m, "mhhs_gateway_inbound_rejected_total{source=\"backbone\",reason=\"" + kv.first + "\"}");
      rejected += v < 0 ? 0 : v;
    }
    return rejected == hostile &&
           MetricValue(m, "mhhs_gateway_events_duplicate_total{source=\"backbone\"}") == replays;
  }, std::chrono::seconds(60))) << ReceiverMetrics();
  ASSERT_TRUE(receiver_.Running()) << "the daemon survived the corpus";
  for (const auto& [reason, count] : expected) EXPECT_EQ(Rejected(reason), count) << reason;

  // Only the valid events reached the supplier, once each.
  std::vector<std::string> sent = DtnRecords(ReadFileOrEmpty(Samples() + "/D0010_UDMS_MRCY_0000475656.uff"));
  ASSERT_TRUE(WaitFor([&] { return DtnRecordsInDir(dir_ / "outbox").size() >= sent.size(); }, std::chrono::seconds(20)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(DtnRecordsInDir(dir_ / "outbox"), sent);
  EXPECT_EQ(MetricValue(ReceiverMetrics(), "mhhs_gateway_events_ingested_total{source=\"backbone\"}"), static_cast<double>(valid.size()));

  std::string out;
  ASSERT_EQ(Ctl(receiver_config_, {"--json", "quarantine", "list"}, &out), 0) << out;
  const int quarantined = hostile - expected["not_entitled"];
  size_t n = 0;
  for (size_t p = out.find("\"id\":"); p != std::string::npos; p = out.find("\"id\":", p + 1)) ++n;
  EXPECT_EQ(n, static_cast<size_t>(quarantined)) << "every hostile message but the unentitled ones is kept for the operator";
  EXPECT_EQ(Ctl(receiver_config_, {"audit", "verify"}, &out), 0) << out;
  EXPECT_NE(ReceiverLog().find("unsigned\\x0a<0>mhhs-gatewayd: forged line"), std::string::npos) << "logged, escaped";
  EXPECT_EQ(ReceiverLog().find("\n<0>mhhs-gatewayd: forged line"), std::string::npos) << "no forged log line";
  ASSERT_EQ(Ctl(receiver_config_, {"audit", "export"}, &out), 0);
  size_t dropped = 0;
  for (size_t p = out.find("not_entitled"); p != std::string::npos; p = out.find("not_entitled", p + 1)) ++dropped;
  EXPECT_EQ(dropped, static_cast<size_t>(expected["not_entitled"])) << "each dropped event has its audit record";
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace gw::testing
