// dip_sim: a stand-in for Elexon's Data Integration Platform, for tests and demos.
//
//   dip_sim --port P --cert server.crt --key server.key --ca ca.crt --api-key-file F
//           --out accepted.jsonl [--validator dip-validate] [--fail-first N] [--lose-answer N]
//
// It listens on https://127.0.0.1:P with mutual TLS (client certificates must chain to
// --ca) and answers POST /dip-channel/{interface} as the DIP does:
//   401  a wrong X-API-Key, or X-DIP-* signing headers that do not verify against --ca;
//   503  for the first N requests with --fail-first (an outage burst);
//   400  "MSG1001 - Schema Failure" for payloads --validator refuses, and "MSG1006" for a
//        senderUniqueReference it has accepted before (the whole request is refused);
//   201  a StandardResponse with "MSG0000 - Success" for each message otherwise, each payload
//        appended to --out. With --lose-answer N, the first N accepted requests are recorded
//        and then the connection is dropped without an answer (the sender must retry, and the
//        retry meets MSG1006).
// With --callback https://HOST:PORT, every accepted request is then published on to that
// participant's webhook (POST {callback}/webhook/{interface}), as the DIP does: mutual TLS with
// --client-cert/--client-key (which also sign the X-DIP-* headers), up to 3 attempts on 5xx.
// Prints "listening" once ready. Stops on SIGTERM.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/StreamCopier.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/URI.h>

#include <thread>

#include "gw/dip.h"
#include "gw/fs.h"

namespace {

struct Options {
  int port = 0;
  std::string cert, key, ca, api_key, out, validator;
  int fail_first = 0;
  int lose_answer = 0;
  std::string callback, client_cert, client_key;
};

struct State {
  Options o;
  std::unique_ptr<gw::TrustStore> trust;
  std::unique_ptr<gw::EventSigner> signer;  // for callbacks
  std::mutex mu;
  std::set<std::string> accepted;  // senderUniqueReference
  int fail_left = 0;
  int lose_left = 0;
};

std::string Now() { return gw::IsoUtc(static_cast<int64_t>(std::time(nullptr))) ; }

// Publishes `body` (accepted messages of `interface`) to the participant's webhook.
void Callback(State* s, const std::string& interface, const std::string& body) {
  Poco::URI base(s->o.callback);
  const std::string path = "/webhook/" + interface;
  const std::string url = s->o.callback + path;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    try {
      Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, s->o.client_key, s->o.client_cert, s->o.ca,
                                                           Poco::Net::Context::VERIFY_STRICT, 9, false);
      Poco::Net::HTTPSClientSession session(base.getHost(), base.getPort(), ctx);
      auto h = gw::SignDipRequest(*s->signer, "POST", url, body, gw::IsoUtc(static_cast<int64_t>(std::time(nullptr))));
      if (!h.ok()) throw std::runtime_error(h.status().message());
      Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, path, Poco::Net::HTTPMessage::HTTP_1_1);
      req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(body.size()));
      for (const auto& [name, value] : gw::DipHeaderFields(*h)) req.set(name, value);
      session.sendRequest(req) << body;
      Poco::Net::HTTPResponse resp;
      std::istream& in = session.receiveResponse(resp);
      std::string answer;
      Poco::StreamCopier::copyToString(in, answer);
      int status = static_cast<int>(resp.getStatus());
      std::cout << "callback " << url << ": " << status << std::endl;
      if (status < 500) return;
    } catch (const std::exception& e) {
      std::cout << "callback " << url << ": " << e.what() << std::endl;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
  }
}

std::string Ref(const Poco::JSON::Object::Ptr& payload) {
  try {
    auto common = payload->getObject("CommonBlock");
    if (!common) return "";
    // The reference sits in the CommonBlock's sender block, whatever its name: look it up.
    std::ostringstream os;
    Poco::JSON::Stringifier::stringify(common, os);
    std::string text = os.str();
    size_t p = text.find("\"senderUniqueReference\":\"");
    if (p == std::string::npos) return "";
    p += 25;
    return text.substr(p, text.find('"', p) - p);
  } catch (...) {
    return "";
  }
}

