#include "connectors/dip/dip_source.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/StreamCopier.h>

#include <ctime>
#include <sstream>

#include "gw/config.h"
#include "connectors/dip/poco_ssl.h"
#include "gw/dip.h"
#include "gw/fs.h"
#include "mhhs/json.h"

namespace gw::connectors::dip {
namespace {

std::string Str(const Poco::JSON::Object::Ptr& o, const char* key) {
  if (!o || !o->has(key) || o->isNull(key)) return "";
  try {
    return o->getValue<std::string>(key);
  } catch (...) {
    return "";
  }
}

// A StandardResponse with one entry per message (reference, message).
std::string StandardResponse(const std::vector<std::pair<std::string, std::string>>& messages) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("messageArray");
  w.BeginArray();
  for (const auto& [ref, msg] : messages) {
    w.BeginObject();
    w.Key("transactionID"); w.Null();
    w.Key("senderUniqueReference"); w.StringOrNull(ref);
    w.Key("message"); w.String(msg);
    w.Key("help"); w.Null();
    w.EndObject();
  }
  w.EndArray();
  w.Key("timestamp"); w.String(IsoUtc(static_cast<int64_t>(std::time(nullptr))));
  w.EndObject();
  return out;
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(DipSource* source) : source_(source) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    std::string body, answer;
    Poco::StreamCopier::copyToString(req.stream(), body);
    std::map<std::string, std::string> headers;
    for (const char* h : {"X-DIP-Content-Hash", "X-DIP-Signature-Date", "X-DIP-Signature", "X-DIP-Signature-Certificate"}) {
      headers[h] = req.get(h, "");
    }
    int status = req.getMethod() == "POST" ? source_->Handle(req.getURI(), body, headers, &answer) : 405;
    if (answer.empty()) answer = StandardResponse({{"", status == 405 ? "MSG4005 - Method Not Allowed" : "MSG5000 - Error"}});
    resp.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    resp.setContentType("application/json");
    resp.setContentLength(static_cast<std::streamsize>(answer.size()));
    resp.send() << answer;
  }

 private:
  DipSource* source_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(DipSource* source) : source_(source) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override { return new Handler(source_); }

 private:
  DipSource* source_;
};

}  // namespace

StatusOr<std::unique_ptr<Source>> DipSource::Create(const ConnectorContext& ctx) {
  EnsurePocoSsl();
  const ConfigSection& c = ctx.config;
  DipSourceOptions o;
  auto listen = c.GetRequired("listen");
  if (!listen.ok()) return listen.status();
  size_t colon = listen->rfind(':');
  if (colon == std::string::npos) return c.Error("listen", "must be HOST:PORT (got \"" + *listen + "\")");
  o.host = listen->substr(0, colon);
  o.port = std::atoi(listen->c_str() + colon + 1);
  if (o.port <= 0 || o.port > 65535) return c.Error("listen", "must be HOST:PORT (got \"" + *listen + "\")");
  for (const char* key : {"cert_file", "key_file", "ca_file", "trust_ca_file"}) {
    auto v = c.GetRequired(key);
    if (!v.ok()) return v.status();
    if (::access(v->c_str(), R_OK) != 0) return c.Error(key, "cannot read " + *v);
  }
  o.cert_file = c.GetString("cert_file", "");
  o.key_file = c.GetString("key_file", "");
  o.ca_file = c.GetString("ca_file", "");
  o.trust_ca_file = c.GetString("trust_ca_file", "");
  Status secret = CheckSecretFile(o.key_file);
  if (!secret.ok()) return c.Error("key_file", secret.message());
  o.public_url = c.GetString("public_url", "https://" + *listen);
  while (!o.public_url.empty() && o.public_url.back() == '/') o.public_url.pop_back();
  for (const std::string& i : SplitList(c.GetString("interfaces", "IF-021"))) o.interfaces.insert(i);
  auto skew = c.GetInt("max_skew_s", 300, 10, 86400);
  if (!skew.ok()) return skew.status();
  o.max_skew_s = *skew;
  for (const ConfigSection::Entry& e : c.entries()) {
    if (e.key.rfind("sender.", 0) != 0) continue;
    e.used = true;
    if (e.value.size() != 4) return c.Error(e.key, "must be the sender's MPID, 4 letters (got \"" + e.value + "\")");
    o.senders[e.key.substr(7)] = e.value;
  }
  SecurityConfig sc;
  sc.configured = true;
  sc.trust_ca_file = o.trust_ca_file;
  auto trust = TrustStore::Load(sc);
  if (!trust.ok()) return c.Error("trust_ca_file", trust.status().message());
  return std::unique_ptr<Source>(new DipSource(ctx.name, std::move(o), std::move(trust.value()), ctx.gateway, ctx.logger));
}

DipSource::DipSource(std::string name, DipSourceOptions options, std::unique_ptr<TrustStore> trust, const GatewayInfo& gw,
                     Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), trust_(std::move(trust)), gw_(gw), logger_(logger) {}

DipSource::~DipSource() { Stop(); }

Status DipSource::Start(const std::string&) {
  try {
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, options_.key_file, options_.cert_file,
                                                         options_.ca_file, Poco::Net::Context::VERIFY_STRICT, 9, false);
    // The DIP's client certificate names the DIP, not the host it calls from.
    ctx->enableExtendedCertificateVerification(false);
    ctx->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 | Poco::Net::Context::PROTO_TLSV1 |
                          Poco::Net::Context::PROTO_TLSV1_1);
    Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress(options_.host, static_cast<Poco::UInt16>(options_.port)), 64, ctx);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(8);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), socket, params);
    server_->start();
  } catch (const Poco::Exception& e) {
    return FailedPrecondition("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " + e.displayText());
  }
  logger_.Info("DIP webhook listening on https://" + options_.host + ":" + std::to_string(options_.port) + "/webhook/{interface}");
  return Status::Ok();
}

