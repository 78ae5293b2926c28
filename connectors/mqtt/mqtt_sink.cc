#include "connectors/mqtt/mqtt_sink.h"

#include "connectors/mqtt/mqtt_source.h"

#include <mqtt/async_client.h>

#include "gw/backoff.h"
#include "gw/config.h"

#include <deque>
#include <sstream>

namespace gw::connectors::mqtt {
namespace {

}  // namespace

StatusOr<TopicTemplate> TopicTemplate::Parse(const std::string& text) {
  TopicTemplate t;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find('{', pos);
    if (open == std::string::npos) {
      t.parts_.emplace_back(Part::kLiteral, text.substr(pos));
      break;
    }
    if (open > pos) t.parts_.emplace_back(Part::kLiteral, text.substr(pos, open - pos));
    size_t close = text.find('}', open);
    if (close == std::string::npos) return InvalidArgument("unclosed '{' in topic template");
    std::string name = text.substr(open + 1, close - open - 1);
    Part p;
    if (name == "environment") p = Part::kEnvironment;
    else if (name == "type" || name == "interface") p = Part::kType;
    else if (name == "event_code") p = Part::kEventCode;
    else if (name == "sender_role") p = Part::kSenderRole;
    else if (name == "sender_mpid") p = Part::kSenderMpid;
    else if (name == "recipient_mpid") p = Part::kRecipientMpid;
    else if (name == "participant_mpid") p = Part::kParticipantMpid;
    else return InvalidArgument("unknown placeholder {" + name + "} in topic template");
    t.parts_.emplace_back(p, "");
    pos = close + 1;
  }
  if (text.find_first_of("+#") != std::string::npos) return InvalidArgument("a publish topic cannot hold '+' or '#'");
  if (text.empty()) return InvalidArgument("empty topic template");
  return t;
}

std::string TopicTemplate::Expand(const Event& e, const GatewayInfo& gw) const {
  std::string out;
  out.reserve(64);
  for (const auto& [part, lit] : parts_) {
    switch (part) {
      case Part::kLiteral: out += lit; break;
      case Part::kEnvironment: out += gw.environment; break;
      case Part::kType: out += e.type; break;
      case Part::kEventCode: out += e.event_code.empty() ? "-" : e.event_code; break;
      case Part::kSenderRole: out += e.sender.role; break;
      case Part::kSenderMpid: out += e.sender.mpid; break;
      case Part::kRecipientMpid: out += e.recipients.empty() ? "-" : e.recipients.front().mpid; break;
      case Part::kParticipantMpid: out += gw.participant_mpid; break;
    }
  }
  return out;
}