// Runs the validator over `lines`; returns the indexes it refused.
std::set<size_t> Invalid(const std::string& validator, const std::string& interface, const std::string& lines) {
  std::set<size_t> bad;
  if (validator.empty()) return bad;
  char in_path[] = "/tmp/dip-sim-XXXXXX";
  int fd = ::mkstemp(in_path);
  if (fd < 0) return bad;
  (void)!::write(fd, lines.data(), lines.size());
  ::close(fd);
  std::string cmd = validator + " " + interface + " < " + in_path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (p) ::pclose(p);
  ::unlink(in_path);
  std::istringstream is(out);
  std::string line;
  while (std::getline(is, line)) {
    if (line.rfind("-#", 0) == 0) bad.insert(std::strtoul(line.c_str() + 2, nullptr, 10));
  }
  return bad;
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(State* s) : s_(s) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    std::string body;
    Poco::StreamCopier::copyToString(req.stream(), body);
    const std::string uri = req.getURI();
    if (req.getMethod() != "POST" || uri.rfind("/dip-channel/", 0) != 0) return Answer(resp, 404, {{"", "MSG4004 - Not found"}});
    const std::string interface = uri.substr(13);
    if (req.get("X-API-Key", "") != s_->o.api_key) return Answer(resp, 401, {{"", "MSG2001 - Unauthorised: X-API-Key"}});
    gw::DipSignatureHeaders h;
    h.content_hash = req.get("X-DIP-Content-Hash", "");
    h.date = req.get("X-DIP-Signature-Date", "");
    h.signature = req.get("X-DIP-Signature", "");
    h.certificate = req.get("X-DIP-Signature-Certificate", "");
    const std::string url = "https://127.0.0.1:" + std::to_string(s_->o.port) + uri;
    gw::VerifyVerdict v = gw::VerifyDipRequest(*s_->trust, "POST", url, body, h);
    if (!v.ok()) return Answer(resp, 401, {{"", "MSG2002 - Signature Failure: " + v.code + ": " + v.message}});
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      if (s_->fail_left > 0) {
        --s_->fail_left;
        return Answer(resp, 503, {{"", "MSG5003 - Service Unavailable"}});
      }
    }
    std::vector<Poco::JSON::Object::Ptr> payloads;
    try {
      Poco::JSON::Parser parser;
      auto array = parser.parse(body).extract<Poco::JSON::Array::Ptr>();
      for (size_t i = 0; i < array->size(); ++i) {
        auto item = array->getObject(static_cast<unsigned>(i));
        if (!item || !item->getObject("payload")) throw std::runtime_error("element " + std::to_string(i) + " has no payload");
        payloads.push_back(item->getObject("payload"));
      }
    } catch (const std::exception& e) {
      return Answer(resp, 400, {{"", std::string("MSG1000 - Invalid request: ") + e.what()}});
    }
    std::vector<std::string> texts;
    std::string lines;
    for (const auto& p : payloads) {
      std::ostringstream os;
      Poco::JSON::Stringifier::stringify(p, os);
      texts.push_back(os.str());
      lines += texts.back() + "\n";
    }
    std::set<size_t> invalid = Invalid(s_->o.validator, interface, lines);
    std::lock_guard<std::mutex> lock(s_->mu);
    std::vector<std::pair<std::string, std::string>> refused;  // reference, message
    for (size_t i = 0; i < payloads.size(); ++i) {
      const std::string ref = Ref(payloads[i]);
      if (invalid.count(i)) refused.emplace_back(ref, "MSG1001 - Schema Failure");
      else if (s_->accepted.count(ref)) refused.emplace_back(ref, "MSG1006 - Duplicate senderUniqueReference");
    }
    if (!refused.empty()) return Answer(resp, 400, refused);
    std::ofstream out(s_->o.out, std::ios::app);
    std::vector<std::pair<std::string, std::string>> ok;
    for (size_t i = 0; i < payloads.size(); ++i) {
      const std::string ref = Ref(payloads[i]);
      s_->accepted.insert(ref);
      out << "{\"interface\":\"" << interface << "\",\"payload\":" << texts[i] << "}\n";
      ok.emplace_back(ref, "MSG0000 - Success");
    }
    out.flush();
    if (!s_->o.callback.empty()) {
      // The DIP publishes on to the recipient's webhook; the submitter does not wait for it.
      std::string egress = "[";
      for (size_t i = 0; i < texts.size(); ++i) egress += (i ? ",{\"payload\":" : "{\"payload\":") + texts[i] + "}";
      egress += "]";
      std::thread(Callback, s_, interface, egress).detach();
    }
    if (s_->lose_left > 0) {
      --s_->lose_left;
      // Accepted, but the answer never reaches the sender.
      throw Poco::IOException("answer lost on purpose");
    }
    Answer(resp, 201, ok);
  }

 private:
  void Answer(Poco::Net::HTTPServerResponse& resp, int status, const std::vector<std::pair<std::string, std::string>>& messages) {
    Poco::JSON::Object root;
    Poco::JSON::Array array;
    for (const auto& [ref, msg] : messages) {
      Poco::JSON::Object m;
      m.set("transactionID", Poco::Dynamic::Var());
      m.set("senderUniqueReference", ref.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(ref));
      m.set("message", msg);
      m.set("help", Poco::Dynamic::Var());
      array.add(m);
    }
    root.set("messageArray", array);
    root.set("timestamp", Now());
    std::ostringstream os;
    root.stringify(os);
    const std::string text = os.str();
    resp.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    resp.setContentType("application/json");
    resp.setContentLength(static_cast<std::streamsize>(text.size()));
    resp.send() << text;
  }

  State* s_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(State* s) : s_(s) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override { return new Handler(s_); }

 private:
  State* s_;
};

}  // namespace