int DipSource::Handle(const std::string& path, const std::string& body, const std::map<std::string, std::string>& headers,
                      std::string* answer) {
  // Who is calling comes first: nothing is read from an unauthenticated request.
  DipSignatureHeaders h;
  h.content_hash = headers.at("X-DIP-Content-Hash");
  h.date = headers.at("X-DIP-Signature-Date");
  h.signature = headers.at("X-DIP-Signature");
  h.certificate = headers.at("X-DIP-Signature-Certificate");
  VerifyVerdict v = VerifyDipRequest(*trust_, "POST", options_.public_url + path, body, h, options_.max_skew_s);
  if (!v.ok()) {
    logger_.Warning("refused a webhook call to " + path.substr(0, 80) + ": " + v.code + ": " + v.message.substr(0, 200));
    *answer = StandardResponse({{"", "MSG2002 - Signature Failure"}});
    return 401;
  }
  if (path.rfind("/webhook/", 0) != 0 || !options_.interfaces.count(path.substr(9))) {
    *answer = StandardResponse({{"", "MSG1000 - Unknown interface " + path.substr(0, 80)}});
    return 400;
  }
  const std::string interface = path.substr(9);
  auto pending = std::make_shared<Pending>();
  std::vector<std::pair<std::string, std::string>> messages;
  try {
    Poco::JSON::Parser parser;
    auto array = parser.parse(body).extract<Poco::JSON::Array::Ptr>();
    if (!array || array->size() == 0) throw std::runtime_error("an empty message array");
    for (size_t i = 0; i < array->size(); ++i) {
      auto item = array->getObject(static_cast<unsigned>(i));
      auto payload = item ? item->getObject("payload") : nullptr;
      if (!payload) throw std::runtime_error("element " + std::to_string(i) + " has no payload object");
      auto common = payload->getObject("CommonBlock");
      auto s0 = common ? common->getObject("S0") : nullptr;
      auto s1 = common ? common->getObject("S1") : nullptr;
      const std::string ref = Str(s1, "senderUniqueReference");
      if (ref.empty()) throw std::runtime_error("element " + std::to_string(i) + " has no CommonBlock.S1.senderUniqueReference");
      if (!Str(s0, "interfaceID").empty() && Str(s0, "interfaceID") != interface) {
        throw std::runtime_error("element " + std::to_string(i) + " is " + Str(s0, "interfaceID") + ", posted to " + interface);
      }
      Event e;
      e.id = "DIP-" + ref;
      e.type = interface;
      e.event_code = Str(s0, "eventCode");
      const std::string dip_id = Str(s1, "senderDIPID");
      auto known = options_.senders.find(dip_id);
      e.sender = Party{known != options_.senders.end() ? known->second : dip_id, Str(s1, "senderRoleID"), dip_id};
      e.recipients = {Party{gw_.participant_mpid, gw_.participant_role, gw_.dip_id}};
      e.created_at = Str(s1, "senderTimestamp");
      e.correlation_id = Str(s1, "senderCorrelationID");
      std::ostringstream os;
      Poco::JSON::Stringifier::stringify(payload, os);
      e.payload = os.str();
      e.origin = name_ + ":" + path;
      pending->events.push_back(std::move(e));
      messages.emplace_back(ref, "MSG0000 - Success");
    }
  } catch (const std::exception& ex) {
    *answer = StandardResponse({{"", std::string("MSG1000 - Bad request: ") + ex.what()}});
    return 400;
  }
  pending->unit = name_ + ": " + std::to_string(pending->events.size()) + " " + interface + " message(s)";
  std::future<Status> verdict = pending->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return 503;
    pending->token = ++next_token_;
    queue_.push_back(pending);
  }
  cv_.notify_one();
  // The DIP is told "created" only once the messages are in the journal.
  if (verdict.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    *answer = StandardResponse({{"", "MSG5003 - Not stored in time; send again"}});
    return 503;
  }
  Status s = verdict.get();
  if (!s.ok()) {
    *answer = StandardResponse({{"", "MSG5003 - Not stored: " + s.message().substr(0, 200)}});
    return 503;
  }
  *answer = StandardResponse(messages);
  return 201;
}

StatusOr<bool> DipSource::Poll(SourceBatch* batch, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, wait, [this] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) return false;
  std::shared_ptr<Pending> p = queue_.front();
  queue_.pop_front();
  in_flight_[p->token] = p;
  batch->events = p->events;
  batch->checkpoint.clear();
  batch->unit = p->unit;
  batch->token = p->token;
  batch->last = true;
  batch->rejections.clear();
  return true;
}

void DipSource::Ack(const SourceBatch& batch, const Status& committed) {
  std::shared_ptr<Pending> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(batch.token);
    if (it == in_flight_.end()) return;
    p = it->second;
    in_flight_.erase(it);
  }
  // Not committed: the DIP gets a 503 and sends it again (it retries 5xx).
  p->done.set_value(committed);
}

void DipSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& p : queue_) p->done.set_value(Unavailable("stopping"));
    queue_.clear();
    for (auto& [token, p] : in_flight_) p->done.set_value(Unavailable("stopping"));
    in_flight_.clear();
  }
  cv_.notify_all();
  if (server_) server_->stopAll(true);
}

}  // namespace gw::connectors::dip