StatusOr<std::unique_ptr<Sink>> MqttSink::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  MqttSinkOptions o;
  auto uri = c.GetRequired("uri");
  if (!uri.ok()) return uri.status();
  o.uris = gw::SplitList(*uri);
  for (const std::string& u : o.uris) {
    if (u.rfind("tcp://", 0) != 0 && u.rfind("mqtt://", 0) != 0 && u.rfind("ssl://", 0) != 0 &&
        u.rfind("mqtts://", 0) != 0 && u.rfind("ws://", 0) != 0 && u.rfind("wss://", 0) != 0) {
      return c.Error("uri", "expected tcp://HOST:PORT or ssl://HOST:PORT (got \"" + u + "\")");
    }
    if (u.rfind("ssl://", 0) == 0 || u.rfind("mqtts://", 0) == 0) o.tls = true;
  }
  if (o.uris.empty()) return c.Error("uri", "is required");
  auto id = c.GetRequired("client_id");
  if (!id.ok()) return id.status();
  o.client_id = *id;
  auto qos = c.GetInt("qos", 1, 1, 2);
  if (!qos.ok()) return c.Error("qos", "must be 1 or 2: QoS 0 cannot confirm delivery");
  o.qos = static_cast<int>(*qos);
  auto topic = TopicTemplate::Parse(c.GetString("topic", "mhhs/{environment}/{type}/{sender_role}/{sender_mpid}"));
  if (!topic.ok()) return c.Error("topic", topic.status().message());
  auto ka = c.GetInt("keepalive_s", 30, 1, 3600);
  if (!ka.ok()) return ka.status();
  auto ct = c.GetInt("connect_timeout_s", 10, 1, 600);
  if (!ct.ok()) return ct.status();
  auto pt = c.GetInt("publish_timeout_s", 30, 1, 3600);
  if (!pt.ok()) return pt.status();
  auto inflight = c.GetInt("max_inflight", 256, 1, 65535);
  if (!inflight.ok()) return inflight.status();
  auto maxb = c.GetInt("max_message_bytes", 1 << 20, 256, 256 << 20);
  if (!maxb.ok()) return maxb.status();
  auto rmax = c.GetInt("reconnect_max_ms", 30000, 100, 3600000);
  if (!rmax.ok()) return rmax.status();
  o.keepalive = std::chrono::seconds(*ka);
  o.connect_timeout = std::chrono::seconds(*ct);
  o.publish_timeout = std::chrono::seconds(*pt);
  o.max_inflight = static_cast<int>(*inflight);
  o.max_message_bytes = static_cast<size_t>(*maxb);
  o.reconnect_max = std::chrono::milliseconds(*rmax);
  WireOptions w;
  GW_RETURN_IF_ERROR(ReadTlsOptions(c, &w));
  o.ca_file = w.ca_file;
  o.cert_file = w.cert_file;
  o.key_file = w.key_file;
  o.verify_hostname = w.verify_hostname;
  o.username = w.username;
  o.password = w.password;
  if (!o.tls && (!o.ca_file.empty() || !o.cert_file.empty())) return c.Error("uri", "ca_file/cert_file are set but no URI uses ssl://");
  // Paho speaks ssl:// only; mqtts:// is the same thing.
  for (std::string& u : o.uris) {
    if (u.rfind("mqtts://", 0) == 0) u = "ssl://" + u.substr(8);
    if (u.rfind("mqtt://", 0) == 0) u = "tcp://" + u.substr(7);
  }
  auto* sink = new MqttSink(ctx.name, std::move(o), std::move(*topic), ctx.gateway, ctx.logger);
  sink->reconnects_ = &MetricsOf(ctx).GetCounter("mqtt_connects", "Successful connections to the broker");
  return std::unique_ptr<Sink>(sink);
}

MqttSink::MqttSink(std::string name, MqttSinkOptions options, TopicTemplate topic, const GatewayInfo& gw,
                   Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), topic_(std::move(topic)), gw_(gw), logger_(logger) {}

MqttSink::~MqttSink() { Stop(); }

Status MqttSink::Start() {
  try {
    // No Paho persistence: the journal is the store; unconfirmed events are simply redelivered.
    // Paho refuses a publish once its own queue holds maxBufferedMessages (100 by default):
    // leave room for the whole in-flight window.
    client_ = std::make_unique<::mqtt::async_client>(options_.uris.front(), options_.client_id,
                                                     options_.max_inflight * 2 + 16, nullptr);
  } catch (const ::mqtt::exception& e) {
    return FailedPrecondition("cannot create MQTT client for " + options_.uris.front() + ": " + e.what());
  }
  Status s = EnsureConnected();
  if (!s.ok()) logger_.Warning(s.message() + "; will keep trying");
  return Status::Ok();
}

bool MqttSink::Connected() const { return client_ && client_->is_connected(); }

