// The backbone-to-legacy direction with the real daemon: IF-021 on Mosquitto -> the `mqtt`
// source (persistent session, acknowledged after commit) -> the journal -> the `file` sink ->
// a D0036 file in the outbox.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include "connectors/mqtt/mqtt_wire.h"
#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

class ConnectorsTest : public GatewayTest {
 protected:
  // A D0036 file of `mpans` x `days` and its IF-021 envelopes, as the sending gateway makes them.
  void MakeIf021(int mpans, int days, std::string* d0036, std::vector<std::string>* envelopes) {
    std::string out;
    ASSERT_EQ(RunCommand({"/usr/bin/python3", SourceDir() + "/tests/tools/gen_d0036.py", dir_ / "gen", "--mpans",
                          std::to_string(mpans), "--days", std::to_string(days), "--to-mpid", "MRCY"}, &out), 0) << out;
    std::string file = dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff";
    *d0036 = ReadFileOrEmpty(file);
    WriteFile(dir_ / "sender.ini",
              "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = C\nenvironment = SIT\ndip_id = 1009012345\n"
              "[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n[journal]\npath = " + dir_ / "sender.db" + "\n");
    ASSERT_EQ(RunCommand({CtlPath(), "--config", dir_ / "sender.ini", "--flow-dir", SourceDir() + "/config/flows", "convert", file}, &out), 0) << out;
    envelopes->clear();
    size_t p = 0;
    while (p < out.size()) {
      size_t nl = out.find('\n', p);
      if (nl > p) envelopes->push_back(out.substr(p, nl - p));
      p = nl + 1;
    }
  }

  // The receiving supplier's gateway: backbone in, D0036 files out.
  void WriteReceiverConfig(const std::string& extra_source = "") {
    config_path_ = dir_ / "receiver.ini";
    WriteFile(config_path_,
              "[gateway]\nadmin_listen = off\nparticipant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\nflow_dir = " + SourceDir() +
              "/config/flows\nlog_level = debug\n[journal]\npath = " + journal_ + "\n"
              "[source.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = MRCY-gw-in\n"
              "topics = mhhs/SIT/IF-021/#\nreconnect_max_ms = 500\nconnect_timeout_s = 2\n" + extra_source +
              "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\nretry_base_ms = 100\nretry_max_ms = 500\n"
              "[route.in]\nfrom = backbone\nto = outbox\n");
  }

  std::vector<std::string> OutboxRecords() { return DtnRecordsInDir(dir_ / "outbox"); }

  std::string journal_ = dir_ / "receiver.db";
};

TEST_F(ConnectorsTest, If021FromTheBackboneBecomesD0036InTheOutbox) {
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(3, 2, &d0036, &envelopes);
  ASSERT_EQ(envelopes.size(), 6u);
  WriteReceiverConfig();
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(30)))
      << "records in outbox: " << OutboxRecords().size();
  EXPECT_EQ(OutboxRecords(), DtnRecords(d0036)) << "the legacy supplier gets back the records the data service sent";
  auto files = FilesIn(dir_ / "outbox");
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(files[0], "D0036001_UDMS_MRCY_0000000001.uff");
  std::string text = ReadFileOrEmpty(dir_ / "outbox/" + files[0]);
  EXPECT_EQ(text.rfind("ZHV|0000000001|D0036001|C|UDMS|X|MRCY|", 0), 0u) << text.substr(0, 80);
  // The written file is itself a valid DTN file.
  std::string out;
  EXPECT_EQ(RunCommand({CtlPath(), "--flow-dir", SourceDir() + "/config/flows", "--mapping", "none", "check-file", dir_ / "outbox/" + files[0]}, &out), 0) << out;
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(ConnectorsTest, MessagesPublishedWhileTheGatewayIsDownArriveAfterItReturns) {
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(2, 2, &d0036, &envelopes);
  WriteReceiverConfig();
  StartGateway();  // establishes the persistent session
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
  EXPECT_EQ(StopGateway(), 0);
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(30)))
      << OutboxRecords().size();
  EXPECT_EQ(OutboxRecords(), DtnRecords(d0036));
  EXPECT_NE(GatewayLog().find("session resumed"), std::string::npos);
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(ConnectorsTest, InvalidMessagesAreDroppedWithAReasonAndTheRestFlows) {
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(1, 1, &d0036, &envelopes);
  WriteReceiverConfig();
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", {"not json", R"({"v":1,"id":"x"})"});
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(30)));
  EXPECT_NE(GatewayLog().find("quarantined a message on mhhs/SIT/IF-021/SDS/UDMS: envelope: not a JSON object"), std::string::npos)
      << GatewayLog();
  std::string out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "quarantine", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("2 quarantined message(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("envelope type: missing"), std::string::npos) << out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "quarantine", "show", "1"}, &out), 0) << out;
  EXPECT_NE(out.find("not json"), std::string::npos) << "the raw message is kept" << out;
  EXPECT_EQ(StopGateway(), 0);
}

