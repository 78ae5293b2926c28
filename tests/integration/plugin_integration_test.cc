// An integrator's path, end to end: install the SDK into a staging prefix, build the example
// webhook plugin as a separate CMake project against that prefix only (and once more with
// pkg-config and a bare g++), load it into the real daemon, and see events reach a real HTTP
// server through it, with retries. A build against an SDK with a bumped ABI is refused.
#include <sys/stat.h>

#include <sstream>

#include "tests/integration/gateway_fixture.h"
#include "tests/support/http_server.h"

namespace gw::testing {
namespace {

class PluginIntegrationTest : public GatewayTest {
 protected:
  // Installs the SDK component of this build into `prefix`.
  void InstallSdk(const std::string& prefix) {
    std::string out;
    ASSERT_EQ(RunCommand({"/usr/bin/cmake", "--install", BinaryDir(), "--prefix", prefix, "--component", "sdk"}, &out), 0) << out;
    ASSERT_EQ(::access((prefix + "/include/mhhs/plugin.h").c_str(), R_OK), 0) << out;
  }

  // Configures and builds connectors/examples/webhook_sink against `prefix`; returns the .so.
  std::string BuildExample(const std::string& prefix, const std::string& build, std::string* configure_out) {
    std::string out;
    EXPECT_EQ(RunCommand({"/usr/bin/cmake", "-S", SourceDir() + "/connectors/examples/webhook_sink", "-B", build,
                          "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release"}, configure_out), 0)
        << *configure_out;
    EXPECT_EQ(RunCommand({"/usr/bin/cmake", "--build", build}, &out), 0) << out;
    return build + "/mhhs_webhook_sink.so";
  }

  std::string PluginDir(const std::string& name, const std::string& so) {
    std::string dir = dir_ / name;
    ::mkdir(dir.c_str(), 0755);
    WriteFile(dir + "/webhook.so", ReadFileOrEmpty(so));
    return dir;
  }
};

TEST_F(PluginIntegrationTest, ExampleBuiltAgainstTheInstalledSdkRunsInTheDaemon) {
  const std::string stage = dir_ / "stage";
  InstallSdk(stage);
  std::string configured;
  const std::string so = BuildExample(stage, dir_ / "plugin-build", &configured);
  EXPECT_NE(configured.find("building against plugin ABI 1"), std::string::npos) << configured;
  ASSERT_EQ(::access(so.c_str(), R_OK), 0);

  // The far side refuses the first two requests (503): the gateway retries them.
  RecordingHttpServer server([](const RecordingHttpServer::Request&, int n) { return n < 2 ? 503 : 201; });
  WriteConfig("[sink.hook]\ntype = webhook\nurl = " + server.url("/mhhs/events") +
              "\nretry_base_ms = 50\nretry_max_ms = 200\n[route.hook]\nfrom = inbox\nto = hook\n");
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("[journal]"), 9, "plugin_dir = " + PluginDir("plugins", so) + "\n[journal]");
  WriteFile(config_path_, text);
  StartGateway();
  EXPECT_NE(GatewayLog().find("plugin webhook-sink 1.0.0 loaded from " + dir_ / "plugins/webhook.so" + ": sink webhook"),
            std::string::npos)
      << GatewayLog();

