// The `dip` sink against the DIP simulator (tests/dip_sim) over mutual TLS with certificates
// made by openssl: D0036 files become IF-021 submissions signed with the X-DIP-* scheme and
// pass the published schema; a tampered request is refused; outage bursts and lost answers are
// retried without loss or a second acceptance; a schema failure is a dead letter with MSG1001.
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/StreamCopier.h>

#include <sys/stat.h>

#include <set>
#include <sstream>

#include "gw/dip.h"
#include "gw/envelope.h"
#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

class DipTest : public GatewayTest {
 protected:
  static void SetUpTestSuite() { Poco::Net::initializeSSL(); }
  static void TearDownTestSuite() { Poco::Net::uninitializeSSL(); }
  static std::string Pki(const std::string& n) { return SharedPki(n); }
  static std::string Validator() { return SourceDir() + "/../shared/tools/dip-validate"; }

  void StartSim(const std::vector<std::string>& extra = {}) {
    WriteFile(dir_ / "api.key", "key-3f9a2c\n");
    ::chmod((dir_ / "api.key").c_str(), 0600);
    std::vector<std::string> argv = {GW_TEST_DIP_SIM, "--port", std::to_string(sim_port_), "--cert", Pki("server.crt"), "--key",
                                     Pki("server.key"), "--ca", Pki("ca.crt"), "--api-key-file", dir_ / "api.key", "--out",
                                     dir_ / "accepted.jsonl", "--validator", Validator()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    sim_.Start(argv, dir_ / "sim.log");
    ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(dir_ / "sim.log").find("listening") != std::string::npos || !sim_.Running(); },
                        std::chrono::seconds(10)));
    ASSERT_TRUE(sim_.Running()) << ReadFileOrEmpty(dir_ / "sim.log");
  }

  // The data service's gateway: D0036 files in, IF-021 to the DIP.
  void WriteDipConfig(bool sink_validates = true) {
    WriteConfig("[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n"
                "[sink.dip]\ntype = dip\nbase_url = https://127.0.0.1:" + std::to_string(sim_port_) + "\ncert_file = " +
                Pki("client.crt") + "\nkey_file = " + Pki("client.key") + "\nca_file = " + Pki("ca.crt") +
                "\napi_key_file = " + dir_ / "api.key" + "\nmax_messages = 10\nretry_base_ms = 100\nretry_max_ms = 400\n" +
                (sink_validates ? "validator = " + Validator() + "\n" : "") + "[route.dip]\nfrom = inbox\nto = dip\n");
    std::string text = ReadFileOrEmpty(config_path_);
    text.replace(text.find("participant_role = D\n"), 21, "participant_role = C\ndip_id = 1009012345\n");
    // Only the DIP route: the fixture's backbone route goes.
    const std::string fixture_route = "[route.all]\nfrom = inbox\nto = backbone\n";
    text.replace(text.find(fixture_route), fixture_route.size(), "");
    WriteFile(config_path_, text);
  }

  std::string MakeD0036(int mpans) {
    std::string out;
    EXPECT_EQ(RunCommand({"/usr/bin/python3", SourceDir() + "/tests/tools/gen_d0036.py", dir_ / "gen", "--mpans",
                          std::to_string(mpans), "--days", "1", "--from-mpid", "UDMS"}, &out), 0) << out;
    return dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff";
  }

  // senderUniqueReference of every message the simulator accepted, in order.
  std::vector<std::string> Accepted() {
    std::vector<std::string> refs;
    std::istringstream in(ReadFileOrEmpty(dir_ / "accepted.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      size_t p = line.find("\"senderUniqueReference\":\"");
      if (p != std::string::npos) refs.push_back(line.substr(p + 25, line.find('"', p + 25) - p - 25));
    }
    return refs;
  }

  std::string Status() {
    std::string out;
    RunCommand({CtlPath(), "--config", config_path_, "--json", "status"}, &out);
    return out;
  }

  // An IF-021 event whose payload the schema refuses, published on the backbone and routed to
  // the dip sink; returns `dead-letters list` once it shows `expect`. The DIP accepts nothing.
  std::string DeadLetterForAnInvalidPayload(const std::string& id, bool sink_validates, const std::string& expect) {
    StartSim();
    WriteDipConfig(sink_validates);
    std::string text = ReadFileOrEmpty(config_path_);
    WriteFile(config_path_, text + "[source.market]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = dip-test-" + id +
                                "\ntopics = mhhs/in/#\n[route.market]\nfrom = market\nto = dip\n");
    StartGateway();
    EXPECT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
    PublishAll(broker_.uri(), "mhhs/in/IF-021",
               {R"({"v":1,"id":")" + id + R"(","type":"IF-021","sender":{"mpid":"UDMS","role":"SDS"},"recipients":[],)"
                R"("createdAt":"2026-11-26T10:00:00+00:00","correlationId":null,"payload":{"CommonBlock":{},"CustomBlock":{}}})"});
    std::string out;
    EXPECT_TRUE(WaitFor([&] {
      RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "list"}, &out);
      return out.find(expect) != std::string::npos;
    }, std::chrono::seconds(30))) << out << GatewayLog();
    EXPECT_TRUE(Accepted().empty());
    EXPECT_EQ(StopGateway(), 0);
    return out;
  }

  int sim_port_ = FreePort();
  Process sim_;
};

