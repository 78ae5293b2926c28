// A sink that appends each event's envelope, one per line, to a file, and confirms an event
// only once its line is on disk (fsync).
//
//   [sink.archive]
//   type = jsonl
//   path = /var/spool/mhhs-gateway/events.jsonl
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "mhhs/connector.h"
#include "mhhs/event.h"
#include "mhhs/plugin.h"

namespace jsonl {

class JsonlSink : public gw::Sink {
 public:
  // The factory: reads and checks its own keys. Any key it does not read is refused by the
  // gateway afterwards, naming the file and line.
  static gw::StatusOr<std::unique_ptr<gw::Sink>> Create(const gw::ConnectorContext& ctx) {
    auto path = ctx.config.GetRequired("path");
    if (!path.ok()) return path.status();
    return std::unique_ptr<gw::Sink>(new JsonlSink(*path, ctx));
  }

  ~JsonlSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  gw::Status Start() override {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd_ < 0) return gw::FailedPrecondition(path_ + ": cannot open: " + std::strerror(errno));
    return gw::Status::Ok();
  }

  // One write and one fsync for the whole batch; every event shares the outcome.
  std::vector<gw::Status> Deliver(const std::vector<const gw::Event*>& events) override {
    std::string lines;
    for (const gw::Event* e : events) {
      gw::AppendEnvelopeJson(*e, &lines);
      lines += '\n';
    }
    gw::Status s = WriteAll(lines);
    if (s.ok()) written_.Increment(static_cast<double>(events.size()));
    return std::vector<gw::Status>(events.size(), s);
  }

  bool Connected() const override { return fd_ >= 0; }
  void Stop() override {}

 private:
  JsonlSink(std::string path, const gw::ConnectorContext& ctx)
      : path_(std::move(path)), written_(gw::MetricsOf(ctx).GetCounter("jsonl_lines_written", "Envelopes appended")) {}

  gw::Status WriteAll(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      // A full disk is transient: the gateway keeps the events and tries again later. (A
      // partial line may be left behind; readers skip a line that does not parse.)
      if (n < 0) return gw::Unavailable(path_ + ": write: " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd_) != 0) return gw::Unavailable(path_ + ": fsync: " + std::strerror(errno));
    return gw::Status::Ok();
  }

  std::string path_;
  gw::Counter& written_;
  int fd_ = -1;
};

gw::Status Register(gw::ConnectorRegistry& registry) { return registry.RegisterSink("jsonl", &JsonlSink::Create); }

}  // namespace jsonl

MHHS_GATEWAY_PLUGIN("jsonl-sink", "1.0.0", jsonl::Register)
