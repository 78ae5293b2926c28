#include "connectors/mqtt/mqtt_sink.h"

#include <algorithm>

#include "connectors/mqtt/mqtt_source.h"
#include "gw/backoff.h"
#include "gw/config.h"
#include "gw/log.h"

namespace gw::connectors::mqtt {

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
  if (o.uris.empty()) return c.Error("uri", "is required");
  for (const std::string& u : o.uris) {
    std::string host;
    int port = 0;
    bool tls = false;
    Status st = ParseBrokerUri(u, &host, &port, &tls);
    if (!st.ok()) return c.Error("uri", "expected tcp://HOST:PORT or ssl://HOST:PORT (got \"" + u + "\")");
    if (tls) o.tls = true;
  }
  auto id = c.GetRequired("client_id");
  if (!id.ok()) return id.status();
  o.client_id = *id;
  auto qos = c.GetInt("qos", 1, 1, 2);
  if (!qos.ok()) return c.Error("qos", "must be 1 or 2: QoS 0 cannot confirm delivery");
  o.qos = static_cast<int>(*qos);
  auto topic = TopicTemplate::Parse(c.GetString("topic", "mhhs/{environment}/{type}/{sender_role}/{sender_mpid}"));
  if (!topic.ok()) return c.Error("topic", topic.status().message());
  auto ka = c.GetInt("keepalive_s", 30, 2, 3600);
  if (!ka.ok()) return ka.status();
  auto ct = c.GetInt("connect_timeout_s", 10, 1, 600);
  if (!ct.ok()) return ct.status();
  auto pt = c.GetInt("publish_timeout_s", 30, 1, 3600);
  if (!pt.ok()) return pt.status();
  auto inflight = c.GetInt("max_inflight", 256, 1, 65535);
  if (!inflight.ok()) return inflight.status();
  auto maxb = c.GetInt("max_message_bytes", 1 << 20, 256, 268435455 - 65536);
  if (!maxb.ok()) return maxb.status();
  auto rmax = c.GetInt("reconnect_max_ms", 30000, 100, 3600000);
  if (!rmax.ok()) return rmax.status();
  std::string protocol = c.GetString("protocol", "3.1.1");
  if (protocol != "3.1.1" && protocol != "5") return c.Error("protocol", "must be 3.1.1 or 5 (got \"" + protocol + "\")");
  o.version = protocol == "5" ? 5 : 4;
  o.keepalive = std::chrono::seconds(*ka);
  o.connect_timeout = std::chrono::seconds(*ct);
  o.publish_timeout = std::chrono::seconds(*pt);
  o.max_inflight = static_cast<int>(*inflight);
  // A broker keeps state for every unfinished QoS 2 message and limits how many (Mosquitto:
  // max_inflight_messages, 20 by default); MQTT 5 brokers announce their limit, 3.1.1 ones
  // disconnect a client that exceeds it. Without the announcement, stay within the default.
  if (o.qos == 2 && protocol != "5" && !c.Has("max_inflight")) o.max_inflight = 20;
  o.max_message_bytes = static_cast<size_t>(*maxb);
  o.reconnect_max = std::chrono::milliseconds(*rmax);
  GW_RETURN_IF_ERROR(ReadTlsOptions(c, &o.wire));
  if (!o.tls && (!o.wire.ca_file.empty() || !o.wire.cert_file.empty())) {
    return c.Error("uri", "ca_file/cert_file are set but no URI uses ssl://");
  }
  o.wire.client_id = o.client_id;
  o.wire.version = o.version;
  o.wire.clean_session = true;  // the journal is the store: unconfirmed events are sent again
  o.wire.keepalive = o.keepalive;
  o.wire.connect_timeout = o.connect_timeout;
  auto* sink = new MqttSink(ctx.name, std::move(o), std::move(*topic), ctx.gateway, ctx.logger);
  sink->reconnects_ = &MetricsOf(ctx).GetCounter("mqtt_connects", "Successful connections to the broker");
  return std::unique_ptr<Sink>(sink);
}

MqttSink::MqttSink(std::string name, MqttSinkOptions options, TopicTemplate topic, const GatewayInfo& gw,
                   Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), topic_(std::move(topic)), gw_(gw), logger_(logger) {}

MqttSink::~MqttSink() { Stop(); }

Status MqttSink::Start() {
  {
    std::lock_guard<std::mutex> lock(client_mu_);
    Status s = EnsureConnected();
    if (!s.ok()) logger_.Warning(s.message() + "; will keep trying");
  }
  // Between batches nothing else talks to the broker: the pinger keeps the connection alive
  // (and notices a dead one) so that /readyz tells the truth and the next batch goes at once.
  pinger_ = std::thread([this] {
    NameThread("ping." + name_);
    RunPinger();
  });
  return Status::Ok();
}

bool MqttSink::Connected() const { return connected_.load(); }

