// The `mqtt` sink: publishes each event's JSON envelope to the backbone and confirms it only
// after the broker's PUBACK (QoS 1) or PUBCOMP (QoS 2).
//
// It publishes with the project's own MQTT client (mqtt_wire.h): up to `max_inflight`
// PUBLISH packets are outstanding at once, written many per system call, and Deliver()
// returns when each has been confirmed or has failed. While disconnected it reports
// kUnavailable and reconnects on the next call (or from its pinger thread between batches),
// no sooner than a back-off with full jitter allows; the URIs are tried in order. An envelope
// larger than `max_message_bytes` is refused as kInvalidArgument (dead letter), never
// truncated. Between batches a pinger keeps the connection alive and notices a dead one.
//
// Config ([sink.NAME]): uri (required; a comma-separated list fails over in order),
// client_id (required), qos (1), topic (template, default
// mhhs/{environment}/{type}/{sender_role}/{sender_mpid}), keepalive_s (30),
// connect_timeout_s (10), publish_timeout_s (30), max_inflight (256),
// max_message_bytes (1048576), reconnect_max_ms (30000), protocol (3.1.1 or 5); TLS
// (ssl:// or mqtts:// URIs): ca_file, cert_file, key_file (mTLS), verify_hostname (true);
// username, password_file.
// Topic placeholders: {environment} {type} {interface} {event_code} {sender_role}
// {sender_mpid} {recipient_mpid} {participant_mpid}.
// Thread-safety: as Sink. The client is used under a mutex shared by Deliver() and the pinger.
#ifndef GW_CONNECTORS_MQTT_MQTT_SINK_H_
#define GW_CONNECTORS_MQTT_MQTT_SINK_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mqtt/mqtt_wire.h"

#include "mhhs/connector.h"

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
  int version = 4;   // 4: MQTT 3.1.1, 5: MQTT 5
  WireOptions wire;  // TLS, credentials and session settings; host and port per URI
};

class MqttSink : public Sink {
 public:
  static StatusOr<std::unique_ptr<Sink>> Create(const ConnectorContext& ctx);
  MqttSink(std::string name, MqttSinkOptions options, TopicTemplate topic, const GatewayInfo& gw, Logger& logger);
  ~MqttSink() override;

  Status Start() override;
  // Batches of two windows: the window drains once per batch (and the journal records the
  // outcomes once), so longer batches keep the broker busier; longer still, the sink falls
  // further behind the journal's newest appends, which it takes from memory while they are
  // there (JournalOptions::recent_bytes).
  DeliveryHints Hints() const override {
    DeliveryHints h;
    h.max_batch = options_.max_inflight * 2;
    return h;
  }
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override;
  bool Connected() const override;
  void Stop() override;

 private:
  // Connects when not connected (the caller holds client_mu_).
  Status EnsureConnected();
  void RunPinger();

  std::string name_;
  MqttSinkOptions options_;
  TopicTemplate topic_;
  GatewayInfo gw_;
  Logger& logger_;
  std::mutex client_mu_;  // guards client_ and the connection state below
  std::unique_ptr<WireClient> client_;
  SocketInterrupter interrupt_;
  int connect_failures_ = 0;
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::steady_clock::time_point last_traffic_{};
  std::atomic<bool> connected_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> stopping_{false};
  std::thread pinger_;
  Counter* reconnects_ = nullptr;
};

}  // namespace gw::connectors::mqtt

#endif  // GW_CONNECTORS_MQTT_MQTT_SINK_H_