// A message is acknowledged to the broker only after its journal commit: with the journal's
// disk full the gateway cannot commit, is killed, and the message must still come back.
TEST_F(ConnectorsTest, MessageIsNotAcknowledgedBeforeItsJournalCommit) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs for the journal";
  std::string jdir = dir_ / "jfs";
  ASSERT_EQ(::mkdir(jdir.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", jdir.c_str(), "tmpfs", 0, "size=2m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string d;
    ~Unmount() { ::umount2(d.c_str(), MNT_DETACH); }
  } unmount{jdir};
  journal_ = jdir + "/receiver.db";
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(1, 2, &d0036, &envelopes);
  WriteReceiverConfig();
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
  std::string filler = jdir + "/filler";
  {
    FILE* f = std::fopen(filler.c_str(), "wb");
    std::string block(16 * 1024, 'f');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
    }
    std::fclose(f);
  }
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("not committed, will be offered again") != std::string::npos; },
                      std::chrono::seconds(30))) << GatewayLog();
  KillGateway();
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(30)))
      << "the broker must still hold the unacknowledged messages; outbox has " << OutboxRecords().size();
  EXPECT_EQ(OutboxRecords(), DtnRecords(d0036));
  EXPECT_EQ(StopGateway(), 0);
}

// The mqtt source acknowledges a committed batch with one write: every message in it must
// reach the real broker as acknowledged, and none outside it. Mosquitto sends a session 20
// unacknowledged messages at a time: the first 20 are acknowledged in one call, then 10 of the
// next 20. The session, resumed, gets exactly the 20 messages not acknowledged.
TEST_F(ConnectorsTest, MessagesAcknowledgedInOneWriteAreNotSentAgain) {
  using connectors::mqtt::InboundMessage;
  connectors::mqtt::WireOptions o;
  o.host = "127.0.0.1";
  o.port = broker_.port();
  o.client_id = "batch-ack";
  o.clean_session = false;
  {
    connectors::mqtt::WireClient sub(o);
    ASSERT_TRUE(sub.Connect().ok());
    ASSERT_TRUE(sub.Subscribe({"batch/#"}, 1).ok());
    connectors::mqtt::WireOptions po = o;
    po.client_id = "batch-pub";
    po.clean_session = true;
    connectors::mqtt::WireClient pub(po);
    ASSERT_TRUE(pub.Connect().ok());
    std::vector<connectors::mqtt::OutboundMessage> out;
    for (int i = 0; i < 50; ++i) out.push_back({"batch/t", "m" + std::to_string(i)});
    std::vector<Status> results;
    pub.PublishBatch(out, 1, 16, std::chrono::seconds(10), &results);
    for (const Status& r : results) ASSERT_TRUE(r.ok()) << r.ToString();
    for (size_t ack : {20, 10}) {
      std::vector<InboundMessage> got;
      while (got.size() < 20) {
        InboundMessage m;
        auto r = sub.Receive(&m, std::chrono::seconds(10));
        ASSERT_TRUE(r.ok() && *r) << "received " << got.size() << " of 20";
        got.push_back(std::move(m));
      }
      got.resize(ack);
      ASSERT_TRUE(sub.Ack(got).ok());
    }
    // Mosquitto takes one packet per wake-up, and drops a client whose socket was reset
    // without reading the rest: once its PINGRESP is here, every acknowledgement before the
    // PINGREQ was taken (the messages it sends meanwhile stay unacknowledged).
    ASSERT_TRUE(sub.Ping().ok());
    sub.Close();
  }
  connectors::mqtt::WireClient again(o);
  ASSERT_TRUE(again.Connect().ok());
  EXPECT_TRUE(again.session_present());
  std::vector<std::string> redelivered;
  for (;;) {
    InboundMessage m;
    auto r = again.Receive(&m, std::chrono::seconds(2));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!*r) break;
    redelivered.push_back(m.payload);
  }
  std::vector<std::string> expected;
  for (int i = 30; i < 50; ++i) expected.push_back("m" + std::to_string(i));
  EXPECT_EQ(redelivered, expected);
}

