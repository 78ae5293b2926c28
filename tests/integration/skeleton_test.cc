// End to end: DTN files dropped into the inbox arrive on a real Mosquitto, exactly as
// mhhs-gatewayctl convert describes them, and survive a SIGKILL between ingest and delivery.
#include <signal.h>

#include <algorithm>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

const char* kValid[] = {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475657.uff",
                        "D0010_UDMS_BGAS_0000475658.uff"};
const char kBroken[] = "D0010_UDMS_MRCY_0000475659_broken.uff";


class SkeletonTest : public GatewayTest {
 protected:
  std::multiset<std::string> Expected() {
    std::multiset<std::string> out;
    for (const char* f : kValid) {
      for (const std::string& e : Convert(Samples() + "/" + f)) out.insert(e);
    }
    return out;
  }
};

TEST_F(SkeletonTest, DroppedFilesArriveOnTheBackboneExactly) {
  Subscriber sub(broker_.uri(), "test-sub-1");
  sub.Connect();
  StartGateway();
  for (const char* f : kValid) Drop(Samples() + "/" + f);
  Drop(Samples() + "/" + kBroken);
  std::multiset<std::string> expected = Expected();
  ASSERT_EQ(expected.size(), 6u);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= expected.size(); }, std::chrono::seconds(30)))
      << "received " << sub.Count();
  // Nothing more arrives (no duplicates in a clean run).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sub.Payloads(), expected);
  for (const auto& [topic, payload] : sub.Messages()) {
    EXPECT_EQ(topic, "mhhs/SIT/D0010002/D/UDMS") << payload;
  }
  // Files: valid ones archived, the broken one rejected with its errors beside it.
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(FilesIn(dir_ / "rejected"),
            (std::vector<std::string>{kBroken, std::string(kBroken) + ".errors.txt"}));
  std::string errors = ReadFileOrEmpty(dir_ / "rejected/" + kBroken + ".errors.txt");
  EXPECT_NE(errors.find(std::string(kBroken) + ":2: 026 mpanCore: expected exactly 13 digits (12000233059)"),
            std::string::npos) << errors;
  EXPECT_TRUE(FilesIn(dir_ / "inbox").empty());
  EXPECT_EQ(StopGateway(), 0);
  std::string log = GatewayLog();
  EXPECT_NE(log.find("<4>source.inbox: rejected " + std::string(kBroken)), std::string::npos) << log;
}

// QoS 2 (PUBREC, PUBREL, PUBCOMP) and MQTT 5 on the sink's own client, each against the real
// broker: every event arrives once, and the broker's log shows the protocol used.
TEST_F(SkeletonTest, SinkDeliversWithQos2AndMqtt5) {
  for (const char* variant : {"qos = 2\n", "qos = 2\nprotocol = 5\n", "qos = 1\nprotocol = 5\n"}) {
    SCOPED_TRACE(variant);
    config_path_.clear();
    WriteConfig();
    std::string text = ReadFileOrEmpty(config_path_);
    text.replace(text.find("qos = 1\n"), 8, variant);
    WriteFile(config_path_, text);
    ::unlink((dir_ / "journal.db").c_str());
    ::unlink((dir_ / "journal.db-wal").c_str());
    ::unlink((dir_ / "journal.db-shm").c_str());
    Subscriber sub(broker_.uri(), std::string("test-sub-q-") + std::to_string(std::hash<std::string>()(variant)));
    sub.Connect();
    StartGateway();
    Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");
    ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 3; }, std::chrono::seconds(20))) << GatewayLog();
    std::string out;
    ASSERT_TRUE(WaitFor([&] {
      RunCommand({CtlPath(), "--config", config_path_, "--json", "status"}, &out);
      return out.find(R"("sink":"backbone","pending":0,"delivered":3)") != std::string::npos;
    }, std::chrono::seconds(10))) << out;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(sub.Count(), 3u) << "each event once";
    EXPECT_EQ(StopGateway(), 0);
    ::rename((dir_ / "archive/D0010_UDMS_MRCY_0000475657.uff").c_str(), (dir_ / "done.uff").c_str());
  }
  std::string broker_log = ReadFileOrEmpty(broker_.dir() + "/mosquitto.log");
  EXPECT_NE(broker_log.find("p5"), std::string::npos) << "an MQTT 5 connection was made: " << broker_log.substr(0, 2000);
}

