// A fixture for end-to-end tests: a real Mosquitto on a free loopback port, the real
// mhhs-gatewayd binary with a config in a temporary folder, and a Paho subscriber that
// collects every message on mhhs/#.
#ifndef GW_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
#define GW_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_

#include <gtest/gtest.h>
#include <mqtt/async_client.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace gw::testing {

// Collects messages from a broker on a persistent session (QoS 1, clean session off).
class Subscriber {
 public:
  Subscriber(const std::string& uri, const std::string& client_id, const std::string& filter = "mhhs/#");
  ~Subscriber();
  // Connects and subscribes; throws on failure.
  void Connect();
  void Disconnect();
  size_t Count();
  // Each message as "topic payload".
  std::vector<std::pair<std::string, std::string>> Messages();
  std::multiset<std::string> Payloads();

 private:
  std::string filter_;
  mqtt::async_client client_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> messages_;
};

// A plain HTTP GET on 127.0.0.1:`port`, with a bearer token when given.
struct Reply {
  int status = 0;
  std::string body;
};
Reply HttpGet(int port, const std::string& path, const std::string& token = "");

// The value of one Prometheus series line `series` (name and labels as rendered) in `metrics`,
// or -1 when absent.
double MetricValue(const std::string& metrics, const std::string& series);

// Publishes each payload with QoS 1 and waits for the PUBACKs.
void PublishAll(const std::string& uri, const std::string& topic, const std::vector<std::string>& payloads);

class GatewayTest : public ::testing::Test {
 protected:
  GatewayTest();
  ~GatewayTest() override;

  // Writes the config; `extra` is appended (more sections or overrides).
  std::string WriteConfig(const std::string& extra = "");
  void StartGateway();
  // SIGTERM and wait; returns the exit code.
  int StopGateway();
  void KillGateway();
  // Copies a file into the inbox the safe way: write as .tmp, then rename.
  void Drop(const std::string& source_path);
  void DropText(const std::string& name, const std::string& text);
  // The envelopes mhhs-gatewayctl convert prints for `file` (the expected backbone messages).
  std::vector<std::string> Convert(const std::string& file);
  std::string GatewayLog() { return ReadFileOrEmpty(dir_ / "gateway.log"); }
  std::string Samples() { return SourceDir() + "/config/samples"; }

  TempDir dir_;
  Mosquitto broker_;
  Process gateway_;
  std::string config_path_;
  int admin_port_ = FreePort();
};

}  // namespace gw::testing

#endif  // GW_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
