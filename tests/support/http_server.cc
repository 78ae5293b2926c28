#include "tests/support/http_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

namespace gw::testing {

struct RecordingHttpServer::Server {
  std::unique_ptr<Poco::Net::HTTPServer> http;
};

class RecordingHttpServer::Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(RecordingHttpServer* owner) : owner_(owner) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    class Handler : public Poco::Net::HTTPRequestHandler {
     public:
      explicit Handler(RecordingHttpServer* owner) : owner_(owner) {}
      void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
        Request r;
        r.method = req.getMethod();
        r.path = req.getURI();
        for (const auto& h : req) r.headers[h.first] = h.second;
        Poco::StreamCopier::copyToString(req.stream(), r.body);
        int status = owner_->Answer(r);
        resp.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
        std::string body = status < 300 ? "{\"ok\":true}" : "{\"error\":\"status " + std::to_string(status) + "\"}";
        resp.setContentType("application/json");
        resp.setContentLength(static_cast<std::streamsize>(body.size()));
        resp.send() << body;
      }

     private:
      RecordingHttpServer* owner_;
    };
    return new Handler(owner_);
  }

 private:
  RecordingHttpServer* owner_;
};

RecordingHttpServer::RecordingHttpServer(Responder status_for) : status_for_(std::move(status_for)), server_(new Server) {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 16);
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(4);
  server_->http = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), socket, params);
  server_->http->start();
}

RecordingHttpServer::~RecordingHttpServer() { server_->http->stopAll(true); }

int RecordingHttpServer::Answer(const Request& r) {
  std::lock_guard<std::mutex> lock(mu_);
  int n = static_cast<int>(requests_.size());
  requests_.push_back(r);
  return status_for_ ? status_for_(r, n) : 200;
}

std::vector<RecordingHttpServer::Request> RecordingHttpServer::Requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

}  // namespace gw::testing