// More unfinished QoS 2 messages than the broker takes at once must not get the sink thrown
// off: on MQTT 3.1.1 the window stays within Mosquitto's default of 20; on MQTT 5 it follows
// the Receive Maximum the broker announces (5 here).
TEST_F(SkeletonTest, Qos2WindowStaysWithinWhatTheBrokerTakes) {
  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/python3", SourceDir() + "/tests/tools/gen_d0036.py", dir_ / "gen", "--mpans", "45", "--days", "1",
                        "--from-mpid", "UDMS"}, &out), 0) << out;
  Mosquitto strict(dir_ / "strict-broker", FreePort(), "allow_anonymous true\nmax_inflight_messages 5\n");
  strict.Start();
  for (const char* variant : {"protocol = 3.1.1\n", "protocol = 5\n"}) {
    SCOPED_TRACE(variant);
    const bool v5 = std::string(variant).find('5') != std::string::npos;
    Mosquitto& broker = v5 ? strict : broker_;
    config_path_.clear();
    WriteConfig("[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n");
    std::string text = ReadFileOrEmpty(config_path_);
    text.replace(text.find("participant_role = D\n"), 21, "participant_role = C\ndip_id = 1009012345\n");
    text.replace(text.find("qos = 1\n"), 8, std::string("qos = 2\n") + variant);
    text.replace(text.find(broker_.uri()), broker_.uri().size(), broker.uri());
    WriteFile(config_path_, text);
    for (const char* f : {"journal.db", "journal.db-wal", "journal.db-shm"}) ::unlink((dir_ / f).c_str());
    Subscriber sub(broker.uri(), std::string("qos2-window-") + (v5 ? "5" : "4"), "mhhs/#");
    sub.Connect();
    StartGateway();
    Drop(dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff");
    ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 45; }, std::chrono::seconds(30))) << sub.Count() << "\n" << GatewayLog();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(sub.Count(), 45u);
    EXPECT_EQ(GatewayLog().find("connection to the broker lost"), std::string::npos) << GatewayLog();
    EXPECT_EQ(StopGateway(), 0);
    ::rename((dir_ / "archive/D0036_UDMS_MRCY_0003600000.uff").c_str(), (dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff").c_str());
  }
  strict.Stop();
}

// A broker that refuses a message for good (MQTT 5 reason 0x87, not authorised) makes it a
// dead letter; the sink does not retry it for ever and nothing behind it waits.
TEST_F(SkeletonTest, BrokerRefusalIsADeadLetterNotAnEndlessRetry) {
  WriteFile(dir_ / "acl", "topic read #\n");
  Mosquitto strict(dir_ / "acl-broker", FreePort(), "allow_anonymous true\nacl_file " + dir_ / "acl" + "\n");
  strict.Start();
  WriteConfig();
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("qos = 1\n"), 8, "qos = 1\nprotocol = 5\n");
  text.replace(text.find(broker_.uri()), broker_.uri().size(), strict.uri());
  WriteFile(config_path_, text);
  StartGateway();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "list"}, &out);
    return out.find("0x87") != std::string::npos && out.find("UDMS-0000475657-3") != std::string::npos;
  }, std::chrono::seconds(20))) << out << GatewayLog();
  EXPECT_EQ(StopGateway(), 0);
  strict.Stop();
}

// Stop() interrupts a delivery blocked on a broker that stopped answering, also after the
// sink has reconnected once (the new connection must be the one interrupted).
TEST_F(SkeletonTest, StopInterruptsADeliveryStuckAfterAReconnect) {
  WriteConfig();
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("qos = 1\n"), 8, "qos = 1\npublish_timeout_s = 120\n");
  WriteFile(config_path_, text);
  StartGateway();
  broker_.Stop();
  broker_.Start();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("after 1 failed attempt") != std::string::npos ||
                                   GatewayLog().find("2 event(s) confirmed") != std::string::npos; },
                      std::chrono::seconds(20))) << GatewayLog();
  // The broker freezes: the next delivery waits for acknowledgements that do not come.
  ::kill(broker_.pid(), SIGSTOP);
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("0000475657.uff: 3 event(s) accepted") != std::string::npos; },
                      std::chrono::seconds(20))) << GatewayLog();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // shutdown_timeout_s is 3: without the interrupt the sink would wait out publish_timeout_s.
  int rc = gateway_.Stop(SIGTERM, std::chrono::seconds(30));
  ::kill(broker_.pid(), SIGCONT);
  EXPECT_EQ(rc, 0) << "the daemon stopped within 30 s\n" << GatewayLog();
}

