#include "connectors/dip/dip_sink.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <sstream>

#include "connectors/dip/poco_ssl.h"
#include "gw/dip.h"
#include "gw/fs.h"

namespace gw::connectors::dip {
namespace {

bool Retryable(int status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

// Runs `argv` with `input` on stdin; returns the exit code and stdout.
int RunFilter(const std::vector<std::string>& argv, const std::string& input, std::string* output) {
  int in[2], out[2];
  if (::pipe(in) != 0) return -1;
  if (::pipe(out) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[1]);
    ::close(out[0]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  // The validator reads everything before it writes, so writing first cannot deadlock for
  // inputs of a few megabytes; larger batches are split by max_messages anyway.
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) output->append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The payload's senderUniqueReference, the DIP's key for a message.
std::string SenderUniqueReference(const std::string& payload) {
  size_t p = payload.find("\"senderUniqueReference\":\"");
  if (p == std::string::npos) return "";
  p += 25;
  size_t e = payload.find('"', p);
  return e == std::string::npos ? "" : payload.substr(p, e - p);
}

}  // namespace

StatusOr<std::unique_ptr<Sink>> DipSink::Create(const ConnectorContext& ctx) {
  EnsurePocoSsl();
  const ConfigSection& c = ctx.config;
  DipSinkOptions o;
  auto base = c.GetRequired("base_url");
  if (!base.ok()) return base.status();
  o.base_url = *base;
  while (!o.base_url.empty() && o.base_url.back() == '/') o.base_url.pop_back();
  try {
    Poco::URI uri(o.base_url);
    if (uri.getScheme() != "https" || uri.getHost().empty()) throw Poco::SyntaxException("not https");
    o.host = uri.getHost();
    o.port = uri.getPort();
  } catch (const Poco::Exception&) {
    return c.Error("base_url", "must be https://HOST[:PORT] (got \"" + *base + "\")");
  }
  o.cert_file = c.GetString("cert_file", "");
  o.key_file = c.GetString("key_file", "");
  o.ca_file = c.GetString("ca_file", "");
  if (o.cert_file.empty() || o.key_file.empty()) return c.Error("cert_file", "the DIP needs mutual TLS: cert_file and key_file are required");
  for (const char* key : {"cert_file", "key_file", "ca_file"}) {
    std::string path = c.GetString(key, "");
    if (!path.empty() && ::access(path.c_str(), R_OK) != 0) return c.Error(key, "cannot read " + path);
  }
  Status secret = CheckSecretFile(o.key_file);
  if (!secret.ok()) return c.Error("key_file", secret.message());
  auto verify = c.GetBool("verify_hostname", true);
  if (!verify.ok()) return verify.status();
  o.verify_hostname = *verify;
  auto api_key_file = c.GetRequired("api_key_file");
  if (!api_key_file.ok()) return api_key_file.status();
  auto api_key = ReadSecretFile(*api_key_file);
  if (!api_key.ok()) return c.Error("api_key_file", api_key.status().message());
  o.api_key = *api_key;
  auto max = c.GetInt("max_messages", 50, 1, 1000);
  if (!max.ok()) return max.status();
  o.max_messages = static_cast<int>(*max);
  auto timeout = c.GetInt("timeout_s", 30, 1, 600);
  if (!timeout.ok()) return timeout.status();
  o.timeout = std::chrono::seconds(*timeout);
  o.validator = c.GetString("validator", "");
  if (!o.validator.empty() && ::access(o.validator.c_str(), X_OK) != 0) return c.Error("validator", "cannot run " + o.validator);
  SecurityConfig sc;
  sc.configured = true;
  sc.key_file = c.GetString("signing_key", o.key_file);
  sc.certificate_file = c.GetString("signing_certificate", o.cert_file);
  // The signing certificate names this participant by its DIP id (or its MPID).
  const std::string identity = ctx.gateway.dip_id.empty() ? ctx.gateway.participant_mpid : ctx.gateway.dip_id;
  auto signer = EventSigner::Load(sc, identity);
  if (!signer.ok() && identity != ctx.gateway.participant_mpid) signer = EventSigner::Load(sc, ctx.gateway.participant_mpid);
  if (!signer.ok()) return c.Error("signing_key", signer.status().message());
  if ((*signer)->algorithm() != "RS256") return c.Error("signing_key", "the DIP takes RSA signatures only");
  return std::unique_ptr<Sink>(new DipSink(std::move(o), std::move(signer.value()), ctx.logger));
}

DipSink::DipSink(DipSinkOptions options, std::unique_ptr<EventSigner> signer, Logger& logger)
    : options_(std::move(options)), signer_(std::move(signer)), logger_(logger) {}

DipSink::~DipSink() = default;

DeliveryHints DipSink::Hints() const {
  DeliveryHints h;
  h.max_batch = options_.max_messages * 4;
  return h;
}

Status DipSink::Start() {
  try {
    context_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, options_.key_file, options_.cert_file, options_.ca_file,
                                      Poco::Net::Context::VERIFY_STRICT, 9, options_.ca_file.empty());
    // The DIP's certificate must name the host in base_url, unless verify_hostname = false.
    context_->enableExtendedCertificateVerification(options_.verify_hostname);
    context_->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 | Poco::Net::Context::PROTO_TLSV1 |
                               Poco::Net::Context::PROTO_TLSV1_1);
  } catch (const Poco::Exception& e) {
    return FailedPrecondition("cannot set up TLS for " + options_.base_url + ": " + e.displayText());
  }
  logger_.Info("submitting to " + options_.base_url + "/dip-channel/{interface}, at most " +
               std::to_string(options_.max_messages) + " message(s) per request");
  return Status::Ok();
}

std::vector<std::string> DipSink::Validate(const std::string& interface, const std::vector<const Event*>& group) {
  std::vector<std::string> reasons(group.size());
  if (options_.validator.empty()) return reasons;
  std::string lines;
  for (const Event* e : group) lines += e->payload + "\n";
  std::string out;
  int rc = RunFilter({options_.validator, interface}, lines, &out);
  if (rc == 0) return reasons;
  // "-#I: path: message" for each error of payload I.
  std::istringstream in(out);
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    if (line.rfind("-#", 0) != 0) continue;
    size_t colon = line.find(':');
    size_t i = static_cast<size_t>(std::strtoul(line.c_str() + 2, nullptr, 10));
    if (colon == std::string::npos || i >= group.size()) continue;
    if (reasons[i].empty()) reasons[i] = "schema: " + line.substr(colon + 2);
    any = true;
  }
  if (!any) {
    // The validator failed without naming a payload: nothing can be said about them, so
    // nothing is sent and the batch is retried.
    logger_.Error(options_.validator + " " + interface + " failed (exit " + std::to_string(rc) + "): " + out.substr(0, 300));
    for (std::string& r : reasons) r = "!validator";
  }
  return reasons;
}

