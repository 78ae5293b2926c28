// pending_bench: the daemon with 1 000 000 pending events in its journal.
//
// Measures, against the same daemon on an empty journal in the same run:
//  - time from exec to READY=1 (sd_notify, read from our own NOTIFY_SOCKET);
//  - resident memory (VmRSS sampled, and VmHWM) while the broker is down and while the whole
//    backlog drains to a real Mosquitto;
//  - the drain rate.
// Usage: pending_bench [EVENTS]   (default 1000000)
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gw/journal.h"
#include "tests/support/test_support.h"

using gw::testing::Mosquitto;
using gw::testing::Process;
using gw::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

long ProcKb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field) + 1));
  }
  return -1;
}

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::perror("bind notify socket");
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); ::unlink(path_.c_str()); }
  // Waits for a datagram containing READY=1; false on timeout.
  bool WaitReady(std::chrono::seconds timeout) {
    auto until = Clock::now() + timeout;
    char buf[4096];
    while (Clock::now() < until) {
      ssize_t n = ::recv(fd_, buf, sizeof buf - 1, 0);
      if (n <= 0) continue;
      buf[n] = '\0';
      if (std::strstr(buf, "READY=1")) return true;
    }
    return false;
  }

 private:
  std::string path_;
  int fd_;
};

std::string Config(const TempDir& dir, const std::string& journal, int port) {
  std::string path = dir / "gateway.ini";
  gw::testing::WriteFile(path,
      "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = D\nenvironment = SIT\nflow_dir = " + gw::testing::SourceDir() +
      "/config/flows\nlog_level = notice\n[journal]\npath = " + journal + "\n[source.inbox]\ntype = file\ndirectory = " + dir / "inbox" +
      "\narchive = " + dir / "archive" + "\nrejected = " + dir / "rejected" + "\n[sink.backbone]\ntype = mqtt\nuri = tcp://127.0.0.1:" +
      std::to_string(port) + "\nclient_id = bench\nconnect_timeout_s = 1\nreconnect_max_ms = 500\nretry_max_ms = 500\n"
      "[route.all]\nfrom = inbox\nto = backbone\n");
  return path;
}

// Starts the daemon and returns the seconds until READY=1.
double StartAndTimeReady(Process* p, const TempDir& dir, const std::string& config) {
  NotifySocket notify(dir / "notify.sock");
  auto t0 = Clock::now();
  p->Start({gw::testing::DaemonPath(), "--config", config}, dir / "gateway.log", {{"NOTIFY_SOCKET", dir / "notify.sock"}});
  if (!notify.WaitReady(std::chrono::seconds(120))) {
    std::fprintf(stderr, "daemon never became ready; log:\n%s\n", gw::testing::ReadFileOrEmpty(dir / "gateway.log").c_str());
    std::exit(1);
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t kEvents = argc > 1 ? std::stoll(argv[1]) : 1000000;
  TempDir dir;
  int port = gw::testing::FreePort();

  // Baseline: the same daemon on an empty journal.
  double ready_empty;
  long rss_empty;
  {
    Process p;
    ready_empty = StartAndTimeReady(&p, dir, Config(dir, dir / "empty.db", port));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    rss_empty = ProcKb(p.pid(), "VmRSS:");
    p.Stop(SIGTERM);
  }

  std::printf("filling a journal with %lld pending events...\n", static_cast<long long>(kEvents));
  std::string journal = dir / "journal.db";
  auto fill_start = Clock::now();
  {
    gw::JournalOptions o;
    o.path = journal;
    auto j = gw::Journal::Open(o);
    if (!j.ok()) { std::fprintf(stderr, "%s\n", j.status().ToString().c_str()); return 1; }
    std::vector<gw::DeliveryTarget> targets{gw::DeliveryTarget{"backbone", 0}};
    std::vector<gw::Event> batch;
    for (int64_t i = 0; i < kEvents; ++i) {
      gw::Event e;
      e.id = "UDMS-" + std::to_string(i);
      e.type = "D0010002";
      e.sender = gw::Party{"UDMS", "D", ""};
      e.recipients = {gw::Party{"MRCY", "X", ""}};
      e.created_at = "2026-03-02T15:31:51+00:00";
      e.correlation_id = "UDMS-1";
      e.payload = R"({"mpanCore":")" + std::to_string(1000000000000LL + i) +
                  R"(","bscValidationStatus":"V","meters":[{"meterId":"F75A 00802","readingType":"D","registers":[{"meterRegisterId":"S","readingDateTime":"2016-02-22T00:00:00","registerReading":"56311.0","mdResetDateTime":null,"numberOfMdResets":null,"readingFlag":"T","readingMethod":"N"}]}]})";
      e.origin = "inbox:bench.uff:" + std::to_string(i);
      batch.push_back(std::move(e));
      if (batch.size() == 5000 || i + 1 == kEvents) {
        if (!(*j)->Append("inbox", batch, targets, "", nullptr).ok()) return 1;
        batch.clear();
      }
    }
  }
  double fill_s = std::chrono::duration<double>(Clock::now() - fill_start).count();
  std::ifstream sz(journal, std::ios::ate | std::ios::binary);
  long long journal_mb = static_cast<long long>(sz.tellg()) / (1024 * 1024);

  Process p;
  double ready_full = StartAndTimeReady(&p, dir, Config(dir, journal, port));
  long rss_idle_max = 0;
  for (int i = 0; i < 30; ++i) {  // 3 s with the broker down: retries, nothing drains
    rss_idle_max = std::max(rss_idle_max, ProcKb(p.pid(), "VmRSS:"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Mosquitto broker(dir / "broker", port);
  broker.Start();
  auto drain_start = Clock::now();
  long rss_drain_max = 0;
  int64_t pending = kEvents;
  for (;;) {
    rss_drain_max = std::max(rss_drain_max, ProcKb(p.pid(), "VmRSS:"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string out;
    gw::testing::RunCommand({gw::testing::CtlPath(), "--config", dir / "gateway.ini", "--json", "queue"}, &out);
    size_t at = out.find("\"pending\":");
    if (at != std::string::npos) pending = std::stoll(out.substr(at + 10));
    if (pending == 0) break;
    if (Clock::now() - drain_start > std::chrono::minutes(20)) break;
  }
  double drain_s = std::chrono::duration<double>(Clock::now() - drain_start).count();
  long hwm = ProcKb(p.pid(), "VmHWM:");
  p.Stop(SIGTERM);

  std::printf("\njournal with %lld pending events: %lld MB on disk, filled in %.1f s (%.0f events/s)\n",
              static_cast<long long>(kEvents), journal_mb, fill_s, kEvents / fill_s);
  std::printf("ready after start:  empty journal %.3f s, full journal %.3f s (ratio %.1f; target < 2 s)\n",
              ready_empty, ready_full, ready_full / ready_empty);
  std::printf("resident memory:    empty %ld kB; full, broker down max %ld kB; draining max %ld kB; peak (VmHWM) %ld kB "
              "(target < 65536 kB)\n", rss_empty, rss_idle_max, rss_drain_max, hwm);
  std::printf("backlog drain:      %lld events in %.1f s = %.0f events/s%s\n", static_cast<long long>(kEvents - pending),
              drain_s, (kEvents - pending) / drain_s, pending ? " (stopped before the end)" : "");
  std::printf("pending_bench: ready %.3f s, peak RSS %ld kB, drain %.0f events/s\n", ready_full, hwm, (kEvents - pending) / drain_s);
  return 0;
}
