// The backbone behind TLS: Mosquitto with require_certificate and an ACL, certificates made
// by openssl at test time, two gateways (a data service sending D0036 as IF-021, a supplier
// receiving D0036) talking only through it.
#include <signal.h>
#include <sys/stat.h>

#include "connectors/mqtt/mqtt_wire.h"
#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

std::string TlsListener(const std::string& pki, const std::string& acl) {
  return "cafile " + pki + "/ca.crt\ncertfile " + pki + "/server.crt\nkeyfile " + pki + "/server.key\n"
         "require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.2\nallow_anonymous false\n"
         "acl_file " + acl + "\n";
}

// Builds the PKI and the ACL before the fixture's broker starts.
struct PkiDir {
  TempDir dir;
  PkiDir() {
    MakeTestPki(dir.path());
    WriteFile(dir / "acl", "user UDMS\ntopic write mhhs/#\n\nuser MRCY\ntopic read mhhs/#\n");
  }
};

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : broker_(dir_ / "broker", 0, TlsListener(pki_.dir.path(), pki_.dir / "acl")) { broker_.Start(); }
  ~TlsTest() override {
    if (sender_.Running()) sender_.Stop(SIGKILL);
    if (receiver_.Running()) receiver_.Stop(SIGKILL);
    if (HasFailure()) {
      std::cerr << "---- sender ----\n" << ReadFileOrEmpty(dir_ / "sender.log") << "---- receiver ----\n"
                << ReadFileOrEmpty(dir_ / "receiver.log");
    }
  }
  std::string Uri() { return "ssl://127.0.0.1:" + std::to_string(broker_.port()); }

  std::string SenderConfig(const std::string& tls) {
    std::string path = dir_ / "sender.ini";
    WriteFile(path, "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = C\nenvironment = SIT\ndip_id = 1009012345\n"
                    "flow_dir = " + SourceDir() + "/config/flows\nlog_level = debug\n"
                    "[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n[journal]\npath = " + dir_ / "sender.db" + "\n"
                    "[source.inbox]\ntype = file\ndirectory = " + dir_ / "inbox" + "\narchive = " + dir_ / "archive" +
                    "\nrejected = " + dir_ / "rejected" + "\nsettle_ms = 100\npoll_ms = 100\n"
                    "[sink.backbone]\ntype = mqtt\nuri = " + Uri() + "\nclient_id = UDMS-gw-1\nconnect_timeout_s = 3\n"
                    "reconnect_max_ms = 500\nretry_base_ms = 100\nretry_max_ms = 500\n" + tls +
                    "[route.out]\nfrom = inbox\nto = backbone\n");
    return path;
  }
  std::string ReceiverConfig(const std::string& tls) {
    std::string path = dir_ / "receiver.ini";
    WriteFile(path, "[gateway]\nadmin_listen = off\nparticipant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\n"
                    "flow_dir = " + SourceDir() + "/config/flows\nlog_level = debug\n[journal]\npath = " + dir_ / "receiver.db" + "\n"
                    "[source.backbone]\ntype = mqtt\nuri = " + Uri() + "\nclient_id = MRCY-gw-in\ntopics = mhhs/SIT/IF-021/#\n"
                    "connect_timeout_s = 3\nreconnect_max_ms = 500\n" + tls +
                    "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\n[route.in]\nfrom = backbone\nto = outbox\n");
    return path;
  }
  std::string Tls(const std::string& ca, const std::string& client) {
    std::string s = "ca_file = " + pki_.dir / ca + "\n";
    if (!client.empty()) s += "cert_file = " + pki_.dir / (client + ".crt") + "\nkey_file = " + pki_.dir / (client + ".key") + "\n";
    return s;
  }
  void Start(Process* p, const std::string& config, const std::string& log,
             const std::map<std::string, std::string>& env = {}) {
    p->Start({DaemonPath(), "--config", config}, dir_ / log, env);
    ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(dir_ / log).find("started:") != std::string::npos || !p->Running(); },
                        std::chrono::seconds(20)));
    ASSERT_TRUE(p->Running()) << ReadFileOrEmpty(dir_ / log);
  }

  TempDir dir_;
  PkiDir pki_;
  Mosquitto broker_;
  Process sender_, receiver_;
};