Status MqttSink::EnsureConnected() {
  if (client_->is_connected()) return Status::Ok();
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) return Unavailable("not connected to " + options_.uris.front() + " (next attempt pending)");
  ::mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_keep_alive_interval(options_.keepalive);
  opts.set_connect_timeout(options_.connect_timeout);
  opts.set_max_inflight(options_.max_inflight);
  opts.set_automatic_reconnect(false);
  if (!options_.username.empty()) opts.set_user_name(options_.username);
  if (!options_.password.empty()) opts.set_password(options_.password);
  if (options_.tls) {
    ::mqtt::ssl_options ssl;
    if (!options_.ca_file.empty()) ssl.set_trust_store(options_.ca_file);
    if (!options_.cert_file.empty()) {
      ssl.set_key_store(options_.cert_file);
      ssl.set_private_key(options_.key_file);
    }
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(options_.verify_hostname);
    ssl.set_ssl_version(MQTT_SSL_VERSION_TLS_1_2);
    ssl.set_error_handler([this](const std::string& msg) {
      std::lock_guard<std::mutex> lock(tls_error_mu_);
      tls_error_ = msg;
    });
    opts.set_ssl(std::move(ssl));
  }
  if (options_.uris.size() > 1) opts.set_servers(std::make_shared<::mqtt::string_collection>(options_.uris));
  try {
    auto tok = client_->connect(opts);
    if (!tok->wait_for(options_.connect_timeout + std::chrono::seconds(1))) {
      throw ::mqtt::exception(-1, "connect timed out");
    }
  } catch (const ::mqtt::exception& e) {
    ++connect_failures_;
    next_connect_ = now + JitteredBackoff(connect_failures_ + 1, std::chrono::milliseconds(250), options_.reconnect_max);
    std::string tls;
    {
      std::lock_guard<std::mutex> lock(tls_error_mu_);
      tls.swap(tls_error_);
    }
    return Unavailable("cannot connect to " + options_.uris.front() + ": " + e.what() + (tls.empty() ? "" : " (TLS: " + tls + ")"));
  }
  if (reconnects_) reconnects_->Increment();
  if (connect_failures_ > 0) logger_.Notice("connected to " + options_.uris.front() + " after " + std::to_string(connect_failures_) + " failed attempt(s)");
  else logger_.Info("connected to " + options_.uris.front());
  connect_failures_ = 0;
  return Status::Ok();
}

std::vector<Status> MqttSink::Deliver(const std::vector<const Event*>& events) {
  std::vector<Status> results(events.size());
  if (stopping_) {
    for (Status& r : results) r = Unavailable("sink stopping");
    return results;
  }
  Status conn = EnsureConnected();
  if (!conn.ok()) {
    for (Status& r : results) r = conn;
    return results;
  }
  struct InFlight { size_t index; ::mqtt::delivery_token_ptr token; };
  std::deque<InFlight> window;
  // After the first failure nothing new is published, so a retry resends the failed event
  // before anything that follows it; only events already in flight may overtake it.
  bool broken = false;
  auto settle_one = [&]() {
    InFlight f = std::move(window.front());
    window.pop_front();
    try {
      if (!f.token->wait_for(options_.publish_timeout)) {
        results[f.index] = Unavailable("no PUBACK within " + std::to_string(options_.publish_timeout.count()) + "s");
        broken = true;
      }
    } catch (const ::mqtt::exception& e) {
      results[f.index] = Unavailable(std::string("publish failed: ") + e.what());
      broken = true;
    }
  };
  std::string payload;
  for (size_t i = 0; i < events.size(); ++i) {
    if (broken || stopping_) {
      results[i] = Unavailable("connection lost during the batch");
      continue;
    }
    payload.clear();
    AppendEnvelopeJson(*events[i], &payload);
    if (payload.size() > options_.max_message_bytes) {
      results[i] = InvalidArgument("message of " + std::to_string(payload.size()) + " bytes exceeds max_message_bytes " +
                                   std::to_string(options_.max_message_bytes));
      continue;
    }
    while (static_cast<int>(window.size()) >= options_.max_inflight) settle_one();
    try {
      auto msg = ::mqtt::make_message(topic_.Expand(*events[i], gw_), payload, options_.qos, false);
      window.push_back(InFlight{i, client_->publish(msg)});
    } catch (const ::mqtt::exception& e) {
      results[i] = Unavailable(std::string("publish failed: ") + e.what());
      broken = true;
    }
  }
  while (!window.empty()) settle_one();
  return results;
}

void MqttSink::Stop() {
  stopping_ = true;
  if (client_ && client_->is_connected()) {
    try {
      client_->disconnect(std::chrono::milliseconds(2000))->wait_for(std::chrono::seconds(3));
    } catch (const ::mqtt::exception&) {
      // Already gone; nothing to release.
    }
  }
}

}  // namespace gw::connectors::mqtt
