#include "gw/admin.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <cstdio>
#include <set>

#include "mhhs/json.h"

namespace gw {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(AdminServer* admin) : admin_(admin) {}

  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    std::string path = req.getURI();
    size_t q = path.find('?');
    if (q != std::string::npos) path.resize(q);
    if (path != "/healthz" && !admin_->options().token.empty()) {
      std::string auth = req.get("Authorization", "");
      if (auth != "Bearer " + admin_->options().token) {
        Send(resp, HTTPResponse::HTTP_UNAUTHORIZED, "text/plain", "a bearer token is required\n");
        return;
      }
    }
    if (req.getMethod() != "GET" && req.getMethod() != "HEAD") {
      Send(resp, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
      return;
    }
    if (path == "/healthz") {
      Send(resp, HTTPResponse::HTTP_OK, "text/plain", "ok\n");
    } else if (path == "/readyz") {
      auto reasons = admin_->NotReadyReasons();
      std::string body = reasons.empty() ? "ready\n" : "not ready:\n";
      for (const auto& r : reasons) body += "- " + r + "\n";
      Send(resp, reasons.empty() ? HTTPResponse::HTTP_OK : HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "text/plain", body);
    } else if (path == "/metrics") {
      Send(resp, HTTPResponse::HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", admin_->RenderMetrics());
    } else if (path == "/v1/status") {
      Send(resp, HTTPResponse::HTTP_OK, "application/json", admin_->RenderStatus());
    } else {
      Send(resp, HTTPResponse::HTTP_NOT_FOUND, "text/plain", "not found: /healthz, /readyz, /metrics, /v1/status\n");
    }
  }

 private:
  static void Send(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, const std::string& type, const std::string& body) {
    resp.setStatus(status);
    resp.setContentType(type);
    resp.setContentLength(static_cast<std::streamsize>(body.size()));
    resp.send() << body;
  }
  AdminServer* admin_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(AdminServer* admin) : admin_(admin) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new Handler(admin_); }

 private:
  AdminServer* admin_;
};

}  // namespace

StatusOr<int64_t> CertificateSecondsLeft(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return NotFound(path + ": cannot open certificate");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) return InvalidArgument(path + ": not a PEM certificate");
  int days = 0, secs = 0;
  int ok = ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert));
  X509_free(cert);
  if (!ok) return InvalidArgument(path + ": unreadable expiry date");
  return static_cast<int64_t>(days) * 86400 + secs;
}

std::vector<std::string> ConfiguredCertificates(const GatewayConfig& config) {
  std::set<std::string> files;
  for (const auto* list : {&config.sources, &config.sinks}) {
    for (const ConnectorConfig& c : *list) {
      for (const auto& e : c.section.entries()) {
        if ((e.key == "cert_file" || e.key == "ca_file") && !e.value.empty()) files.insert(e.value);
      }
    }
  }
  if (!config.security.certificate_file.empty()) files.insert(config.security.certificate_file);
  return {files.begin(), files.end()};
}

AdminServer::AdminServer(AdminOptions options, const GatewayConfig& config, Pipeline* pipeline, Journal* journal,
                         MetricsRegistry* metrics)
    : options_(std::move(options)), config_(config), pipeline_(pipeline), journal_(journal), metrics_(metrics),
      started_ms_(NowUnixMs()) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start() {
  if (options_.listen.empty()) return Status::Ok();
  try {
    Poco::Net::SocketAddress addr(options_.listen);
    Poco::Net::ServerSocket socket(addr, 16);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    params->setKeepAlive(false);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), socket, params);
    server_->start();
  } catch (const Poco::Exception& e) {
    return Unavailable("admin endpoint " + options_.listen + ": " + e.displayText());
  }
  return Status::Ok();
}

void AdminServer::Stop() {
  if (server_) {
    server_->stopAll(true);
    server_.reset();
  }
}

std::vector<std::string> AdminServer::NotReadyReasons() {
  std::vector<std::string> reasons;
  Status commit = journal_->LastCommit();
  if (!commit.ok()) reasons.push_back("journal not writable: " + commit.message());
  std::string why;
  if (journal_->ShouldPause(&why)) reasons.push_back(why);
  for (const SinkHealth& s : pipeline_->Sinks()) {
    if (!s.connected) reasons.push_back("sink " + s.name + " is not connected");
  }
  if (options_.max_backlog_age_s > 0) {
    std::vector<SinkQueueStats> stats;
    if (journal_->QueueStats(&stats).ok()) {
      int64_t now = NowUnixMs();
      for (const auto& q : stats) {
        if (q.oldest_pending_ms > 0 && now - q.oldest_pending_ms > options_.max_backlog_age_s * 1000) {
          reasons.push_back("sink " + q.sink + ": oldest pending event is " + std::to_string((now - q.oldest_pending_ms) / 1000) +
                            " s old (max_backlog_age_s " + std::to_string(options_.max_backlog_age_s) + ")");
        }
      }
    }
  }
  for (const std::string& f : options_.cert_files) {
    auto left = CertificateSecondsLeft(f);
    if (!left.ok()) {
      reasons.push_back(left.status().message());
    } else if (*left < static_cast<int64_t>(options_.cert_warn_days) * 86400) {
      reasons.push_back("certificate " + f + (*left < 0 ? " has expired" : " expires in " + std::to_string(*left / 86400) + " day(s)") +
                        " (cert_warn_days " + std::to_string(options_.cert_warn_days) + ")");
    }
  }
  return reasons;
}

