// The admin endpoint of the real daemon: health, readiness with its reasons, Prometheus
// metrics that promtool accepts, the status JSON, and the bearer token.
#include <sys/stat.h>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

Reply Get(int port, const std::string& path, const std::string& token = "") { return HttpGet(port, path, token); }

class AdminTest : public GatewayTest {};

TEST_F(AdminTest, HealthReadinessMetricsAndStatus) {
  Subscriber sub(broker_.uri(), "admin-sub");
  sub.Connect();
  StartGateway();
  for (const char* f : {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475659_broken.uff"}) Drop(Samples() + "/" + f);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 2 && FilesIn(dir_ / "rejected").size() == 2; }, std::chrono::seconds(30)));
  EXPECT_EQ(Get(admin_port_, "/healthz").status, 200);
  ASSERT_TRUE(WaitFor([&] { return Get(admin_port_, "/readyz").status == 200; }, std::chrono::seconds(10))) << Get(admin_port_, "/readyz").body;
  Reply m = Get(admin_port_, "/metrics");
  EXPECT_EQ(m.status, 200);
  for (const char* line : {"mhhs_gateway_events_ingested_total{source=\"inbox\"} 2",
                           "mhhs_gateway_events_delivered_total{sink=\"backbone\"} 2",
                           "mhhs_gateway_files_rejected_total{connector=\"inbox\"} 1",
                           "mhhs_gateway_files_ingested_total{connector=\"inbox\"} 1",
                           "mhhs_gateway_queue_depth{sink=\"backbone\"} 0",
                           "mhhs_gateway_sink_connected{sink=\"backbone\"} 1",
                           "# TYPE mhhs_gateway_dead_letters_total counter"}) {
    EXPECT_NE(m.body.find(line), std::string::npos) << line << "\n" << m.body;
  }
  WriteFile(dir_ / "metrics.txt", m.body);
  std::string out;
  // promtool reads the exposition from stdin; it fails on any format error.
  EXPECT_EQ(RunCommand({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + (dir_ / "metrics.txt")}, &out), 0) << out;
  Reply st = Get(admin_port_, "/v1/status");
  EXPECT_NE(st.body.find(R"("ready":true)"), std::string::npos) << st.body;
  EXPECT_NE(st.body.find(R"("name":"backbone","connected":true,"pending":0,"delivered":2)"), std::string::npos) << st.body;

  // The broker goes away: not ready, and /readyz says why.
  broker_.Stop();
  ASSERT_TRUE(WaitFor([&] { return Get(admin_port_, "/readyz").status == 503; }, std::chrono::seconds(20)));
  Reply r = Get(admin_port_, "/readyz");
  EXPECT_NE(r.body.find("- sink backbone is not connected"), std::string::npos) << r.body;
  EXPECT_EQ(Get(admin_port_, "/nope").status, 404);
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(AdminTest, BearerTokenGuardsEverythingButHealthz) {
  WriteConfig();
  WriteFile(dir_ / "token", "s3cret-token\n");
  // Readable by others: refused with one line naming the file and its mode.
  ::chmod((dir_ / "token").c_str(), 0644);
  {
    WriteConfig();
    std::string c = ReadFileOrEmpty(config_path_);
    c.replace(c.find("participant_mpid"), 16, "admin_token_file = " + dir_ / "token" + "\nparticipant_mpid");
    WriteFile(config_path_, c);
    std::string out;
    EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_}, &out), 78);
    EXPECT_NE(out.find("admin_token_file: " + dir_ / "token" + " is readable by group or others (mode 0644)"), std::string::npos) << out;
  }
  ::chmod((dir_ / "token").c_str(), 0600);
  std::string cfg = ReadFileOrEmpty(config_path_);
  cfg.replace(cfg.find("participant_mpid"), 16, "admin_token_file = " + dir_ / "token" + "\nparticipant_mpid");
  WriteFile(config_path_, cfg);
  StartGateway();
  EXPECT_EQ(Get(admin_port_, "/healthz").status, 200);
  EXPECT_EQ(Get(admin_port_, "/metrics").status, 401);
  EXPECT_EQ(Get(admin_port_, "/metrics", "wrong").status, 401);
  EXPECT_EQ(Get(admin_port_, "/metrics", "s3cret-token").status, 200);
  EXPECT_EQ(StopGateway(), 0);
  EXPECT_EQ(GatewayLog().find("s3cret-token"), std::string::npos) << "the token never reaches the log";
}