TEST_F(TlsTest, D0036TravelsAsIf021OverMutualTlsBetweenTwoGateways) {
  Start(&receiver_, ReceiverConfig(Tls("ca.crt", "client2")), "receiver.log");
  ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(dir_ / "receiver.log").find("subscribed to ssl://") != std::string::npos; },
                      std::chrono::seconds(15))) << ReadFileOrEmpty(dir_ / "receiver.log");
  // The sender finds its key the way systemd's LoadCredential= hands it over.
  Start(&sender_, SenderConfig("ca_file = " + pki_.dir / "ca.crt" + "\ncert_file = ${CREDENTIALS_DIRECTORY}/client.crt\n"
                               "key_file = ${CREDENTIALS_DIRECTORY}/client.key\n"),
        "sender.log", {{"CREDENTIALS_DIRECTORY", pki_.dir.path()}});
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/python3", SourceDir() + "/tests/tools/gen_d0036.py", dir_ / "gen", "--mpans", "3", "--days", "2",
                        "--start", "20261024"}, &out), 0) << out;
  std::string original = ReadFileOrEmpty(dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff");
  ::mkdir((dir_ / "inbox").c_str(), 0755);
  WriteFile(dir_ / "inbox/d36.tmp", original);
  ASSERT_EQ(::rename((dir_ / "inbox/d36.tmp").c_str(), (dir_ / "inbox/d36.uff").c_str()), 0);
  auto outbox = [&] { return DtnRecordsInDir(dir_ / "outbox"); };
  ASSERT_TRUE(WaitFor([&] { return outbox().size() == DtnRecords(original).size(); }, std::chrono::seconds(30))) << outbox().size();
  EXPECT_EQ(outbox(), DtnRecords(original));
  EXPECT_EQ(sender_.Stop(SIGTERM), 0);
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
}

// The sink's client over TLS with more messages than its window: it then waits for half the
// window's acknowledgements at once (a low-water mark on the socket, counted in TLS bytes),
// which must neither hang nor lose a confirmation, for QoS 1 and 2 and MQTT 3.1.1 and 5, and
// must leave the connection fit for the next batch.
TEST_F(TlsTest, APublisherWaitingForManyAcknowledgementsOverTlsGetsEachOne) {
  for (int version : {4, 5}) {
    connectors::mqtt::WireOptions o;
    o.host = "127.0.0.1";
    o.port = broker_.port();
    o.tls = true;
    o.ca_file = pki_.dir / "ca.crt";
    o.cert_file = pki_.dir / "client.crt";
    o.key_file = pki_.dir / "client.key";
    o.client_id = "wire-tls-" + std::to_string(version);
    o.version = version;
    connectors::mqtt::WireClient client(o);
    Status connected = client.Connect();
    ASSERT_TRUE(connected.ok()) << connected.ToString();
    for (int qos : {1, 2, 1}) {
      std::vector<connectors::mqtt::OutboundMessage> messages;
      for (int i = 0; i < 300; ++i) messages.push_back({"mhhs/SIT/test", std::string(2000, 'a' + i % 26)});
      std::vector<Status> results;
      client.PublishBatch(messages, qos, 16, std::chrono::seconds(20), &results);
      ASSERT_EQ(results.size(), messages.size());
      for (size_t i = 0; i < results.size(); ++i) {
        ASSERT_TRUE(results[i].ok()) << "MQTT " << version << ", QoS " << qos << ", message " << i << ": " << results[i].ToString();
      }
      EXPECT_TRUE(client.connected()) << "MQTT " << version << ", QoS " << qos;
    }
  }
}

TEST_F(TlsTest, KeyReadableByOthersIsRefusedAtStart) {
  std::string key = pki_.dir / "client.key";
  ::chmod(key.c_str(), 0644);
  std::string out;
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", SenderConfig(Tls("ca.crt", "client")), "--check-config"}, &out), 78);
  EXPECT_NE(out.find("[sink.backbone] key_file: " + key + " is readable by group or others (mode 0644)"), std::string::npos) << out;
  ::chmod(key.c_str(), 0600);
}

TEST_F(TlsTest, WrongCaIsAClearErrorNotAHang) {
  Start(&receiver_, ReceiverConfig(Tls("other-ca.crt", "client2")), "receiver.log");
  Start(&sender_, SenderConfig(Tls("other-ca.crt", "client")), "sender.log");
  EXPECT_TRUE(WaitFor([&] {
    return ReadFileOrEmpty(dir_ / "receiver.log").find("TLS handshake failed: certificate verify failed") != std::string::npos;
  }, std::chrono::seconds(15))) << ReadFileOrEmpty(dir_ / "receiver.log");
  EXPECT_TRUE(WaitFor([&] {
    std::string log = ReadFileOrEmpty(dir_ / "sender.log");
    return log.find("cannot connect to ssl://") != std::string::npos && log.find("certificate verify failed") != std::string::npos;
  }, std::chrono::seconds(15))) << ReadFileOrEmpty(dir_ / "sender.log");
  // Still running and stoppable.
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
  EXPECT_EQ(sender_.Stop(SIGTERM), 0);
}

TEST_F(TlsTest, MissingClientCertificateIsAClearErrorNotAHang) {
  Start(&receiver_, ReceiverConfig(Tls("ca.crt", "")), "receiver.log");
  EXPECT_TRUE(WaitFor([&] {
    std::string log = ReadFileOrEmpty(dir_ / "receiver.log");
    return log.find("ssl://127.0.0.1:" + std::to_string(broker_.port())) != std::string::npos &&
           (log.find("certificate required") != std::string::npos || log.find("handshake failure") != std::string::npos ||
            log.find("connection closed by the broker") != std::string::npos);
  }, std::chrono::seconds(15))) << ReadFileOrEmpty(dir_ / "receiver.log");
  EXPECT_EQ(receiver_.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace gw::testing
