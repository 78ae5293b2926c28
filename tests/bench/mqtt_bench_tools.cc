// Small tools for scripts/bench, on Eclipse Paho MQTT C++ (and the gateway's own client):
//
//   bench_mqtt pub --uri URI --topic T --input FILE [--qos 1] [--window 256] --times OUT
//     Publishes each line of FILE (one envelope per line) with QoS 1, keeping at most WINDOW
//     unacknowledged: the broker+client ceiling ("limit"). Writes "id<TAB>unix_ns" per message
//     as it is handed to the client, and prints "sent N in S s, cpu C s, maxrss K kB".
//
//   bench_mqtt wirepub --uri URI --topic T --input FILE [--window 256] [--batch 1024] [--times OUT]
//     The same with the gateway's own MQTT client, as the mqtt sink uses it (PublishBatch of
//     BATCH messages at a time): the client's own share of the gap to the limit.
//
//   bench_mqtt sub --uri URI --filter F --expect N --out OUT [--idle-timeout S] [--client-id ID]
//                  [--persistent 1] [--delay-us U]
//     Subscribes (QoS 1), prints "ready" once subscribed, and records
//     "id<TAB>unix_ns<TAB>bytes" for every message received until N distinct ids arrived or
//     nothing came for S seconds. Prints "received R, unique U, duplicates D".
//     --persistent 1: a persistent session that reconnects by itself (rides out a broker
//     restart; the broker keeps its messages meanwhile). --delay-us: a slow consumer that
//     takes U microseconds over each message.
//
//   bench_mqtt wiresub --uri URI --filter F --expect N --out OUT [--idle-timeout S] [--client-id ID]
//     The same subscriber on the gateway's own client (BENCH_SUBSCRIBER=wire): it takes many
//     messages per recv() and acknowledges up to 16 with one write, so that counting uses about
//     half the CPU of `sub` (Paho reads each packet with several system calls and answers each
//     with its own write). With 256 per write the alternative path measured slower still.
//
// Times are CLOCK_REALTIME nanoseconds so that the harness can join them with file drop times
// taken in another process.
#include <mqtt/async_client.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "connectors/mqtt/mqtt_wire.h"

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The envelope's "id" member: the first "id":"..." in the text.
std::string EnvelopeId(const std::string& s) {
  size_t p = s.find("\"id\":\"");
  if (p == std::string::npos) return "";
  p += 6;
  size_t e = s.find('"', p);
  return e == std::string::npos ? "" : s.substr(p, e - p);
}

std::map<std::string, std::string> Args(int argc, char** argv) {
  std::map<std::string, std::string> m;
  for (int i = 2; i + 1 < argc; i += 2) m[argv[i]] = argv[i + 1];
  return m;
}

std::string Need(const std::map<std::string, std::string>& a, const char* k) {
  auto it = a.find(k);
  if (it == a.end()) {
    std::fprintf(stderr, "bench_mqtt: %s is required\n", k);
    std::exit(64);
  }
  return it->second;
}

void Usage() {
  std::fprintf(stderr,
               "usage: bench_mqtt pub --uri URI --topic T --input FILE --times OUT [--qos 1] [--window 256]\n"
               "       bench_mqtt wirepub --uri URI --topic T --input FILE [--window 256] [--batch 1024] [--times OUT]\n"
               "       bench_mqtt sub --uri URI --filter F --expect N --out OUT [--idle-timeout 30] [--client-id ID]\n"
               "                      [--persistent 1] [--delay-us U]\n"
               "       bench_mqtt wiresub --uri URI --filter F --expect N --out OUT [--idle-timeout 30] [--client-id ID]\n");
}

// Writes each message's hand-over time to `times_path` (unless empty) and prints
// "sent N in S s, cpu C s, maxrss K kB".
void Report(const std::vector<std::pair<std::string, int64_t>>& times, const std::string& times_path, double secs) {
  if (!times_path.empty()) {
    std::ofstream out(times_path);
    for (const auto& [id, ns] : times) out << id << '\t' << ns << '\n';
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::printf("sent %zu in %.3f s, cpu %.3f s, maxrss %ld kB\n", times.size(), secs, cpu, ru.ru_maxrss);
}

int Pub(const std::map<std::string, std::string>& a) {
  const std::string uri = Need(a, "--uri"), topic = Need(a, "--topic");
  const int qos = a.count("--qos") ? std::stoi(a.at("--qos")) : 1;
  const size_t window = a.count("--window") ? std::stoul(a.at("--window")) : 256;
  std::ifstream in(Need(a, "--input"));
  if (!in) {
    std::fprintf(stderr, "bench_mqtt: cannot read %s\n", a.at("--input").c_str());
    return 66;
  }
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) if (!l.empty()) lines.push_back(std::move(l));

  mqtt::create_options copts(MQTTVERSION_3_1_1);
  copts.set_max_buffered_messages(static_cast<int>(window) * 2);
  mqtt::async_client client(uri, "bench-limit-pub", copts);
  auto conn = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(std::chrono::seconds(30)).finalize();
  client.connect(conn)->wait();
  std::vector<std::pair<std::string, int64_t>> times;
  times.reserve(lines.size());
  std::deque<mqtt::delivery_token_ptr> inflight;
  auto start = std::chrono::steady_clock::now();
  for (const std::string& l : lines) {
    while (inflight.size() >= window) {
      inflight.front()->wait();
      inflight.pop_front();
    }
    times.emplace_back(EnvelopeId(l), NowNs());
    inflight.push_back(client.publish(mqtt::make_message(topic, l, qos, false)));
  }
  for (auto& t : inflight) t->wait();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  client.disconnect()->wait();
  Report(times, Need(a, "--times"), secs);
  return 0;
}

