// The `dip` source: the webhook the DIP calls with the messages it publishes to this
// participant (its callbackURL is https://HOST:PORT/webhook/{interface}).
//
// Each request is checked before anything else: mutual TLS (the DIP's client certificate must
// chain to `ca_file`), then the X-DIP-* signature and content hash against `trust_ca_file`
// (gw/dip.h). A bad or missing signature is answered 401 and nothing is journalled; an
// interface not in `interfaces` is 400. A good request becomes one batch of events; the
// answer, 201 with a StandardResponse, is sent only after the journal has committed them
// (503 when it could not, so that the DIP retries).
//
// Event: id "DIP-" + senderUniqueReference (stable across the DIP's retries), type the
// interface, event code, created-at and correlation id from the CommonBlock; the sender's
// role and DIP id as given, its MPID from `sender.<DIP id> = MPID` (else the DIP id); the
// recipient is this participant. The core then checks entitlements (EventOrigin::kMarketAuthenticated).
//
// Config ([source.NAME]): listen (HOST:PORT, required), cert_file, key_file (the server
// certificate), ca_file (for the DIP's client certificate), trust_ca_file (for its request
// signatures), public_url (the callback URL's scheme, host and port as the DIP signs them;
// default https://LISTEN), interfaces (default IF-021), max_skew_s (300), sender.<DIP id>.
// Thread-safety: as Source; HTTP requests arrive on the server's threads and wait for Ack().
#ifndef GW_CONNECTORS_DIP_DIP_SOURCE_H_
#define GW_CONNECTORS_DIP_DIP_SOURCE_H_

#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "gw/security.h"
#include "mhhs/connector.h"

namespace Poco::Net {
class HTTPServer;
}  // namespace Poco::Net

namespace gw::connectors::dip {

struct DipSourceOptions {
  std::string host;
  int port = 0;
  std::string cert_file, key_file, ca_file, trust_ca_file;
  std::string public_url;
  std::set<std::string> interfaces;
  int64_t max_skew_s = 300;
  std::map<std::string, std::string> senders;  // DIP id -> MPID
};

class DipSource : public Source {
 public:
  static StatusOr<std::unique_ptr<Source>> Create(const ConnectorContext& ctx);
  ~DipSource() override;

  Status Start(const std::string& checkpoint) override;
  StatusOr<bool> Poll(SourceBatch* batch, std::chrono::milliseconds wait) override;
  void Ack(const SourceBatch& batch, const Status& committed) override;
  void Stop() override;
  EventOrigin Origin() const override { return EventOrigin::kMarketAuthenticated; }

  // Called by the HTTP handler: checks, converts and hands a request to the pipeline, and
  // waits for the journal's verdict. Returns the HTTP status and the body to answer with.
  int Handle(const std::string& path, const std::string& body, const std::map<std::string, std::string>& headers,
             std::string* answer);

 private:
  struct Pending {
    uint64_t token = 0;
    std::vector<Event> events;
    std::string unit;
    std::promise<Status> done;
  };
  DipSource(std::string name, DipSourceOptions options, std::unique_ptr<TrustStore> trust, const GatewayInfo& gw, Logger& logger);

  std::string name_;
  DipSourceOptions options_;
  std::unique_ptr<TrustStore> trust_;
  GatewayInfo gw_;
  Logger& logger_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;
  std::map<uint64_t, std::shared_ptr<Pending>> in_flight_;
  uint64_t next_token_ = 0;
  bool stopping_ = false;
};

}  // namespace gw::connectors::dip

#endif  // GW_CONNECTORS_DIP_DIP_SOURCE_H_