void DipSink::Submit(const std::string& interface, const std::vector<const Event*>& group, std::vector<Status>* results) {
  results->assign(group.size(), Status::Ok());
  std::vector<std::string> invalid = Validate(interface, group);
  std::vector<size_t> send;  // indexes into group
  for (size_t i = 0; i < group.size(); ++i) {
    if (invalid[i] == "!validator") {
      (*results)[i] = Unavailable("the schema validator failed; see the log");
    } else if (!invalid[i].empty()) {
      (*results)[i] = InvalidArgument(invalid[i]);
    } else {
      send.push_back(i);
    }
  }
  if (send.empty()) return;
  std::string body = "[";
  for (size_t k = 0; k < send.size(); ++k) {
    if (k) body += ",";
    body += "{\"payload\":" + group[send[k]]->payload + "}";
  }
  body += "]";
  const std::string path = "/dip-channel/" + interface;
  const std::string url = options_.base_url + path;
  auto headers = SignDipRequest(*signer_, "POST", url, body, IsoUtc(static_cast<int64_t>(std::time(nullptr))));
  auto fail_all = [&](const Status& s) {
    for (size_t k : send) (*results)[k] = s;
  };
  if (!headers.ok()) {
    fail_all(Unavailable("signing: " + headers.status().message()));
    return;
  }
  int status = 0;
  std::string answer;
  try {
    if (!session_) {
      session_ = std::make_unique<Poco::Net::HTTPSClientSession>(options_.host, static_cast<Poco::UInt16>(options_.port), context_);
      session_->setTimeout(Poco::Timespan(static_cast<long>(options_.timeout.count()), 0));
      session_->setKeepAlive(true);
    }
    Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setContentType("application/json");
    req.setContentLength(static_cast<std::streamsize>(body.size()));
    req.set("X-API-Key", options_.api_key);
    for (const auto& [name, value] : DipHeaderFields(*headers)) req.set(name, value);
    session_->sendRequest(req) << body;
    Poco::Net::HTTPResponse resp;
    std::istream& in = session_->receiveResponse(resp);
    Poco::StreamCopier::copyToString(in, answer);
    status = static_cast<int>(resp.getStatus());
  } catch (const Poco::Exception& e) {
    session_.reset();  // a broken connection is not reused
    healthy_.store(false);
    fail_all(Unavailable(url + ": " + e.displayText()));
    return;
  }
  if (status == 201 || status == 200) {
    healthy_.store(true);
    return;
  }
  if (Retryable(status)) {
    healthy_.store(status < 500);
    fail_all(Unavailable(url + ": HTTP " + std::to_string(status) + ": " + answer.substr(0, 200)));
    return;
  }
  if (status == 401 || status == 403) {
    // The credentials (API key, certificate, signature) were refused: nothing is wrong with
    // the messages, so they wait until the configuration is fixed.
    healthy_.store(false);
    logger_.Error(url + ": HTTP " + std::to_string(status) + ": the DIP refused this gateway's credentials: " + answer.substr(0, 200));
    fail_all(Unavailable(url + ": HTTP " + std::to_string(status) + ": credentials refused"));
    return;
  }
  healthy_.store(true);
  // A refusal: the StandardResponse says which message and why.
  std::map<std::string, std::string> by_reference;
  std::string first_message;
  try {
    Poco::JSON::Parser parser;
    auto root = parser.parse(answer).extract<Poco::JSON::Object::Ptr>();
    auto array = root->getArray("messageArray");
    for (size_t i = 0; array && i < array->size(); ++i) {
      auto m = array->getObject(static_cast<unsigned>(i));
      if (!m) continue;
      std::string ref = m->has("senderUniqueReference") && !m->isNull("senderUniqueReference") ? m->getValue<std::string>("senderUniqueReference") : "";
      std::string msg = m->has("message") && !m->isNull("message") ? m->getValue<std::string>("message") : "";
      if (first_message.empty()) first_message = msg;
      if (!ref.empty()) by_reference[ref] = msg;
    }
  } catch (const std::exception&) {
    // Not a StandardResponse: the status and body say it all.
  }
  // The DIP takes or refuses a request as a whole: a message it names with an error of its
  // own is refused for good; one it names as received before (MSG1006) got there on an earlier
  // attempt; one it does not name was refused only for its neighbours and goes again.
  for (size_t k : send) {
    const std::string ref = SenderUniqueReference(group[k]->payload);
    auto it = by_reference.find(ref);
    if (by_reference.empty()) {
      (*results)[k] = InvalidArgument(url + ": HTTP " + std::to_string(status) + ": " +
                                      (first_message.empty() ? answer.substr(0, 200) : first_message));
      continue;
    }
    if (it == by_reference.end()) {
      (*results)[k] = Unavailable(url + ": HTTP " + std::to_string(status) + ": refused with other messages of its request");
      continue;
    }
    const std::string& msg = it->second;
    if (msg.rfind("MSG1006", 0) == 0) {
      logger_.Info(ref + ": the DIP had received it already (MSG1006): an earlier attempt got through; delivered");
      continue;
    }
    if (msg.rfind("MSG0000", 0) == 0) continue;
    (*results)[k] = InvalidArgument(url + ": HTTP " + std::to_string(status) + ": " + msg);
  }
}

std::vector<Status> DipSink::Deliver(const std::vector<const Event*>& events) {
  std::vector<Status> results(events.size());
  size_t i = 0;
  bool held = false;
  while (i < events.size()) {
    if (held || stopping_.load()) {
      results[i++] = Unavailable("held back behind an earlier failure");
      continue;
    }
    const std::string& type = events[i]->type;
    if (type.rfind("IF-", 0) != 0 && type.rfind("REP-", 0) != 0) {
      results[i++] = InvalidArgument("event type " + type + " is not a DIP interface (IF-xxx or REP-xxx)");
      continue;
    }
    std::vector<const Event*> group;
    size_t start = i;
    while (i < events.size() && events[i]->type == type && static_cast<int>(group.size()) < options_.max_messages) {
      group.push_back(events[i++]);
    }
    std::vector<Status> r;
    Submit(type, group, &r);
    for (size_t k = 0; k < r.size(); ++k) {
      results[start + k] = r[k];
      if (r[k].code() == StatusCode::kUnavailable) held = true;
    }
  }
  return results;
}

}  // namespace gw::connectors::dip
