// Loading connector plugins with the real dynamic loader: the example webhook sink (built from
// connectors/examples/webhook_sink) against a real HTTP server, load and unload cycles (this
// binary also runs under AddressSanitizer in scripts/test), and each way a plugin is refused.
#include "gw/plugins.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "gw/config.h"
#include "gw/connectors/builtin.h"
#include "gw/pipeline.h"
#include "mhhs/plugin.h"
#include "tests/support/http_server.h"
#include "tests/support/test_support.h"

namespace gw {
namespace {

using gw::testing::RecordingHttpServer;
using gw::testing::TempDir;

class NullLogger : public Logger {
 public:
  bool Enabled(LogLevel) const override { return false; }
  void Log(LogLevel, const std::string&) override {}
};

ConnectorConfig WebhookConfig(const std::string& url) {
  auto sections = ParseIni("[sink.hook]\nurl = " + url + "\ntimeout_ms = 2000\n", "test.ini");
  EXPECT_TRUE(sections.ok()) << sections.status().ToString();
  return ConnectorConfig{"hook", "webhook", (*sections)[0]};
}

Event MakeEvent(const std::string& id) {
  Event e;
  e.id = id;
  e.type = "D0010002";
  e.sender = Party{"UDMS", "D", ""};
  e.created_at = "2026-01-01T00:00:00+00:00";
  e.payload = R"({"n":1})";
  return e;
}

TEST(PluginTest, ExamplePluginDeliversThroughTheRegistryAcrossLoadUnloadCycles) {
  RecordingHttpServer server([](const RecordingHttpServer::Request& r, int) {
    if (r.headers.count("Idempotency-Key") && r.headers.at("Idempotency-Key") == "refused") return 422;
    if (r.headers.count("Idempotency-Key") && r.headers.at("Idempotency-Key") == "busy") return 503;
    return 201;
  });
  NullLogger log;
  GatewayInfo info;
  for (int cycle = 0; cycle < 3; ++cycle) {
    PluginSet plugins;
    Registry registry;
    ASSERT_TRUE(plugins.Load(GW_TEST_WEBHOOK_PLUGIN, registry).ok());
    ASSERT_EQ(plugins.loaded().size(), 1u);
    EXPECT_EQ(plugins.loaded()[0].name, "webhook-sink");
    EXPECT_EQ(plugins.loaded()[0].types, std::vector<std::string>{"sink webhook"});
    ConnectorConfig c = WebhookConfig(server.url("/events"));
    auto sink = registry.CreateSink(c, info, log);
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ASSERT_TRUE((*sink)->Start().ok());
    Event a = MakeEvent("ok-" + std::to_string(cycle)), refused = MakeEvent("refused"), busy = MakeEvent("busy"),
          after = MakeEvent("after");
    std::vector<Status> r = (*sink)->Deliver({&a, &refused, &busy, &after});
    ASSERT_EQ(r.size(), 4u);
    EXPECT_TRUE(r[0].ok()) << r[0].ToString();
    EXPECT_EQ(r[1].code(), StatusCode::kInvalidArgument) << "a 4xx is permanent: " << r[1].ToString();
    EXPECT_NE(r[1].message().find("HTTP 422"), std::string::npos) << r[1].message();
    EXPECT_EQ(r[2].code(), StatusCode::kUnavailable) << "a 5xx is retried";
    EXPECT_EQ(r[3].code(), StatusCode::kUnavailable) << "held back to keep order";
    (*sink)->Stop();
    // The sink and the registry go before the library does (declaration order).
  }
  auto requests = server.Requests();
  ASSERT_EQ(requests.size(), 9u) << "three requests per cycle: the one after the 503 was not sent";
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/events");
  EXPECT_EQ(requests[0].headers["Idempotency-Key"], "ok-0");
  EXPECT_NE(requests[0].body.find("\"id\":\"ok-0\""), std::string::npos) << requests[0].body;
}

// The plugin docs/plugins.md builds from an empty folder.
TEST(PluginTest, JsonlExampleAppendsEnvelopesThatParseBack) {
  TempDir dir;
  PluginSet plugins;
  Registry registry;
  ASSERT_TRUE(plugins.Load(GW_TEST_JSONL_PLUGIN, registry).ok());
  auto sections = ParseIni("[sink.archive]\npath = " + dir / "events.jsonl" + "\n", "test.ini");
  ASSERT_TRUE(sections.ok());
  NullLogger log;
  auto sink = registry.CreateSink(ConnectorConfig{"archive", "jsonl", (*sections)[0]}, GatewayInfo(), log);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE((*sink)->Start().ok());
  Event a = MakeEvent("a"), b = MakeEvent("b");
  for (const Status& s : (*sink)->Deliver({&a, &b})) EXPECT_TRUE(s.ok()) << s.ToString();
  std::string text = gw::testing::ReadFileOrEmpty(dir / "events.jsonl");
  EXPECT_EQ(text, ToEnvelopeJson(a) + "\n" + ToEnvelopeJson(b) + "\n");
  auto bad = ParseIni("[sink.archive]\npath = " + dir / "no/such/dir/e.jsonl" + "\n", "test.ini");
  auto broken = registry.CreateSink(ConnectorConfig{"archive", "jsonl", (*bad)[0]}, GatewayInfo(), log);
  ASSERT_TRUE(broken.ok());
  Status st = (*broken)->Start();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("no/such/dir/e.jsonl: cannot open"), std::string::npos) << st.message();
}

TEST(PluginTest, RefusedPluginsAreNamedWithTheReason) {
  Registry registry;
  ASSERT_TRUE(connectors::RegisterBuiltinConnectors(registry).ok());
  PluginSet plugins;
  Status abi = plugins.Load(GW_TEST_ABI_MISMATCH_PLUGIN, registry);
  ASSERT_FALSE(abi.ok());
  EXPECT_NE(abi.message().find(GW_TEST_ABI_MISMATCH_PLUGIN), std::string::npos) << abi.message();
  EXPECT_NE(abi.message().find("built for plugin ABI " + std::to_string(MHHS_GATEWAY_PLUGIN_ABI + 1) +
                               ", this gateway loads plugin ABI " + std::to_string(MHHS_GATEWAY_PLUGIN_ABI)),
            std::string::npos)
      << abi.message();
  Status none = plugins.Load(GW_TEST_NOT_A_PLUGIN, registry);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.message().find("not a gateway plugin"), std::string::npos) << none.message();
  Status refusing = plugins.Load(GW_TEST_REFUSING_PLUGIN, registry);
  ASSERT_FALSE(refusing.ok());
  EXPECT_NE(refusing.message().find("sink type \"file\" registered twice"), std::string::npos) << refusing.message();

