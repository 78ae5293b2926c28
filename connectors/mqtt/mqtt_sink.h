// The `mqtt` sink: publishes each event's JSON envelope to the backbone and confirms it only
// after the broker's PUBACK (QoS 1) or PUBCOMP (QoS 2).
//
// Up to `max_inflight` publishes are outstanding at once; Deliver() returns when each has
// been confirmed or has failed. While disconnected it reports kUnavailable and reconnects on
// the next call, no sooner than a back-off with full jitter allows. An envelope larger than
// `max_message_bytes` is refused as kInvalidArgument (dead letter), never truncated.
//
// Config ([sink.NAME]): uri (required; a comma-separated list fails over in order),
// client_id (required), qos (1), topic (template, default
// mhhs/{environment}/{type}/{sender_role}/{sender_mpid}), keepalive_s (30),
// connect_timeout_s (10), publish_timeout_s (30), max_inflight (256),
// max_message_bytes (1048576), reconnect_max_ms (30000); TLS (ssl:// URIs): ca_file,
// cert_file, key_file (mTLS), verify_hostname (true); username, password_file.
// Topic placeholders: {environment} {type} {interface} {event_code} {sender_role}
// {sender_mpid} {recipient_mpid} {participant_mpid}.
// Thread-safety: as Sink. Paho's callbacks run on its own threads and touch only atomics.
#ifndef GW_CONNECTORS_MQTT_MQTT_SINK_H_
#define GW_CONNECTORS_MQTT_MQTT_SINK_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mhhs/connector.h"

namespace mqtt {
class async_client;
}

namespace gw::connectors::mqtt {

// A parsed topic template: literal text and placeholders.
class TopicTemplate {
 public:
  // Errors name the unknown placeholder.
  static StatusOr<TopicTemplate> Parse(const std::string& text);
  std::string Expand(const Event& e, const GatewayInfo& gw) const;

 private:
  enum class Part { kLiteral, kEnvironment, kType, kEventCode, kSenderRole, kSenderMpid, kRecipientMpid, kParticipantMpid };
  std::vector<std::pair<Part, std::string>> parts_;
};

struct MqttSinkOptions {
  std::vector<std::string> uris;
  std::string client_id;
  int qos = 1;
  std::chrono::seconds keepalive{30};
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds publish_timeout{30};
  int max_inflight = 256;
  size_t max_message_bytes = 1 << 20;
  std::chrono::milliseconds reconnect_max{30000};
  bool tls = false;
  std::string ca_file, cert_file, key_file, username, password;
  bool verify_hostname = true;
};

class MqttSink : public Sink {
 public:
  static StatusOr<std::unique_ptr<Sink>> Create(const ConnectorContext& ctx);
  MqttSink(std::string name, MqttSinkOptions options, TopicTemplate topic, const GatewayInfo& gw, Logger& logger);
  ~MqttSink() override;

  Status Start() override;
  // Batches of four windows: the window drains once per batch (and the journal records the
  // outcomes once), so longer batches keep the broker busier.
  DeliveryHints Hints() const override {
    DeliveryHints h;
    h.max_batch = options_.max_inflight * 4;
    return h;
  }
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override;
  bool Connected() const override;
  void Stop() override;

 private:
  Status EnsureConnected();

  std::string name_;
  MqttSinkOptions options_;
  TopicTemplate topic_;
  GatewayInfo gw_;
  Logger& logger_;
  std::unique_ptr<::mqtt::async_client> client_;
  std::atomic<bool> stopping_{false};
  int connect_failures_ = 0;
  std::chrono::steady_clock::time_point next_connect_{};
  Counter* reconnects_ = nullptr;
  std::string tls_error_;  // the last TLS error Paho reported, for a clear message
  std::mutex tls_error_mu_;
};

}  // namespace gw::connectors::mqtt

#endif  // GW_CONNECTORS_MQTT_MQTT_SINK_H_