std::string AdminServer::RenderMetrics() {
  std::vector<SinkQueueStats> stats;
  int64_t now = NowUnixMs();
  if (journal_->QueueStats(&stats).ok()) {
    for (const auto& q : stats) {
      metrics_->GaugeFor("mhhs_gateway_queue_depth", "Events pending delivery, per sink", {{"sink", q.sink}}).Set(static_cast<double>(q.pending));
      metrics_->GaugeFor("mhhs_gateway_oldest_pending_age_seconds", "Age of the oldest pending event, per sink (0 when none)",
                         {{"sink", q.sink}}).Set(q.oldest_pending_ms ? (now - q.oldest_pending_ms) / 1000.0 : 0);
      metrics_->GaugeFor("mhhs_gateway_dead_letters", "Events on the dead-letter list now, per sink", {{"sink", q.sink}}).Set(static_cast<double>(q.dead));
    }
  }
  for (const SinkHealth& s : pipeline_->Sinks()) {
    metrics_->GaugeFor("mhhs_gateway_sink_connected", "1 when the sink's far side is reachable", {{"sink", s.name}}).Set(s.connected ? 1 : 0);
  }
  metrics_->GaugeFor("mhhs_gateway_journal_bytes", "Live data in the journal", {}).Set(static_cast<double>(journal_->UsedBytes()));
  metrics_->GaugeFor("mhhs_gateway_journal_paused", "1 while sources are paused by the journal quota", {}).Set(journal_->ShouldPause(nullptr) ? 1 : 0);
  for (const std::string& f : options_.cert_files) {
    auto left = CertificateSecondsLeft(f);
    if (left.ok()) metrics_->GaugeFor("mhhs_gateway_certificate_expiry_seconds", "Seconds until a configured certificate expires", {{"file", f}}).Set(static_cast<double>(*left));
  }
  metrics_->GaugeFor("mhhs_gateway_build_info", "Build and participant, always 1",
                     {{"version", options_.version}, {"participant", config_.gateway.participant_mpid}}).Set(1);
  metrics_->GaugeFor("mhhs_gateway_uptime_seconds", "Seconds since start", {}).Set((now - started_ms_) / 1000.0);
  return metrics_->Render();
}

std::string AdminServer::RenderStatus() {
  std::vector<SinkQueueStats> stats;
  (void)journal_->QueueStats(&stats);
  auto reasons = NotReadyReasons();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("version"); w.String(options_.version);
  w.Key("participant"); w.String(config_.gateway.participant_mpid);
  w.Key("role"); w.String(config_.gateway.participant_role);
  w.Key("environment"); w.String(config_.gateway.environment);
  w.Key("uptimeSeconds"); w.Int((NowUnixMs() - started_ms_) / 1000);
  w.Key("ready"); w.Bool(reasons.empty());
  w.Key("notReady");
  w.BeginArray();
  for (const auto& r : reasons) w.String(r);
  w.EndArray();
  w.Key("journal");
  w.BeginObject();
  w.Key("path"); w.String(journal_->path());
  w.Key("bytes"); w.Int(journal_->UsedBytes());
  w.Key("paused"); w.Bool(journal_->ShouldPause(nullptr));
  w.EndObject();
  w.Key("sinks");
  w.BeginArray();
  for (const SinkHealth& s : pipeline_->Sinks()) {
    w.BeginObject();
    w.Key("name"); w.String(s.name);
    w.Key("connected"); w.Bool(s.connected);
    for (const auto& q : stats) {
      if (q.sink != s.name) continue;
      w.Key("pending"); w.Int(q.pending);
      w.Key("delivered"); w.Int(q.delivered);
      w.Key("deadLetters"); w.Int(q.dead);
      w.Key("oldestPendingAcceptedAt"); if (q.oldest_pending_ms) w.String(FormatUnixMs(q.oldest_pending_ms)); else w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out + "\n";
}

}  // namespace gw