  TempDir dir;
  gw::testing::WriteFile(dir / "garbage.so", "not an ELF file");
  Status garbage = plugins.Load(dir / "garbage.so", registry);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.message().find("cannot load plugin"), std::string::npos) << garbage.message();
  EXPECT_TRUE(plugins.loaded().empty());
}

TEST(PluginTest, FolderRulesAndUnknownTypes) {
  Registry registry;
  PluginSet plugins;
  TempDir dir;
  EXPECT_TRUE(plugins.LoadDirectory(dir / "missing", false, registry).ok()) << "the default folder may be absent";
  Status required = plugins.LoadDirectory(dir / "missing", true, registry);
  ASSERT_FALSE(required.ok());
  EXPECT_NE(required.message().find(dir / "missing"), std::string::npos);
  // Only *.so files are loaded, in name order.
  ::mkdir((dir / "plugins").c_str(), 0755);
  gw::testing::WriteFile(dir / "plugins/README", "not a plugin");
  ASSERT_EQ(::symlink(GW_TEST_WEBHOOK_PLUGIN, (dir / "plugins/webhook.so").c_str()), 0);
  ASSERT_TRUE(plugins.LoadDirectory(dir / "plugins", true, registry).ok());
  EXPECT_EQ(plugins.loaded().size(), 1u);

  registry.SetPluginDir(dir / "plugins");
  auto sections = ParseIni("[sink.x]\ntype = nosuch\n", "gateway.ini");
  ASSERT_TRUE(sections.ok());
  NullLogger log;
  auto made = registry.CreateSink(ConnectorConfig{"x", "nosuch", (*sections)[0]}, GatewayInfo(), log);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("no sink connector of type \"nosuch\" (known: webhook); no plugin in " + dir / "plugins" +
                                          " provides it"),
            std::string::npos)
      << made.status().message();
}

}  // namespace
}  // namespace gw
