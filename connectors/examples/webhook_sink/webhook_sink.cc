// A webhook sink: POSTs each event's envelope (the JSON the MQTT sink would publish) to an
// HTTP endpoint, one request per event, in journal order.
//
//   [sink.billing]
//   type = webhook
//   url = http://127.0.0.1:8080/events      ; http only: put TLS in a local proxy
//   token_file = /etc/mhhs-gateway/keys/billing.token   ; optional: Authorization: Bearer
//   timeout_ms = 5000
//
// Each request carries `Idempotency-Key: <event id>`, so the receiver can drop a repeat: the
// gateway delivers at least once. Answers: 2xx confirms the event; 408, 429, 5xx and
// connection errors are transient (the gateway retries with back-off, `retry_base_ms`,
// `retry_max_ms`, `max_attempts` in the same section); any other status is permanent and the
// event becomes a dead letter naming the status and the start of the body.
//
// Thread-safety: the gateway calls Deliver() from one thread; Stop() may come from another.
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "mhhs/connector.h"
#include "mhhs/event.h"
#include "mhhs/plugin.h"

namespace webhook {

class WebhookSink : public gw::Sink {
 public:
  static gw::StatusOr<std::unique_ptr<gw::Sink>> Create(const gw::ConnectorContext& ctx) {
    auto url = ctx.config.GetRequired("url");
    if (!url.ok()) return url.status();
    std::unique_ptr<WebhookSink> s(new WebhookSink(ctx));
    try {
      s->uri_ = Poco::URI(*url);
    } catch (const Poco::Exception& e) {
      return ctx.config.Error("url", "not a URL: " + e.displayText());
    }
    if (s->uri_.getScheme() != "http" || s->uri_.getHost().empty()) {
      return ctx.config.Error("url", "must be http://HOST[:PORT]/PATH (got \"" + *url + "\")");
    }
    auto timeout = ctx.config.GetInt("timeout_ms", 5000, 100, 600000);
    if (!timeout.ok()) return timeout.status();
    s->timeout_ms_ = *timeout;
    std::string token_file = ctx.config.GetString("token_file", "");
    if (!token_file.empty()) {
      std::ifstream in(token_file);
      if (!in) return ctx.config.Error("token_file", "cannot read " + token_file);
      std::getline(in, s->token_);
      if (s->token_.empty()) return ctx.config.Error("token_file", token_file + " is empty");
    }
    return std::unique_ptr<gw::Sink>(std::move(s));
  }

  gw::Status Start() override {
    logger_.Info("posting events to " + uri_.toString());
    return gw::Status::Ok();
  }

  std::vector<gw::Status> Deliver(const std::vector<const gw::Event*>& events) override {
    std::vector<gw::Status> out;
    out.reserve(events.size());
    bool held = false;
    for (const gw::Event* e : events) {
      // After a transient failure nothing newer is attempted: journal order is kept.
      if (held || stopping_.load()) {
        out.push_back(gw::Unavailable("held back behind an earlier failure"));
        continue;
      }
      gw::Status s = Post(*e);
      if (s.code() == gw::StatusCode::kUnavailable) held = true;
      out.push_back(std::move(s));
    }
    return out;
  }

  bool Connected() const override { return healthy_.load(); }
  void Stop() override { stopping_.store(true); }

 private:
  explicit WebhookSink(const gw::ConnectorContext& ctx)
      : logger_(ctx.logger),
        requests_(gw::MetricsOf(ctx).GetCounter("webhook_requests", "HTTP requests sent")),
        failures_(gw::MetricsOf(ctx).GetCounter("webhook_failures", "HTTP requests that did not confirm the event")) {}

  gw::Status Post(const gw::Event& e) {
    const std::string body = gw::ToEnvelopeJson(e);
    requests_.Increment();
    try {
      if (!session_) {
        session_ = std::make_unique<Poco::Net::HTTPClientSession>(uri_.getHost(), uri_.getPort());
        session_->setTimeout(Poco::Timespan(timeout_ms_ * 1000));
        session_->setKeepAlive(true);
      }
      Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, uri_.getPathAndQuery().empty() ? "/" : uri_.getPathAndQuery(),
                                 Poco::Net::HTTPMessage::HTTP_1_1);
      req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
      req.set("Idempotency-Key", e.id);
      req.set("X-Event-Type", e.type);
      if (!token_.empty()) req.set("Authorization", "Bearer " + token_);
      session_->sendRequest(req) << body;
      Poco::Net::HTTPResponse resp;
      std::istream& in = session_->receiveResponse(resp);
      std::string answer;
      Poco::StreamCopier::copyToString(in, answer);
      int code = static_cast<int>(resp.getStatus());
      if (code >= 200 && code < 300) {
        healthy_.store(true);
        return gw::Status::Ok();
      }
      failures_.Increment();
      std::string what = "HTTP " + std::to_string(code) + " " + resp.getReason() + ": " + answer.substr(0, 200);
      if (code == 408 || code == 429 || code >= 500) {
        healthy_.store(code < 500);
        return gw::Unavailable(what);
      }
      return gw::InvalidArgument(what);  // the receiver refuses this event for good
    } catch (const Poco::Exception& ex) {
      failures_.Increment();
      healthy_.store(false);
      session_.reset();  // a broken connection is not reused
      return gw::Unavailable(uri_.getHost() + ":" + std::to_string(uri_.getPort()) + ": " + ex.displayText());
    }
  }

  gw::Logger& logger_;
  gw::Counter& requests_;
  gw::Counter& failures_;
  Poco::URI uri_;
  int64_t timeout_ms_ = 5000;
  std::string token_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> stopping_{false};
};

gw::Status Register(gw::ConnectorRegistry& registry) { return registry.RegisterSink("webhook", &WebhookSink::Create); }

}  // namespace webhook

MHHS_GATEWAY_PLUGIN("webhook-sink", PLUGIN_VERSION, webhook::Register)