TEST_F(AdminTest, OldBacklogMakesTheGatewayNotReady) {
  WriteConfig();
  std::string cfg = ReadFileOrEmpty(config_path_);
  cfg.replace(cfg.find("participant_mpid"), 16, "max_backlog_age_s = 1\nparticipant_mpid");
  WriteFile(config_path_, cfg);
  broker_.Stop();
  StartGateway();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  ASSERT_TRUE(WaitFor([&] { return Get(admin_port_, "/readyz").body.find("oldest pending event is") != std::string::npos; },
                      std::chrono::seconds(20))) << Get(admin_port_, "/readyz").body;
  EXPECT_EQ(StopGateway(), 0);
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

// The systemd protocol without systemd: READY=1 after start, STATUS= with counts, WATCHDOG=1
// pings at a third of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
TEST_F(AdminTest, TalksToSystemdThroughTheNotifySocket) {
  WriteConfig();
  NotifySocket notify(dir_ / "notify.sock");
  gateway_.Start({DaemonPath(), "--config", config_path_}, dir_ / "gateway.log",
                 {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "900000"}});
  auto seen = notify.WaitFor("READY=1", std::chrono::seconds(20));
  ASSERT_FALSE(seen.empty()) << GatewayLog();
  seen = notify.WaitFor("WATCHDOG=1", std::chrono::seconds(5));
  bool ping = false, status = false;
  for (const std::string& m : seen) {
    ping |= m.find("WATCHDOG=1") != std::string::npos;
    status |= m.find("STATUS=0 accepted, 0 delivered, 0 dead-lettered") != std::string::npos;
  }
  EXPECT_TRUE(ping);
  EXPECT_TRUE(status);
  gateway_.Stop(SIGTERM);
  seen = notify.WaitFor("STOPPING=1", std::chrono::seconds(5));
  EXPECT_NE(seen.back().find("STOPPING=1"), std::string::npos);
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

TEST_F(AdminTest, SighupReloadsChangedConnectorsAndKeepsTheOldConfigWhenTheNewOneIsBad) {
  Subscriber sub(broker_.uri(), "reload-sub");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475656.uff");
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 2; }, std::chrono::seconds(30)));
  std::string good = ReadFileOrEmpty(config_path_);

  // A bad config: refused, the gateway carries on as it was.
  WriteFile(config_path_, good + "[sink.broken]\ntype = file\n");
  ::kill(gateway_.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("reload refused, the running configuration stays") != std::string::npos; },
                      std::chrono::seconds(10))) << GatewayLog();
  Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 5; }, std::chrono::seconds(30)));

  // A good change: a file outbox added to the route; the MQTT sink is untouched. A [journal]
  // key changed too, which is said to need a restart.
  std::string changed = good;
  ASSERT_NE(changed.find("[journal]\n"), std::string::npos);
  changed.replace(changed.find("[journal]\n"), 10, "[journal]\nhandoff_patience_ms = 20\n");
  WriteFile(config_path_, changed + "[sink.outbox]\ntype = file\ndirectory = " + dir_ / "outbox" + "\n[route.copy]\nfrom = inbox\nto = outbox\n");
  ::kill(gateway_.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("configuration reloaded:") != std::string::npos; }, std::chrono::seconds(10)));
  std::string log = GatewayLog();
  EXPECT_NE(log.find("sink outbox started"), std::string::npos) << log;
  EXPECT_NE(log.find("source inbox started"), std::string::npos) << "its routes changed" << log;
  EXPECT_EQ(log.find("sink backbone stopped"), std::string::npos) << "an unchanged sink keeps running" << log;
  EXPECT_NE(log.find("[journal] changed: takes effect after a restart"), std::string::npos) << log;
  Drop(Samples() + "/D0010_UDMS_BGAS_0000475658.uff");
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 6 && !FilesIn(dir_ / "outbox").empty(); }, std::chrono::seconds(30)))
      << sub.Count() << GatewayLog();
  EXPECT_EQ(FilesIn(dir_ / "outbox"), std::vector<std::string>{"D0010002_UDMS_BGAS_0000000001.uff"});
  EXPECT_EQ(sub.Count(), 6u);
  EXPECT_EQ(StopGateway(), 0);
}

}  // namespace
}  // namespace gw::testing