  Drop(Samples() + "/D0010_UDMS_MRCY_0000475657.uff");  // three readings
  std::vector<std::string> ids;
  for (const std::string& line : Convert(Samples() + "/D0010_UDMS_MRCY_0000475657.uff")) {
    ids.push_back(line.substr(line.find("\"id\":\"") + 6, line.find('"', line.find("\"id\":\"") + 6) - line.find("\"id\":\"") - 6));
  }
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_TRUE(WaitFor([&] { return server.Requests().size() >= 5; }, std::chrono::seconds(30))) << GatewayLog();
  std::vector<std::string> confirmed;
  auto requests = server.Requests();
  for (size_t i = 2; i < requests.size(); ++i) confirmed.push_back(requests[i].headers["Idempotency-Key"]);
  EXPECT_EQ(requests[0].headers["Idempotency-Key"], ids[0]) << "the first event was tried, refused, and tried again";
  EXPECT_EQ(confirmed, ids) << "every event once confirmed, in journal order";
  EXPECT_EQ(requests[2].path, "/mhhs/events");
  EXPECT_NE(requests[2].body.find("\"type\":\"D0010002\""), std::string::npos) << requests[2].body;
  // The plugin's own counters are on /metrics, under its connector name.
  std::string metrics = HttpGet(admin_port_, "/metrics").body;
  EXPECT_EQ(MetricValue(metrics, "mhhs_gateway_webhook_requests_total{connector=\"hook\"}"), 5) << metrics;
  EXPECT_EQ(MetricValue(metrics, "mhhs_gateway_events_delivered_total{sink=\"hook\"}"), 3) << metrics;
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(PluginIntegrationTest, PluginBuiltForAnotherAbiIsRefusedWithBothNumbers) {
  const std::string stage = dir_ / "stage-next";
  InstallSdk(stage);
  // A newer SDK: the same headers with the next ABI number.
  std::string header = ReadFileOrEmpty(stage + "/include/mhhs/plugin.h");
  size_t at = header.find("#define MHHS_GATEWAY_PLUGIN_ABI 1");
  ASSERT_NE(at, std::string::npos);
  header.replace(at, 33, "#define MHHS_GATEWAY_PLUGIN_ABI 2");
  WriteFile(stage + "/include/mhhs/plugin.h", header);
  std::string configured;
  const std::string so = BuildExample(stage, dir_ / "plugin-build-next", &configured);
  EXPECT_NE(configured.find("building against plugin ABI 2"), std::string::npos) << configured;
  const std::string plugins = PluginDir("plugins-next", so);
  WriteConfig("[sink.hook]\ntype = webhook\nurl = http://127.0.0.1:9/\n[route.hook]\nfrom = inbox\nto = hook\n");
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("[journal]"), 9, "plugin_dir = " + plugins + "\n[journal]");
  WriteFile(config_path_, text);
  std::string out;
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_}, &out), 78) << out;
  EXPECT_NE(out.find(plugins + "/webhook.so: built for plugin ABI 2, this gateway loads plugin ABI 1"), std::string::npos) << out;
  // Without a plugin for it, the configured type fails the start and names where plugins come from.
  ::unlink((plugins + "/webhook.so").c_str());
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_}, &out), 78) << out;
  EXPECT_NE(out.find("no sink connector of type \"webhook\""), std::string::npos) << out;
  EXPECT_NE(out.find("no plugin in " + plugins + " provides it"), std::string::npos) << out;
}

TEST_F(PluginIntegrationTest, PkgConfigGivesWhatABareCompilerNeeds) {
  const std::string stage = dir_ / "stage-pc";
  InstallSdk(stage);
  std::string cflags;
  ASSERT_EQ(RunCommand({"/usr/bin/pkg-config", "--define-prefix", "--cflags", "mhhs-gateway"}, &cflags,
                       {{"PKG_CONFIG_PATH", stage + "/share/pkgconfig"}}), 0) << cflags;
  while (!cflags.empty() && (cflags.back() == '\n' || cflags.back() == ' ')) cflags.pop_back();
  ASSERT_NE(cflags.find("-I" + stage + "/include"), std::string::npos) << cflags;
  std::string out;
  const std::string so = dir_ / "pc/webhook.so";
  ::mkdir((dir_ / "pc").c_str(), 0755);
  std::vector<std::string> argv = {"/usr/bin/g++", "-shared", "-fPIC", "-O1", "-DPLUGIN_VERSION=\"pc\""};
  std::istringstream words(cflags);
  for (std::string w; words >> w;) argv.push_back(w);
  argv.push_back("-o");
  argv.push_back(so);
  argv.push_back(SourceDir() + "/connectors/examples/webhook_sink/webhook_sink.cc");
  argv.push_back("-lPocoNet");
  argv.push_back("-lPocoFoundation");
  ASSERT_EQ(RunCommand(argv, &out), 0) << out;
  WriteConfig("[sink.hook]\ntype = webhook\nurl = http://127.0.0.1:9/\n[route.hook]\nfrom = inbox\nto = hook\n");
  std::string text = ReadFileOrEmpty(config_path_);
  text.replace(text.find("[journal]"), 9, "plugin_dir = " + dir_ / "pc" + "\n[journal]");
  WriteFile(config_path_, text);
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "check-config"}, &out), 0) << out;
  EXPECT_NE(out.find("configuration OK"), std::string::npos) << out;
}

}  // namespace
}  // namespace gw::testing