TEST_F(DipTest, SignedSubmissionsAreAcceptedOnce) {
  StartSim();
  WriteDipConfig();
  StartGateway();
  Drop(MakeD0036(25));
  ASSERT_TRUE(WaitFor([&] { return Accepted().size() >= 25; }, std::chrono::seconds(60)))
      << Accepted().size() << "\n" << GatewayLog() << ReadFileOrEmpty(dir_ / "sim.log");
  std::vector<std::string> refs = Accepted();
  EXPECT_EQ(std::set<std::string>(refs.begin(), refs.end()).size(), 25u) << "each message accepted once";
  ASSERT_TRUE(WaitFor([&] { return Status().find(R"("sink":"dip","pending":0,"delivered":25)") != std::string::npos; },
                      std::chrono::seconds(10))) << Status();
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(DipTest, OutageBurstsAndLostAnswersAreRetriedWithoutLossOrASecondAcceptance) {
  // Three 503s, then the first accepted request's answer is lost: the retry meets MSG1006.
  StartSim({"--fail-first", "3", "--lose-answer", "1"});
  WriteDipConfig();
  StartGateway();
  Drop(MakeD0036(30));
  ASSERT_TRUE(WaitFor([&] { return Status().find(R"("sink":"dip","pending":0,"delivered":30)") != std::string::npos; },
                      std::chrono::seconds(60))) << Status() << GatewayLog();
  std::vector<std::string> refs = Accepted();
  EXPECT_EQ(refs.size(), 30u) << "nothing lost, nothing accepted twice";
  EXPECT_EQ(std::set<std::string>(refs.begin(), refs.end()).size(), 30u);
  EXPECT_NE(GatewayLog().find("HTTP 503"), std::string::npos) << GatewayLog();
  EXPECT_NE(GatewayLog().find("(MSG1006): an earlier attempt got through; delivered"), std::string::npos) << GatewayLog();
  std::string out;
  RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "list"}, &out);
  EXPECT_EQ(out.find("MSG"), std::string::npos) << out;
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(DipTest, SchemaFailureIsADeadLetterWithTheDipsCode) {
  // The sink does not validate here: the simulator (the DIP) does, and refuses the message.
  std::string out = DeadLetterForAnInvalidPayload("bad-1", /*sink_validates=*/false, "MSG1001 - Schema Failure");
  EXPECT_NE(out.find("bad-1"), std::string::npos) << out;
}

// With `validator`, the sink checks each payload itself and never sends one that fails: a
// dead letter with the validator's reason, and the DIP sees nothing of it.
TEST_F(DipTest, PayloadsFailingTheSchemaAreNeverSent) {
  std::string out = DeadLetterForAnInvalidPayload("bad-2", /*sink_validates=*/true, "bad-2");
  EXPECT_NE(out.find("schema:"), std::string::npos) << out;
  EXPECT_EQ(out.find("MSG1001"), std::string::npos) << "refused before sending, not by the DIP: " << out;
}