// The same, with the gateway's own MQTT client (what the mqtt sink uses), `--batch` messages
// per PublishBatch() call: how much of the gap to the limit is the client itself.
int WirePub(const std::map<std::string, std::string>& a) {
  const std::string uri = Need(a, "--uri"), topic = Need(a, "--topic");
  const size_t window = a.count("--window") ? std::stoul(a.at("--window")) : 256;
  const size_t batch = a.count("--batch") ? std::stoul(a.at("--batch")) : 1024;
  std::ifstream in(Need(a, "--input"));
  std::vector<gw::connectors::mqtt::OutboundMessage> all;
  for (std::string l; std::getline(in, l);) if (!l.empty()) all.push_back({topic, std::move(l)});
  gw::connectors::mqtt::WireOptions o;
  bool tls = false;
  if (!gw::connectors::mqtt::ParseBrokerUri(uri, &o.host, &o.port, &tls).ok()) return 64;
  o.client_id = "bench-wire-pub";
  o.clean_session = true;
  gw::connectors::mqtt::WireClient client(o);
  gw::Status c = client.Connect();
  if (!c.ok()) {
    std::fprintf(stderr, "bench_mqtt: %s\n", c.ToString().c_str());
    return 69;
  }
  std::vector<std::pair<std::string, int64_t>> times;
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < all.size(); i += batch) {
    std::vector<gw::connectors::mqtt::OutboundMessage> part(all.begin() + i, all.begin() + std::min(all.size(), i + batch));
    int64_t ns = NowNs();
    for (const auto& m : part) times.emplace_back(EnvelopeId(m.payload), ns);
    std::vector<gw::Status> results;
    client.PublishBatch(part, 1, window, std::chrono::seconds(30), &results);
    for (const gw::Status& r : results) {
      if (!r.ok()) {
        std::fprintf(stderr, "bench_mqtt: %s\n", r.ToString().c_str());
        return 1;
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  client.Close();
  Report(times, a.count("--times") ? a.at("--times") : "", secs);
  return 0;
}

// One message as the subscriber saw it, and the summary both subscribers print.
struct Row {
  std::string id;
  int64_t ns;
  size_t bytes;
};

void WriteRows(const std::vector<Row>& rows, size_t unique, size_t duplicates, const std::string& path) {
  std::ofstream out(path);
  for (const Row& r : rows) out << r.id << '\t' << r.ns << '\t' << r.bytes << '\n';
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::printf("received %zu, unique %zu, duplicates %zu, cpu %.3f s\n", rows.size(), unique, duplicates, cpu);
}

class Recorder : public virtual mqtt::callback {
 public:
  Recorder(size_t expect, int delay_us) : expect_(expect), delay_us_(delay_us) { rows_.reserve(expect); }
  void message_arrived(mqtt::const_message_ptr m) override {
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
    int64_t ns = NowNs();
    const std::string& payload = m->get_payload_str();
    std::lock_guard<std::mutex> lock(mu_);
    std::string id = EnvelopeId(payload);
    rows_.push_back(Row{id, ns, payload.size()});
    if (!seen_.insert(id).second) ++duplicates_;
    last_ = std::chrono::steady_clock::now();
    if (seen_.size() >= expect_) cv_.notify_all();
  }
  // Waits until every expected id arrived, or nothing came for `idle`.
  void Wait(std::chrono::seconds idle) {
    std::unique_lock<std::mutex> lock(mu_);
    last_ = std::chrono::steady_clock::now();
    while (seen_.size() < expect_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (std::chrono::steady_clock::now() - last_ > idle) break;
    }
  }
  void Write(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    WriteRows(rows_, seen_.size(), duplicates_, path);
  }

 private:
  size_t expect_;
  int delay_us_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Row> rows_;
  std::unordered_set<std::string> seen_;
  size_t duplicates_ = 0;
  std::chrono::steady_clock::time_point last_;
};

int Sub(const std::map<std::string, std::string>& a) {
  const std::string uri = Need(a, "--uri"), filter = Need(a, "--filter");
  const size_t expect = std::stoul(Need(a, "--expect"));
  const int idle = a.count("--idle-timeout") ? std::stoi(a.at("--idle-timeout")) : 30;
  const std::string id = a.count("--client-id") ? a.at("--client-id") : "bench-sub";
  const bool persistent = a.count("--persistent") && a.at("--persistent") == "1";
  const int delay_us = a.count("--delay-us") ? std::stoi(a.at("--delay-us")) : 0;
  Recorder rec(expect, delay_us);  // outlives the client that calls it
  mqtt::async_client client(uri, id);
  client.set_callback(rec);
  auto conn = mqtt::connect_options_builder()
                  .clean_session(!persistent)
                  .automatic_reconnect(std::chrono::seconds(1), std::chrono::seconds(2))
                  .keep_alive_interval(std::chrono::seconds(5))
                  .finalize();
  client.connect(conn)->wait();
  client.subscribe(filter, 1)->wait();
  std::printf("ready\n");
  std::fflush(stdout);
  rec.Wait(std::chrono::seconds(idle));
  client.disconnect()->wait();
  rec.Write(Need(a, "--out"));
  return 0;
}

// How many received messages wiresub acknowledges with one write, at most.
constexpr size_t kAckEvery = 16;

int WireSub(const std::map<std::string, std::string>& a) {
  const std::string uri = Need(a, "--uri"), filter = Need(a, "--filter");
  const size_t expect = std::stoul(Need(a, "--expect"));
  const auto idle = std::chrono::seconds(a.count("--idle-timeout") ? std::stoi(a.at("--idle-timeout")) : 30);
  gw::connectors::mqtt::WireOptions o;
  bool tls = false;
  gw::Status parsed = gw::connectors::mqtt::ParseBrokerUri(uri, &o.host, &o.port, &tls);
  if (!parsed.ok() || tls) {
    std::fprintf(stderr, "bench_mqtt: %s: a tcp:// URI is needed\n", uri.c_str());
    return 64;
  }
  o.client_id = a.count("--client-id") ? a.at("--client-id") : "bench-sub";
  o.clean_session = true;
  gw::connectors::mqtt::WireClient client(o);
  gw::Status s = client.Connect();
  if (s.ok()) s = client.Subscribe({filter}, 1);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_mqtt: %s\n", s.ToString().c_str());
    return 69;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<Row> rows;
  rows.reserve(expect);
  std::unordered_set<std::string> seen;
  size_t duplicates = 0;
  std::vector<gw::connectors::mqtt::InboundMessage> unacked;
  auto last = std::chrono::steady_clock::now();
  while (seen.size() < expect) {
    gw::connectors::mqtt::InboundMessage m;
    // Waits only when nothing is left to acknowledge: what is already read is taken first.
    auto got = client.Receive(&m, unacked.empty() ? std::chrono::milliseconds(200) : std::chrono::milliseconds(0));
    if (!got.ok()) {
      std::fprintf(stderr, "bench_mqtt: %s\n", got.status().ToString().c_str());
      break;
    }
    if (*got) {
      rows.push_back(Row{EnvelopeId(m.payload), NowNs(), m.payload.size()});
      if (!seen.insert(rows.back().id).second) ++duplicates;
      m.payload.clear();
      unacked.push_back(std::move(m));
      last = std::chrono::steady_clock::now();
      if (unacked.size() < kAckEvery) continue;
    }
    if (!unacked.empty()) {
      s = client.Ack(unacked);
      unacked.clear();
      if (!s.ok()) {
        std::fprintf(stderr, "bench_mqtt: %s\n", s.ToString().c_str());
        break;
      }
    } else if (std::chrono::steady_clock::now() - last > idle) {
      break;
    }
  }
  if (!unacked.empty()) (void)client.Ack(unacked);
  client.Close();
  WriteRows(rows, seen.size(), duplicates, Need(a, "--out"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 64;
  }
  try {
    std::string cmd = argv[1];
    if (cmd == "pub") return Pub(Args(argc, argv));
    if (cmd == "wirepub") return WirePub(Args(argc, argv));
    if (cmd == "sub") return Sub(Args(argc, argv));
    if (cmd == "wiresub") return WireSub(Args(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mqtt: %s\n", e.what());
    return 1;
  }
  Usage();
  return 64;
}