TEST_F(SkeletonTest, KilledAfterIngestBeforeDeliveryLosesNothing) {
  // A persistent subscriber session exists before anything is published.
  {
    Subscriber early(broker_.uri(), "test-sub-2");
    early.Connect();
    early.Disconnect();
  }
  broker_.Stop();
  StartGateway();
  for (const char* f : kValid) Drop(Samples() + "/" + f);
  // Ingested: all files archived (so the journal has committed their events) while the
  // broker is down, so nothing can have been delivered yet.
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 3; }, std::chrono::seconds(30)))
      << GatewayLog();
  KillGateway();

  broker_.Start();
  Subscriber sub(broker_.uri(), "test-sub-2");
  sub.Connect();
  StartGateway();
  std::multiset<std::string> expected = Expected();
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= expected.size(); }, std::chrono::seconds(60)))
      << "received " << sub.Count() << " of " << expected.size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sub.Payloads(), expected);
  EXPECT_EQ(StopGateway(), 0);

  std::string out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "--json", "status"}, &out), 0) << out;
  EXPECT_NE(out.find(R"("sink":"backbone","pending":0,"delivered":6,"deadLetters":0)"), std::string::npos) << out;
}

TEST_F(SkeletonTest, BrokerOutageIsRiddenOutWithoutLoss) {
  Subscriber sub(broker_.uri(), "test-sub-3");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/" + kValid[0]);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 2; }, std::chrono::seconds(30)));
  sub.Disconnect();
  broker_.Stop();
  Drop(Samples() + "/" + kValid[1]);
  Drop(Samples() + "/" + kValid[2]);
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 3; }, std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the sink fails and backs off
  broker_.Start();
  sub.Connect();
  std::multiset<std::string> expected = Expected();
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= expected.size(); }, std::chrono::seconds(60)))
      << "received " << sub.Count() << " of " << expected.size();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(sub.Payloads(), expected);
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(SkeletonTest, SameFileDroppedTwiceIsDeliveredOnce) {
  Subscriber sub(broker_.uri(), "test-sub-4");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/" + kValid[0]);
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 1; }, std::chrono::seconds(30)));
  Drop(Samples() + "/" + kValid[0]);
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 2; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 2; }, std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(sub.Count(), 2u);
  EXPECT_NE(GatewayLog().find("2 already journalled"), std::string::npos);
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(SkeletonTest, BadConfigExitsWithEx_ConfigNamingTheKey) {
  WriteConfig("[sink.extra]\ntype = mqtt\nuri = tcp://127.0.0.1:1\nclient_id = x\nqso = 1\n");
  std::string out;
  int rc = RunCommand({DaemonPath(), "--config", config_path_}, &out);
  EXPECT_EQ(rc, 78);
  std::string text = ReadFileOrEmpty(config_path_);
  int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(text.find("qso = 1")), '\n'));
  EXPECT_NE(out.find("gateway.ini:" + std::to_string(line) + ": [sink.extra] qso: unknown key"), std::string::npos) << out;
  rc = RunCommand({DaemonPath(), "--config", config_path_, "--check-config"}, &out);
  EXPECT_EQ(rc, 78);
  rc = RunCommand({DaemonPath(), "--bogus"}, &out);
  EXPECT_EQ(rc, 78);
  EXPECT_NE(out.find("unrecognised option '--bogus'"), std::string::npos) << out;
}

TEST_F(SkeletonTest, CheckConfigAcceptsAGoodConfig) {
  WriteConfig();
  std::string out;
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_, "--check-config"}, &out), 0) << out;
  EXPECT_NE(out.find("configuration OK (1 source(s), 1 sink(s), 1 route(s))"), std::string::npos) << out;
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

// Regression: Paho's default buffer of 100 messages made every batch beyond it fail with
// "No more messages can be buffered" and crawl through retries.
TEST_F(SkeletonTest, LargeBatchIsDeliveredWithoutRetries) {
  std::string file = "ZHV|0000000777|D0010002|D|UDMS|X|MRCY|20260302153151||||OPER|\n";
  for (int i = 0; i < 600; ++i) {
    char mpan[16];
    std::snprintf(mpan, sizeof mpan, "%013d", 5000000 + i);
    file += std::string("026|") + mpan + "|V|\n028|M1|D|\n030|S|20260222000000|1.0|||T|N|\n";
  }
  file += "ZPT|0000000777|1800||600|20260302154650|\n";
  Subscriber sub(broker_.uri(), "test-sub-large");
  sub.Connect();
  StartGateway();
  DropText("large.uff", file);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 600; }, std::chrono::seconds(60))) << sub.Count();
  EXPECT_EQ(StopGateway(), 0);
  EXPECT_EQ(GatewayLog().find("not delivered"), std::string::npos) << GatewayLog();
}

}  // namespace
}  // namespace gw::testing
