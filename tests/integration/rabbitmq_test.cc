// RabbitMQ's MQTT plugin as a second, cluster-capable broker: the same gateway, unchanged,
// publishes to it and subscribes from it. Proves the gateway is not tied to Mosquitto.
#include <signal.h>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

class RabbitMqTest : public ::testing::Test {
 protected:
  RabbitMqTest() : rabbit_(dir_ / "rabbit") { rabbit_.Start(); }
  ~RabbitMqTest() override {
    if (gateway_.Running()) gateway_.Stop(SIGKILL);
    if (HasFailure()) std::cerr << "---- gateway ----\n" << ReadFileOrEmpty(dir_ / "gateway.log");
  }

  TempDir dir_;
  RabbitMq rabbit_;
  Process gateway_;
};

TEST_F(RabbitMqTest, SinkAndSourceHappyPaths) {
  // D0010 files in -> RabbitMQ; IF-021 from RabbitMQ -> D0036 files out.
  std::string cfg = dir_ / "gateway.ini";
  WriteFile(cfg, "[gateway]\nadmin_listen = off\nparticipant_mpid = MRCY\nparticipant_role = X\nenvironment = SIT\nflow_dir = " + SourceDir() +
                     "/config/flows\nlog_level = debug\n[journal]\npath = " + dir_ / "journal.db" + "\n"
                     "[source.inbox]\ntype = file\ndirectory = " + dir_ / "inbox" + "\narchive = " + dir_ / "archive" +
                     "\nrejected = " + dir_ / "rejected" + "\nsettle_ms = 100\n"
                     "[source.backbone]\ntype = mqtt\nuri = " + rabbit_.uri() + "\nclient_id = MRCY-gw-in\ntopics = mhhs/SIT/IF-021/#\n"
                     "[sink.out]\ntype = mqtt\nuri = " + rabbit_.uri() + "\nclient_id = MRCY-gw-out\nretry_base_ms = 200\n"
                     "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\n"
                     "[route.out]\nfrom = inbox\nto = out\n[route.in]\nfrom = backbone\nto = outbox\n");
  Subscriber sub(rabbit_.uri(), "rabbit-sub", "mhhs/SIT/D0010002/#");
  sub.Connect();
  gateway_.Start({DaemonPath(), "--config", cfg}, dir_ / "gateway.log");
  ASSERT_TRUE(WaitFor([&] { return ReadFileOrEmpty(dir_ / "gateway.log").find("subscribed to") != std::string::npos; },
                      std::chrono::seconds(30))) << ReadFileOrEmpty(dir_ / "gateway.log");
  ::mkdir((dir_ / "inbox").c_str(), 0755);
  std::string sample = ReadFileOrEmpty(SourceDir() + "/config/samples/D0010_UDMS_MRCY_0000475657.uff");
  WriteFile(dir_ / "inbox/x.tmp", sample);
  ASSERT_EQ(::rename((dir_ / "inbox/x.tmp").c_str(), (dir_ / "inbox/x.uff").c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 3; }, std::chrono::seconds(30))) << sub.Count();
  for (const auto& [topic, payload] : sub.Messages()) EXPECT_EQ(topic, "mhhs/SIT/D0010002/D/UDMS");

  std::string out;
  ASSERT_EQ(RunCommand({"/usr/bin/python3", SourceDir() + "/tests/tools/gen_d0036.py", dir_ / "gen", "--mpans", "2", "--days", "2"}, &out), 0);
  WriteFile(dir_ / "sender.ini", "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = C\nenvironment = SIT\ndip_id = 1009012345\n"
                                 "[dip]\nrole = SDS\ndistributor_dip_id = 2509012345\n[journal]\npath = " + dir_ / "s.db" + "\n");
  std::string file = dir_ / "gen/D0036_UDMS_MRCY_0003600000.uff";
  ASSERT_EQ(RunCommand({CtlPath(), "--config", dir_ / "sender.ini", "--flow-dir", SourceDir() + "/config/flows", "convert", file}, &out), 0);
  std::vector<std::string> envelopes;
  for (size_t p = 0; p < out.size();) {
    size_t nl = out.find('\n', p);
    envelopes.push_back(out.substr(p, nl - p));
    p = nl + 1;
  }
  PublishAll(rabbit_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", envelopes);
  auto outbox = [&] { return DtnRecordsInDir(dir_ / "outbox"); };
  std::string original = ReadFileOrEmpty(file);
  ASSERT_TRUE(WaitFor([&] { return outbox().size() == DtnRecords(original).size(); }, std::chrono::seconds(30))) << outbox().size();
  EXPECT_EQ(outbox(), DtnRecords(original));
  EXPECT_EQ(gateway_.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace gw::testing