void MqttSink::RunPinger() {
  while (!stopping_) {
    {
      std::unique_lock<std::mutex> wait_lock(stop_mu_);
      stop_cv_.wait_for(wait_lock, std::chrono::seconds(1), [this] { return stopping_.load(); });
    }
    if (stopping_) break;
    std::unique_lock<std::mutex> lock(client_mu_, std::try_to_lock);
    if (!lock.owns_lock()) continue;  // a batch is being delivered: that is traffic enough
    if (stopping_) break;
    if (!client_ || !client_->connected()) {
      (void)EnsureConnected();  // reconnects in the background, within its back-off
      continue;
    }
    // A broker that went away shows as a closed socket: noticed within a second.
    Status s = client_->CheckAlive();
    if (s.ok() && std::chrono::steady_clock::now() - last_traffic_ >= options_.keepalive / 2) s = client_->Ping();
    if (!s.ok()) {
      connected_.store(false);
      logger_.Warning(s.message() + "; will reconnect");
      continue;
    }
    if (std::chrono::steady_clock::now() - last_traffic_ >= options_.keepalive / 2) last_traffic_ = std::chrono::steady_clock::now();
  }
}

Status MqttSink::EnsureConnected() {
  if (client_ && client_->connected()) return Status::Ok();
  connected_.store(false);
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) return Unavailable("not connected to " + options_.uris.front() + " (next attempt pending)");
  // The old client goes first: its Close() must not clear the new socket from the interrupter.
  client_.reset();
  // The URIs are tried in order, the first one preferred, on every attempt.
  std::string errors;
  for (const std::string& uri : options_.uris) {
    if (stopping_) return Unavailable("sink stopping");
    WireOptions w = options_.wire;
    (void)ParseBrokerUri(uri, &w.host, &w.port, &w.tls);
    w.interrupter = &interrupt_;
    auto client = std::make_unique<WireClient>(w);
    Status s = client->Connect();
    if (!s.ok()) {
      errors += (errors.empty() ? "" : "; ") + std::string("cannot connect to ") + uri + ": " + s.message();
      continue;
    }
    client_ = std::move(client);
    connected_.store(true);
    last_traffic_ = std::chrono::steady_clock::now();
    if (reconnects_) reconnects_->Increment();
    if (connect_failures_ > 0) logger_.Notice("connected to " + uri + " after " + std::to_string(connect_failures_) + " failed attempt(s)");
    else logger_.Info("connected to " + uri);
    connect_failures_ = 0;
    return Status::Ok();
  }
  ++connect_failures_;
  next_connect_ = now + JitteredBackoff(connect_failures_ + 1, std::chrono::milliseconds(250), options_.reconnect_max);
  return Unavailable(errors);
}

std::vector<Status> MqttSink::Deliver(const std::vector<const Event*>& events) {
  std::vector<Status> results(events.size());
  std::lock_guard<std::mutex> lock(client_mu_);
  if (stopping_) {
    for (Status& r : results) r = Unavailable("sink stopping");
    return results;
  }
  Status conn = EnsureConnected();
  if (conn.ok() && stopping_) conn = Unavailable("sink stopping");
  if (!conn.ok()) {
    for (Status& r : results) r = conn;
    return results;
  }
  // Each envelope is made when the window takes it, into one buffer, so that a batch's
  // envelopes are never all in memory. One too large is refused for good (never truncated)
  // and the rest are not held back by it.
  OutboundMessage m;
  auto message_at = [&](size_t i, Status* refused) -> const OutboundMessage* {
    m.payload.clear();
    AppendEnvelopeJson(*events[i], &m.payload);
    if (m.payload.size() > options_.max_message_bytes) {
      *refused = InvalidArgument("message of " + std::to_string(m.payload.size()) + " bytes exceeds max_message_bytes " +
                                 std::to_string(options_.max_message_bytes));
      return nullptr;
    }
    m.topic = topic_.Expand(*events[i], gw_);
    return &m;
  };
  client_->PublishBatch(events.size(), message_at, options_.qos, static_cast<size_t>(options_.max_inflight),
                        options_.publish_timeout, &results);
  last_traffic_ = std::chrono::steady_clock::now();
  if (!client_->connected()) {
    connected_.store(false);
    logger_.Warning("connection to the broker lost during a batch; will reconnect");
  }
  return results;
}

void MqttSink::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  // A Deliver() blocked on acknowledgements holds client_mu_: wake it by shutting the socket.
  {
    std::unique_lock<std::mutex> lock(client_mu_, std::try_to_lock);
    if (!lock.owns_lock()) interrupt_.Interrupt();
  }
  if (pinger_.joinable()) pinger_.join();
  std::lock_guard<std::mutex> lock(client_mu_);
  if (client_) client_->Close();
  connected_.store(false);
}

}  // namespace gw::connectors::mqtt
