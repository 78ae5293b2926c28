// The `dip` sink: submits IF-xxx events to Elexon's Data Integration Platform over signed,
// mutually authenticated HTTPS (reference/FORMATS.md and the DIP API 2.1.0).
//
// Consecutive events of one interface go out together, at most `max_messages` per request:
// `POST {base_url}/dip-channel/{interface}` with a JSON array of {"payload": …}, the
// X-API-Key header and the four X-DIP-* signing headers (gw/dip.h). The answer decides:
//   201                                   every message of the request is delivered;
//   408, 429, 500, 502, 503, 504, no answer   transient: the core retries with back-off, in order;
//   another 4xx                           permanent for the messages it names (a dead letter with
//                                         the DIP's code, e.g. "MSG1001 - Schema Failure"),
//                                         except MSG1006 (senderUniqueReference already
//                                         received), which means an earlier attempt got there:
//                                         delivered.
// With `validator` set (the dip-validate tool), each payload is checked against the published
// schema first; one that fails is a dead letter with the validator's reason, never sent.
//
// Config ([sink.NAME]): base_url (https://HOST[:PORT]), cert_file and key_file (the client
// certificate for mutual TLS), ca_file (the DIP's CA), verify_hostname (true), api_key_file,
// signing_key and signing_certificate (default: key_file and cert_file; RSA), max_messages
// (50), timeout_s (30), validator (path, optional).
// Thread-safety: as Sink.
#ifndef GW_CONNECTORS_DIP_DIP_SINK_H_
#define GW_CONNECTORS_DIP_DIP_SINK_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gw/security.h"
#include "mhhs/connector.h"

#include <Poco/Net/Context.h>

namespace Poco::Net {
class HTTPSClientSession;
}  // namespace Poco::Net

namespace gw::connectors::dip {

struct DipSinkOptions {
  std::string base_url;  // without a trailing slash
  std::string host;
  int port = 443;
  std::string ca_file, cert_file, key_file;
  bool verify_hostname = true;
  std::string api_key;
  int max_messages = 50;
  std::chrono::seconds timeout{30};
  std::string validator;
};

class DipSink : public Sink {
 public:
  static StatusOr<std::unique_ptr<Sink>> Create(const ConnectorContext& ctx);
  ~DipSink() override;

  DeliveryHints Hints() const override;
  Status Start() override;
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override;
  bool Connected() const override { return healthy_.load(); }
  void Stop() override { stopping_.store(true); }

 private:
  DipSink(DipSinkOptions options, std::unique_ptr<EventSigner> signer, Logger& logger);
  // Sends one request for `group` (one interface); fills `results` for each of them.
  void Submit(const std::string& interface, const std::vector<const Event*>& group, std::vector<Status>* results);
  // Runs the validator over the payloads; a non-empty string is the reason payload i fails.
  std::vector<std::string> Validate(const std::string& interface, const std::vector<const Event*>& group);

  DipSinkOptions options_;
  std::unique_ptr<EventSigner> signer_;
  Logger& logger_;
  Poco::Net::Context::Ptr context_;
  std::unique_ptr<Poco::Net::HTTPSClientSession> session_;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> stopping_{false};
};

}  // namespace gw::connectors::dip

#endif  // GW_CONNECTORS_DIP_DIP_SINK_H_