TEST_F(DipTest, TamperedOrUnsignedRequestsAreRefused) {
  StartSim();
  SecurityConfig sc;
  sc.configured = true;
  sc.key_file = Pki("client.key");
  sc.certificate_file = Pki("client.crt");
  auto signer = EventSigner::Load(sc, "UDMS");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, Pki("client.key"), Pki("client.crt"),
                                                       Pki("ca.crt"), Poco::Net::Context::VERIFY_STRICT, 9, false);
  const std::string url = "https://127.0.0.1:" + std::to_string(sim_port_) + "/dip-channel/IF-021";
  auto post = [&](const std::string& body, const DipSignatureHeaders* h, std::string* answer) {
    Poco::Net::HTTPSClientSession session("127.0.0.1", static_cast<Poco::UInt16>(sim_port_), ctx);
    Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, "/dip-channel/IF-021", Poco::Net::HTTPMessage::HTTP_1_1);
    req.setContentType("application/json");
    req.setContentLength(static_cast<std::streamsize>(body.size()));
    req.set("X-API-Key", "key-3f9a2c");
    if (h) {
      for (const auto& [name, value] : DipHeaderFields(*h)) req.set(name, value);
    }
    session.sendRequest(req) << body;
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    Poco::StreamCopier::copyToString(in, *answer);
    return static_cast<int>(resp.getStatus());
  };
  const std::string body = R"([{"payload":{"CommonBlock":{},"CustomBlock":{}}}])";
  auto h = SignDipRequest(**signer, "POST", url, body, IsoUtc(static_cast<int64_t>(std::time(nullptr))));
  ASSERT_TRUE(h.ok());
  std::string answer;
  EXPECT_EQ(post(body + " ", &*h, &answer), 401) << answer;
  EXPECT_NE(answer.find("content_hash_mismatch"), std::string::npos) << answer;
  EXPECT_EQ(post(body, nullptr, &answer), 401) << answer;
  EXPECT_NE(answer.find("signature_missing"), std::string::npos) << answer;
  // Correctly signed, it passes the signature and meets the schema check.
  EXPECT_EQ(post(body, &*h, &answer), 400) << answer;
  EXPECT_NE(answer.find("MSG1001 - Schema Failure"), std::string::npos) << answer;
  EXPECT_TRUE(Accepted().empty());
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

// The other direction: the DIP calls the gateway's webhook.
class DipWebhookTest : public DipTest {
 protected:
  // The supplier's gateway: DIP webhook in, D0036 files out.
  void StartReceiver() {
    config_path_ = dir_ / "receiver.ini";
    WriteFile(config_path_,
              "[gateway]\nadmin_listen = off\nshutdown_timeout_s = 3\nparticipant_mpid = MRCY\nparticipant_role = X\n"
              "environment = SIT\nflow_dir = " + SourceDir() + "/config/flows\nlog_level = debug\n"
              "[journal]\npath = " + dir_ / "receiver.db" + "\n"
              "[source.dip]\ntype = dip\nlisten = 127.0.0.1:" + std::to_string(hook_port_) + "\ncert_file = " + Pki("server.crt") +
              "\nkey_file = " + Pki("server.key") + "\nca_file = " + Pki("ca.crt") + "\ntrust_ca_file = " + Pki("ca.crt") +
              "\nsender.1009012345 = UDMS\n"
              "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\nretry_base_ms = 100\nretry_max_ms = 500\n"
              "[route.in]\nfrom = dip\nto = outbox\n");
    StartGateway();
    ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("DIP webhook listening") != std::string::npos; }, std::chrono::seconds(10)));
  }

  // The DIP's side: a signed, mutually authenticated POST to the webhook.
  int Call(const std::string& path, const std::string& body, bool sign, bool tamper, std::string* answer) {
    SecurityConfig sc;
    sc.configured = true;
    sc.key_file = Pki("client.key");
    sc.certificate_file = Pki("client.crt");
    auto signer = EventSigner::Load(sc, "UDMS");
    EXPECT_TRUE(signer.ok());
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, Pki("client.key"), Pki("client.crt"),
                                                         Pki("ca.crt"), Poco::Net::Context::VERIFY_STRICT, 9, false);
    Poco::Net::HTTPSClientSession session("127.0.0.1", static_cast<Poco::UInt16>(hook_port_), ctx);
    Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
    const std::string sent = tamper ? body + " " : body;
    req.setContentType("application/json");
    req.setContentLength(static_cast<std::streamsize>(sent.size()));
    if (sign) {
      auto h = SignDipRequest(**signer, "POST", "https://127.0.0.1:" + std::to_string(hook_port_) + path, body,
                              IsoUtc(static_cast<int64_t>(std::time(nullptr))));
      for (const auto& [name, value] : DipHeaderFields(*h)) req.set(name, value);
    }
    session.sendRequest(req) << sent;
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    Poco::StreamCopier::copyToString(in, *answer);
    return static_cast<int>(resp.getStatus());
  }

  // IF-021 payloads as the data service's gateway makes them, as a DIP message array.
  std::string Payloads(const std::string& d0036) {
    WriteFile(dir_ / "sender.ini", "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = C\nenvironment = SIT\n"
                                   "dip_id = 1009012345\n[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n[journal]\npath = " +
                                       dir_ / "sender.db" + "\n");
    std::string out;
    EXPECT_EQ(RunCommand({CtlPath(), "--config", dir_ / "sender.ini", "--flow-dir", SourceDir() + "/config/flows", "convert", d0036}, &out), 0) << out;
    std::string array = "[";
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      auto e = ParseEnvelope(line);
      if (!e.ok()) continue;
      array += (array.size() > 1 ? "," : "") + std::string("{\"payload\":") + e->payload + "}";
    }
    return array + "]";
  }

  std::string Events() {
    std::string out;
    RunCommand({CtlPath(), "--config", config_path_, "--json", "status"}, &out);
    return out;
  }

  int hook_port_ = FreePort();
};

