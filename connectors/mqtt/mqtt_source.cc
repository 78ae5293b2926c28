#include "connectors/mqtt/mqtt_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>
#include <sstream>

#include "gw/envelope.h"
#include "gw/backoff.h"
#include "gw/config.h"
#include "gw/fs.h"

namespace gw::connectors::mqtt {
namespace {

}  // namespace

Status ReadTlsOptions(const ConfigSection& c, WireOptions* w) {
  w->ca_file = c.GetString("ca_file", "");
  w->cert_file = c.GetString("cert_file", "");
  w->key_file = c.GetString("key_file", "");
  auto verify = c.GetBool("verify_hostname", true);
  if (!verify.ok()) return verify.status();
  w->verify_hostname = *verify;
  if (w->cert_file.empty() != w->key_file.empty()) return c.Error("key_file", "cert_file and key_file go together");
  for (const char* key : {"ca_file", "cert_file", "key_file"}) {
    std::string path = c.GetString(key, "");
    if (!path.empty() && ::access(path.c_str(), R_OK) != 0) return c.Error(key, "cannot read " + path);
  }
  if (!w->key_file.empty()) {
    Status s = CheckSecretFile(w->key_file);
    if (!s.ok()) return c.Error("key_file", s.message());
  }
  w->username = c.GetString("username", "");
  std::string pw_file = c.GetString("password_file", "");
  if (!pw_file.empty()) {
    auto pw = ReadSecretFile(pw_file);
    if (!pw.ok()) return c.Error("password_file", pw.status().message());
    w->password = *pw;
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Source>> MqttSource::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  MqttSourceOptions o;
  auto uri = c.GetRequired("uri");
  if (!uri.ok()) return uri.status();
  o.uris = gw::SplitList(*uri);
  bool any_tls = false;
  for (const std::string& u : o.uris) {
    std::string host;
    int port = 0;
    bool tls = false;
    Status s = ParseBrokerUri(u, &host, &port, &tls);
    if (!s.ok()) return c.Error("uri", s.message());
    any_tls |= tls;
  }
  auto id = c.GetRequired("client_id");
  if (!id.ok()) return id.status();
  o.wire.client_id = *id;
  auto topics = c.GetRequired("topics");
  if (!topics.ok()) return topics.status();
  o.topics = gw::SplitList(*topics);
  auto qos = c.GetInt("qos", 1, 1, 2);
  if (!qos.ok()) return c.Error("qos", "must be 1 or 2: QoS 0 can be lost");
  o.qos = static_cast<int>(*qos);
  std::string protocol = c.GetString("protocol", "3.1.1");
  if (protocol == "3.1.1") o.wire.version = 4;
  else if (protocol == "5") o.wire.version = 5;
  else return c.Error("protocol", "must be 3.1.1 or 5 (got \"" + protocol + "\")");
  auto clean = c.GetBool("clean_session", false);
  if (!clean.ok()) return clean.status();
  o.wire.clean_session = *clean;
  auto ka = c.GetInt("keepalive_s", 30, 2, 3600);
  if (!ka.ok()) return ka.status();
  o.wire.keepalive = std::chrono::seconds(*ka);
  auto ct = c.GetInt("connect_timeout_s", 10, 1, 600);
  if (!ct.ok()) return ct.status();
  o.wire.connect_timeout = std::chrono::seconds(*ct);
  GW_RETURN_IF_ERROR(ReadTlsOptions(c, &o.wire));
  if (!any_tls && (!o.wire.ca_file.empty() || !o.wire.cert_file.empty())) {
    return c.Error("uri", "ca_file/cert_file are set but no URI uses ssl://");
  }
  auto batch = c.GetInt("max_batch", 1000, 1, 100000);
  if (!batch.ok()) return batch.status();
  o.max_batch = static_cast<int>(*batch);
  auto bw = c.GetInt("batch_wait_ms", 20, 0, 10000);
  if (!bw.ok()) return bw.status();
  o.batch_wait = std::chrono::milliseconds(*bw);
  auto maxb = c.GetInt("max_message_bytes", 1 << 20, 256, 256 << 20);
  if (!maxb.ok()) return maxb.status();
  o.max_message_bytes = static_cast<size_t>(*maxb);
  auto rmax = c.GetInt("reconnect_max_ms", 30000, 100, 3600000);
  if (!rmax.ok()) return rmax.status();
  o.reconnect_max = std::chrono::milliseconds(*rmax);
  auto* src = new MqttSource(ctx.name, std::move(o), ctx.logger);
  src->dropped_ = &MetricsOf(ctx).GetCounter("messages_dropped", "Inbound messages that were not valid envelopes");
  src->connects_ = &MetricsOf(ctx).GetCounter("mqtt_connects", "Successful connections to the broker");
  return std::unique_ptr<Source>(src);
}

MqttSource::MqttSource(std::string name, MqttSourceOptions options, Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), logger_(logger) {}

Status MqttSource::Start(const std::string&) {
  Status s = EnsureConnected();
  if (!s.ok() && s.code() != StatusCode::kUnavailable) return s;  // refused credentials, bad TLS files
  if (!s.ok()) logger_.Warning(s.message() + "; will keep trying");
  return Status::Ok();
}

Status MqttSource::EnsureConnected() {
  if (client_ && client_->connected()) return Status::Ok();
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) return Unavailable("not connected (next attempt pending)");
  // Fail over in order: each attempt takes the next URI.
  const std::string& uri = options_.uris[uri_index_ % options_.uris.size()];
  WireOptions w = options_.wire;
  Status s = ParseBrokerUri(uri, &w.host, &w.port, &w.tls);
  if (s.ok()) {
    client_ = std::make_unique<WireClient>(w);
    s = client_->Connect();
    if (s.ok()) s = client_->Subscribe(options_.topics, options_.qos);
  }
  if (!s.ok()) {
    ++failures_;
    ++uri_index_;
    next_connect_ = now + JitteredBackoff(failures_, std::chrono::milliseconds(250), options_.reconnect_max);
    if (client_) client_->Close();
    return s;
  }
  logger_.Notice("subscribed to " + uri + " (" + std::to_string(options_.topics.size()) + " filter(s), session " +
                 (client_->session_present() ? "resumed" : "new") + ")");
  failures_ = 0;
  if (connects_) connects_->Increment();
  // Messages handed out but not acknowledged before the reconnect will come again.
  unacked_.clear();
  return Status::Ok();
}

StatusOr<bool> MqttSource::Poll(SourceBatch* batch, std::chrono::milliseconds wait) {
  if (retry_) {
    *batch = *retry_;
    retry_.reset();
    return true;
  }
  if (stopping_) return false;
  Status s = EnsureConnected();
  if (!s.ok()) {
    if (s.message().find("next attempt pending") != std::string::npos) {
      std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(100)));
      return false;
    }
    return s;
  }
  batch->events.clear();
  batch->rejections.clear();
  unacked_.clear();
  auto first_deadline = std::chrono::steady_clock::now() + wait;
  std::chrono::steady_clock::time_point batch_deadline{};
  InboundMessage m;
  while (static_cast<int>(unacked_.size()) < options_.max_batch && !stopping_) {
    auto now = std::chrono::steady_clock::now();
    auto until = unacked_.empty() ? first_deadline : batch_deadline;
    if (now >= until && !unacked_.empty()) break;
    auto r = client_->Receive(&m, std::chrono::duration_cast<std::chrono::milliseconds>(std::max(until - now, std::chrono::steady_clock::duration::zero())));
    if (!r.ok()) {
      logger_.Warning(r.status().message() + "; reconnecting");
      client_->Close();
      unacked_.clear();
      batch->events.clear();
      return false;
    }
    if (!*r) break;
    if (unacked_.empty()) batch_deadline = std::chrono::steady_clock::now() + options_.batch_wait;
    std::string reason, code;
    if (m.payload.size() > options_.max_message_bytes) {
      reason = "message of " + std::to_string(m.payload.size()) + " bytes exceeds max_message_bytes";
      code = "oversized";
    } else {
      auto e = ParseEnvelope(m.payload);
      if (e.ok()) {
        e->origin = name_ + ":" + m.topic;
        batch->events.push_back(std::move(e.value()));
      } else {
        reason = e.status().message();
        code = EnvelopeErrorCode(e.status());
      }
    }
    if (!reason.empty()) {
      if (dropped_) dropped_->Increment();
      batch->rejections.push_back(Rejection{m.topic, reason, m.payload.substr(0, options_.max_message_bytes), true, code});
      uint64_t suppressed = 0;
      if (bad_limiter_.Allow(&suppressed)) {
        logger_.Warning("quarantined a message on " + m.topic + ": " + reason +
                        (suppressed ? " (" + std::to_string(suppressed) + " more dropped)" : ""));
      }
    }
    m.payload.clear();  // only the packet id and QoS are needed to acknowledge it
    m.payload.shrink_to_fit();
    unacked_.push_back(std::move(m));
    m = InboundMessage();
  }
  if (unacked_.empty()) return false;
  batch->unit = name_ + ": " + std::to_string(unacked_.size()) + " message(s)";
  batch->token = ++batch_token_;
  batch->last = true;
  return true;
}

void MqttSource::Ack(const SourceBatch& batch, const Status& committed) {
  if (!committed.ok()) {
    // Kept in hand and offered again; the broker holds them unacknowledged meanwhile.
    retry_ = std::make_unique<SourceBatch>(batch);
    return;
  }
  if (batch.token != batch_token_ || !client_ || !client_->connected()) return;  // redelivered after reconnect
  Status s = client_->Ack(unacked_);
  if (!s.ok()) logger_.Warning("cannot acknowledge: " + s.message() + " (the broker will send them again)");
  unacked_.clear();
}

void MqttSource::Stop() {
  stopping_ = true;
}

}  // namespace gw::connectors::mqtt
