// A real HTTP server on 127.0.0.1 (a free port) for tests of HTTP sinks: it records every
// request and answers each with the status a test chooses.
// Thread-safety: Requests() may be called while the server runs.
#ifndef GW_TESTS_SUPPORT_HTTP_SERVER_H_
#define GW_TESTS_SUPPORT_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gw::testing {

class RecordingHttpServer {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers;
    std::string body;
  };
  // `status_for(request, n)` gives the status of the n-th request (0-based); default 200.
  using Responder = std::function<int(const Request&, int)>;

  explicit RecordingHttpServer(Responder status_for = nullptr);
  ~RecordingHttpServer();
  RecordingHttpServer(const RecordingHttpServer&) = delete;
  RecordingHttpServer& operator=(const RecordingHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<Request> Requests();

 private:
  class Factory;
  friend class Factory;
  int Answer(const Request& r);

  Responder status_for_;
  std::mutex mu_;
  std::vector<Request> requests_;
  int port_ = 0;
  struct Server;
  std::unique_ptr<Server> server_;
};

}  // namespace gw::testing

#endif  // GW_TESTS_SUPPORT_HTTP_SERVER_H_
