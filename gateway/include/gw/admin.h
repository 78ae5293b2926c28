// The admin HTTP endpoint (POCO HTTPServer) on loopback:
//   /healthz    200 while the process serves requests
//   /readyz     200 when the journal is writable and under its quota, every sink connected,
//               the oldest pending event younger than max_backlog_age_s and no configured
//               certificate expiring within cert_warn_days; otherwise 503 naming each cause
//   /metrics    Prometheus text format
//   /v1/status  the same facts as JSON
// With a bearer token configured, every endpoint but /healthz needs "Authorization: Bearer T".
// Thread-safety: Start/Stop from the controlling thread; requests run on POCO's threads.
#ifndef GW_ADMIN_H_
#define GW_ADMIN_H_

#include <memory>
#include <string>
#include <vector>

#include "gw/config.h"
#include "gw/journal.h"
#include "gw/metrics.h"
#include "gw/pipeline.h"

namespace Poco::Net {
class HTTPServer;
}

namespace gw {

struct AdminOptions {
  std::string listen = "127.0.0.1:9780";  // "" disables the endpoint
  std::string token;                      // "" : no authentication
  int64_t max_backlog_age_s = 0;          // 0 : not checked
  int cert_warn_days = 14;
  std::vector<std::string> cert_files;    // certificates whose expiry is watched
  std::string version;
};

// Seconds until the first certificate in PEM file `path` expires (negative once expired).
StatusOr<int64_t> CertificateSecondsLeft(const std::string& path);

// Every cert_file and ca_file named in the config's connector sections.
std::vector<std::string> ConfiguredCertificates(const GatewayConfig& config);

class AdminServer {
 public:
  AdminServer(AdminOptions options, const GatewayConfig& config, Pipeline* pipeline, Journal* journal,
              MetricsRegistry* metrics);
  ~AdminServer();

  // Binds and starts serving. Errors: kUnavailable naming the address (in use, bad address).
  Status Start();
  void Stop();

  // The readiness causes ("" when ready); used by /readyz and /v1/status.
  std::vector<std::string> NotReadyReasons();
  // Refreshes the gauges computed from the journal and renders /metrics.
  std::string RenderMetrics();
  std::string RenderStatus();
  const AdminOptions& options() const { return options_; }

 private:
  AdminOptions options_;
  const GatewayConfig& config_;
  Pipeline* pipeline_;
  Journal* journal_;
  MetricsRegistry* metrics_;
  int64_t started_ms_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace gw

#endif  // GW_ADMIN_H_