TEST_F(ConnectorsTest, BadSourceKeyIsNamedAtStart) {
  WriteReceiverConfig("topic = typo\n");
  std::string out;
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_, "--check-config"}, &out), 78);
  EXPECT_NE(out.find("[source.backbone] topic: unknown key"), std::string::npos) << out;
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

TEST_F(ConnectorsTest, BrokerDownForThirtySecondsLosesNothingInEitherDirection) {
  // One gateway carries both directions: D0010 files out to the backbone, IF-021 in to files.
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(2, 3, &d0036, &envelopes);
  config_path_ = dir_ / "both.ini";
  WriteFile(config_path_,
            "[gateway]\nadmin_listen = off\nparticipant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\nflow_dir = " + SourceDir() +
            "/config/flows\nlog_level = info\n[journal]\npath = " + journal_ + "\n"
            "[source.inbox]\ntype = file\ndirectory = " + dir_ / "inbox" + "\narchive = " + dir_ / "archive" +
            "\nrejected = " + dir_ / "rejected" + "\nsettle_ms = 100\npoll_ms = 100\n"
            "[source.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = MRCY-gw-in\ntopics = mhhs/SIT/IF-021/#\n"
            "reconnect_max_ms = 1000\nconnect_timeout_s = 2\nkeepalive_s = 5\n"
            "[sink.out]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = MRCY-gw-out\nreconnect_max_ms = 1000\n"
            "connect_timeout_s = 2\nretry_base_ms = 100\nretry_max_ms = 1000\n"
            "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\n"
            "[route.out]\nfrom = inbox\nto = out\n[route.in]\nfrom = backbone\nto = outbox\n");
  Subscriber sub(broker_.uri(), "outage-sub", "mhhs/SIT/D0010002/#");
  sub.Connect();
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to") != std::string::npos; }, std::chrono::seconds(10)));
  // Half of each direction before the outage.
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", {envelopes.begin(), envelopes.begin() + 3});
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 2; }, std::chrono::seconds(20)));
  sub.Disconnect();
  broker_.Stop();
  // During the outage: files keep arriving and are journalled.
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");
  Drop(Samples() + "/D0010_UDMS_BGAS_0000475658.uff");
  std::this_thread::sleep_for(std::chrono::seconds(30));
  EXPECT_TRUE(gateway_.Running());
  EXPECT_EQ(FilesIn(dir_ / "archive").size(), 3u) << "files are journalled while the backbone is down";
  broker_.Start();
  sub.Connect();
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", {envelopes.begin() + 3, envelopes.end()});
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 6; }, std::chrono::seconds(60))) << "outbound received " << sub.Count();
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(60)))
      << "inbound records " << OutboxRecords().size();
  std::set<std::string> ids;
  for (const auto& m : sub.Messages()) ids.insert(m.second.substr(0, m.second.find("\",\"type\"")));
  EXPECT_EQ(ids.size(), 6u);
  EXPECT_EQ(OutboxRecords(), DtnRecords(d0036));
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(ConnectorsTest, FailsOverToTheNextBrokerInTheList) {
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(1, 2, &d0036, &envelopes);
  WriteReceiverConfig();
  std::string cfg = ReadFileOrEmpty(config_path_);
  int dead = FreePort();
  cfg.replace(cfg.find("uri = " + broker_.uri()), 6 + broker_.uri().size(),
              "uri = tcp://127.0.0.1:" + std::to_string(dead) + ", " + broker_.uri());
  WriteFile(config_path_, cfg);
  StartGateway();
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("subscribed to " + broker_.uri()) != std::string::npos; },
                      std::chrono::seconds(20))) << GatewayLog();
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  ASSERT_TRUE(WaitFor([&] { return OutboxRecords().size() == DtnRecords(d0036).size(); }, std::chrono::seconds(30)));
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(ConnectorsTest, TwoGatewaysOnASharedSubscriptionSplitTheStream) {
  std::string d0036;
  std::vector<std::string> envelopes;
  MakeIf021(10, 4, &d0036, &envelopes);
  ASSERT_EQ(envelopes.size(), 40u);
  auto config = [&](const std::string& n) {
    std::string path = dir_ / ("gw" + n + ".ini");
    WriteFile(path, "[gateway]\nadmin_listen = off\nparticipant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\nflow_dir = " + SourceDir() +
                        "/config/flows\n[journal]\npath = " + dir_ / ("gw" + n + ".db") + "\n"
                        "[source.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = MRCY-gw-" + n +
                        "\ntopics = $share/mrcy/mhhs/SIT/IF-021/#\nprotocol = 5\nmax_batch = 5\n"
                        "[sink.outbox]\ntype = file\ndirectory = " + dir_ / ("outbox" + n) + "\n[route.in]\nfrom = backbone\nto = outbox\n");
    return path;
  };
  Process a, b;
  a.Start({DaemonPath(), "--config", config("1")}, dir_ / "gw1.log");
  b.Start({DaemonPath(), "--config", config("2")}, dir_ / "gw2.log");
  ASSERT_TRUE(WaitFor([&] {
    return ReadFileOrEmpty(dir_ / "gw1.log").find("subscribed to") != std::string::npos &&
           ReadFileOrEmpty(dir_ / "gw2.log").find("subscribed to") != std::string::npos;
  }, std::chrono::seconds(20)));
  PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  auto records = [&](const std::string& n) { return DtnRecordsInDir(dir_ / ("outbox" + n)); };
  // 40 events x (1 day record + 48 periods) + 101s: count 102 records (one per event).
  auto days = [&](const std::vector<std::string>& r) {
    std::multiset<std::string> out;
    std::string mpan;
    for (const std::string& x : r) {
      if (x.rfind("101|", 0) == 0) mpan = x.substr(4, 13);
      if (x.rfind("102|", 0) == 0) out.insert(mpan + "/" + x.substr(4, 8));
    }
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return days(records("1")).size() + days(records("2")).size() >= 40; }, std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto one = days(records("1")), two = days(records("2"));
  EXPECT_EQ(one.size() + two.size(), 40u) << "each event handled by exactly one gateway";
  EXPECT_GT(one.size(), 0u);
  EXPECT_GT(two.size(), 0u);
  std::vector<std::string> both;
  std::set_intersection(one.begin(), one.end(), two.begin(), two.end(), std::back_inserter(both));
  EXPECT_TRUE(both.empty());
  EXPECT_EQ(a.Stop(SIGTERM), 0);
  EXPECT_EQ(b.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace gw::testing