int main(int argc, char** argv) {
  State s;
  std::string api_key_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") s.o.port = std::stoi(v);
    else if (k == "--cert") s.o.cert = v;
    else if (k == "--key") s.o.key = v;
    else if (k == "--ca") s.o.ca = v;
    else if (k == "--api-key-file") api_key_file = v;
    else if (k == "--out") s.o.out = v;
    else if (k == "--validator") s.o.validator = v;
    else if (k == "--fail-first") s.o.fail_first = std::stoi(v);
    else if (k == "--lose-answer") s.o.lose_answer = std::stoi(v);
    else if (k == "--callback") s.o.callback = v;
    else if (k == "--client-cert") s.o.client_cert = v;
    else if (k == "--client-key") s.o.client_key = v;
    else {
      std::cerr << "dip_sim: unknown option " << k << "\n";
      return 64;
    }
  }
  auto key = gw::ReadSecretFile(api_key_file);
  if (!key.ok() || s.o.port == 0 || s.o.out.empty()) {
    std::cerr << "dip_sim: --port, --cert, --key, --ca, --api-key-file and --out are required"
              << (key.ok() ? "" : " (" + key.status().message() + ")") << "\n";
    return 64;
  }
  s.o.api_key = *key;
  s.fail_left = s.o.fail_first;
  s.lose_left = s.o.lose_answer;
  gw::SecurityConfig sc;
  sc.configured = true;
  sc.trust_ca_file = s.o.ca;
  auto trust = gw::TrustStore::Load(sc);
  if (!trust.ok()) {
    std::cerr << "dip_sim: " << trust.status().message() << "\n";
    return 78;
  }
  s.trust = std::move(trust.value());
  if (!s.o.callback.empty()) {
    gw::SecurityConfig signing;
    signing.configured = true;
    signing.key_file = s.o.client_key;
    signing.certificate_file = s.o.client_cert;
    // The DIP's own certificate: whatever it names, it must be RSA and fit its key.
    auto signer = gw::EventSigner::Load(signing, "");
    if (!signer.ok()) {
      std::cerr << "dip_sim: --client-cert/--client-key: " << signer.status().message() << "\n";
      return 78;
    }
    s.signer = std::move(signer.value());
  }
  Poco::Net::initializeSSL();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  {
    Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, s.o.key, s.o.cert, s.o.ca,
                                                         Poco::Net::Context::VERIFY_STRICT, 9, false);
    // Client certificates name participants, not the host they connect from: the chain is
    // checked, the peer's address is not matched against them.
    ctx->enableExtendedCertificateVerification(false);
    Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(s.o.port)), 64, ctx);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    Poco::Net::HTTPServer server(new Factory(&s), socket, params);
    server.start();
    std::cout << "listening" << std::endl;
    int sig = 0;
    sigwait(&set, &sig);
    server.stopAll(true);
  }
  Poco::Net::uninitializeSSL();
  return 0;
}