TEST_F(DipWebhookTest, SignedCallbackIsJournalledThenAnsweredAndReachesTheOutboxAsD0036) {
  StartReceiver();
  const std::string d0036 = MakeD0036(4);
  std::string answer;
  ASSERT_EQ(Call("/webhook/IF-021", Payloads(d0036), true, false, &answer), 201) << answer << GatewayLog();
  EXPECT_NE(answer.find("MSG0000 - Success"), std::string::npos) << answer;
  // 201 came after the commit: the journal already holds the four events.
  EXPECT_NE(Events().find(R"("events":4)"), std::string::npos) << Events();
  ASSERT_TRUE(WaitFor([&] { return DtnRecordsInDir(dir_ / "outbox").size() == DtnRecords(ReadFileOrEmpty(d0036)).size(); },
                      std::chrono::seconds(20))) << GatewayLog();
  EXPECT_EQ(DtnRecordsInDir(dir_ / "outbox"), DtnRecords(ReadFileOrEmpty(d0036))) << "the supplier gets the data service's records";
  // The DIP sending the same again (a retry) changes nothing.
  ASSERT_EQ(Call("/webhook/IF-021", Payloads(d0036), true, false, &answer), 201) << answer;
  EXPECT_NE(Events().find(R"("events":4)"), std::string::npos) << Events();
  EXPECT_EQ(StopGateway(), 0);
}

// Both directions through the simulator: the data service's gateway submits, the DIP
// publishes on to the supplier's webhook, and the supplier's outbox gets the same D0036.
TEST_F(DipWebhookTest, DataServiceToDipToSupplierEndToEnd) {
  WriteDipConfig();
  const std::string sender_config = config_path_;
  StartReceiver();
  StartSim({"--callback", "https://127.0.0.1:" + std::to_string(hook_port_), "--client-cert", Pki("client.crt"), "--client-key",
            Pki("client.key")});
  Process sender;
  sender.Start({DaemonPath(), "--config", sender_config}, dir_ / "sender.log");
  ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(dir_ / "sender.log").find("started:") != std::string::npos; },
                      std::chrono::seconds(20))) << ReadFileOrEmpty(dir_ / "sender.log");
  const std::string d0036 = MakeD0036(6);
  Drop(d0036);
  ASSERT_TRUE(WaitFor([&] { return DtnRecordsInDir(dir_ / "outbox").size() == DtnRecords(ReadFileOrEmpty(d0036)).size(); },
                      std::chrono::seconds(60)))
      << ReadFileOrEmpty(dir_ / "sender.log") << ReadFileOrEmpty(dir_ / "sim.log") << GatewayLog();
  EXPECT_EQ(DtnRecordsInDir(dir_ / "outbox"), DtnRecords(ReadFileOrEmpty(d0036)));
  EXPECT_NE(ReadFileOrEmpty(dir_ / "sim.log").find("/webhook/IF-021: 201"), std::string::npos) << ReadFileOrEmpty(dir_ / "sim.log");
  EXPECT_EQ(sender.Stop(SIGTERM), 0);
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(DipWebhookTest, ForgedOrUnknownCallsAreRefusedAndNothingIsJournalled) {
  StartReceiver();
  const std::string body = Payloads(MakeD0036(2));
  std::string answer;
  EXPECT_EQ(Call("/webhook/IF-021", body, true, true, &answer), 401) << answer;
  EXPECT_EQ(Call("/webhook/IF-021", body, false, false, &answer), 401) << answer;
  EXPECT_EQ(Call("/webhook/IF-999", body, true, false, &answer), 400) << answer;
  EXPECT_NE(answer.find("Unknown interface"), std::string::npos) << answer;
  EXPECT_NE(Events().find(R"("events":0)"), std::string::npos) << Events();
  EXPECT_NE(GatewayLog().find("refused a webhook call"), std::string::npos) << GatewayLog();
  EXPECT_EQ(StopGateway(), 0);
}

}  // namespace
}  // namespace gw::testing
