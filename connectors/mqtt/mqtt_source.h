// The `mqtt` source: subscribes to the backbone on a persistent session and journals each
// inbound envelope; the PUBACK goes back only after the journal commit, so a crash at any
// moment leaves the message with the broker, which sends it again after the restart (the
// journal drops the duplicate by event id).
//
// Messages that are not valid envelopes cannot be journalled as events: they are acknowledged
// and dropped with a warning naming the topic and the reason, and counted.
//
// Config ([source.NAME]): uri (required; comma-separated list, tried in order), client_id
// (required; fixed, so the session persists), topics (required; comma-separated filters,
// `$share/GROUP/filter` for a shared subscription), qos (1), protocol (3.1.1 | 5),
// clean_session (false), keepalive_s (30), connect_timeout_s (10), ca_file, cert_file,
// key_file, verify_hostname (true), username, password_file, max_batch (1000),
// batch_wait_ms (20), max_message_bytes (1048576), reconnect_max_ms (30000).
// Thread-safety: as Source.
#ifndef GW_CONNECTORS_MQTT_MQTT_SOURCE_H_
#define GW_CONNECTORS_MQTT_MQTT_SOURCE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "connectors/mqtt/mqtt_wire.h"
#include "gw/log.h"
#include "mhhs/connector.h"

namespace gw::connectors::mqtt {

struct MqttSourceOptions {
  std::vector<std::string> uris;
  WireOptions wire;  // host/port/tls filled per URI at connect time
  std::vector<std::string> topics;
  int qos = 1;
  int max_batch = 1000;
  std::chrono::milliseconds batch_wait{20};
  size_t max_message_bytes = 1 << 20;
  std::chrono::milliseconds reconnect_max{30000};
};

// Reads the TLS and credential keys shared by the MQTT source and sink into `wire`.
Status ReadTlsOptions(const ConfigSection& c, WireOptions* wire);

class MqttSource : public Source {
 public:
  static StatusOr<std::unique_ptr<Source>> Create(const ConnectorContext& ctx);
  MqttSource(std::string name, MqttSourceOptions options, Logger& logger);

  Status Start(const std::string& checkpoint) override;
  StatusOr<bool> Poll(SourceBatch* batch, std::chrono::milliseconds wait) override;
  void Ack(const SourceBatch& batch, const Status& committed) override;
  void Stop() override;
  // Events on the backbone come from other participants: the core verifies them.
  EventOrigin Origin() const override { return EventOrigin::kMarket; }

 private:
  Status EnsureConnected();

  std::string name_;
  MqttSourceOptions options_;
  Logger& logger_;
  std::unique_ptr<WireClient> client_;
  size_t uri_index_ = 0;
  int failures_ = 0;
  std::chrono::steady_clock::time_point next_connect_{};
  // Messages of the batch handed out, acknowledged once it is committed.
  std::vector<InboundMessage> unacked_;
  uint64_t batch_token_ = 0;
  std::unique_ptr<SourceBatch> retry_;
  RateLimiter bad_limiter_{std::chrono::seconds(10)};
  Counter* dropped_ = nullptr;
  Counter* connects_ = nullptr;
  std::atomic<bool> stopping_{false};
};

}  // namespace gw::connectors::mqtt

#endif  // GW_CONNECTORS_MQTT_MQTT_SOURCE_H_
