// dtn_bench: DTN decoding speed against the speed of reading the same bytes, in one run.
//
// Generates a D0036 corpus (default 256 MB: MPANs x settlement days x 48 periods) into a
// temporary file, then times, best of three:
//   read     map the file and touch every byte (count newlines): the floor;
//   validate decode + validate every record against the flow catalogue (no events kept);
//   if021    decode + validate + map to IF-021 + serialize each envelope to JSON.
// Prints MB/s, events/s and the ratios to `read`. Targets (one core): validate >= 200 MB/s,
// IF-021 events serialized >= 30 000/s.
// With --stream-gb N it instead streams an N GB file through the file source (validate, then
// bounded batches) and reports peak resident memory against the process's baseline.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "connectors/file/file_source.h"
#include "gw/adapters/dtn_events.h"
#include "gw/fs.h"
#include "gw/log.h"
#include "tests/support/test_support.h"

using Clock = std::chrono::steady_clock;

namespace {

long RssKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field) + 1));
  }
  return -1;
}

// Writes a D0036 file of about `bytes`; returns the number of MPAN-days (IF-021 events).
int64_t WriteCorpus(const std::string& path, int64_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937 rng(36);
  out << "ZHV|0000000036|D0036001|C|UDMS|X|MRCY|20260716060000||||OPER|\n";
  int64_t written = 64, records = 0, top = 0, events = 0;
  static const char* kDist[] = {"10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23"};
  char line[64];
  for (int64_t m = 0; written < bytes; ++m) {
    int n = std::snprintf(line, sizeof line, "101|%s%011lld|AI|MRCY|\n", kDist[m % 14], static_cast<long long>(m));
    out.write(line, n);
    written += n;
    ++records;
    ++top;
    for (int d = 1; d <= 7 && written < bytes; ++d) {
      n = std::snprintf(line, sizeof line, "102|202607%02d|\n", 10 + d);
      out.write(line, n);
      written += n;
      ++records;
      ++events;
      for (int p = 0; p < 48; ++p) {
        unsigned v = rng() % 5000;
        n = std::snprintf(line, sizeof line, "103|%c|%u.%03u|\n", (v % 20) ? 'A' : 'E', v / 1000, v % 1000);
        out.write(line, n);
        written += n;
        ++records;
      }
    }
  }
  out << "ZPT|0000000036|" << records << "||" << top << "|20260716060100|\n";
  return events;
}

template <typename F>
double BestOf3(F f) {
  double best = 1e99;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

gw::GatewayInfo Participant() {
  gw::GatewayInfo g;
  g.participant_mpid = "MRCY";
  g.environment = "SIT";
  g.dip_id = "1009012345";
  g.dip.role = "SDS";
  g.dip.default_distributor_dip_id = "2509012345";
  g.flow_dir = gw::testing::SourceDir() + "/config/flows";
  return g;
}

void Stream(double gb) {
  gw::testing::TempDir dir;
  std::string inbox = dir / "inbox";
  gw::MakeDirs(inbox).ok();
  std::printf("\nwriting a %.1f GB D0036 file...\n", gb);
  int64_t events = WriteCorpus(inbox + "/big.uff", static_cast<int64_t>(gb * 1e9));
  long base = RssKb("VmRSS:");
  std::printf("after writing: VmRSS %ld kB, VmHWM %ld kB\n", base, RssKb("VmHWM:"));
  gw::ConfigSection sec("bench.ini", "source.inbox", 1);
  sec.Add("directory", inbox, 2);
  sec.Add("archive", dir / "archive", 3);
  sec.Add("rejected", dir / "rejected", 4);
  sec.Add("settle_ms", "0", 5);
  gw::GatewayInfo g = Participant();
  gw::StderrLogger log("bench");
  gw::SetLogLevel(gw::LogLevel::kWarning);
  auto src = gw::connectors::file::FileSource::Create(gw::ConnectorContext{"inbox", sec, g, log});
  if (!src.ok() || !(*src)->Start("").ok()) std::exit(1);
  auto t0 = Clock::now();
  int64_t got = 0;
  for (;;) {
    gw::SourceBatch b;
    auto r = (*src)->Poll(&b, std::chrono::seconds(5));
    if (!r.ok()) std::exit(1);
    if (!*r) continue;
    got += static_cast<int64_t>(b.events.size());
    (*src)->Ack(b, gw::Status::Ok());
    if (b.last) break;
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  long hwm = RssKb("VmHWM:");
  std::printf("streamed %.1f GB: %lld of %lld events in %.1f s (validate pass + batches of 5000)\n", gb,
              static_cast<long long>(got), static_cast<long long>(events), s);
  std::printf("resident memory: %ld kB before, peak %ld kB: the file cost %ld kB (%.2f%% of its size)\n", base, hwm,
              hwm - base, 100.0 * (hwm - base) * 1024 / (gb * 1e9));
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mb = 256;
  double stream_gb = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--mb") == 0) mb = std::stoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--stream-gb") == 0) stream_gb = std::stod(argv[i + 1]);
  }
  if (stream_gb > 0) {
    // Its own run, so that the peak resident memory is the stream's alone.
    Stream(stream_gb);
    return 0;
  }
  gw::testing::TempDir dir;
  std::string path = dir / "corpus.uff";
  std::printf("generating %lld MB of D0036...\n", static_cast<long long>(mb));
  int64_t units = WriteCorpus(path, mb * 1000000);
  auto map = gw::MappedFile::Open(path);
  if (!map.ok()) return 1;
  std::string_view content = map->view();
  const double size_mb = content.size() / 1e6;

  size_t lines = 0;
  double t_read = BestOf3([&] { lines = static_cast<size_t>(std::count(content.begin(), content.end(), '\n')); });
  auto cat = gw::adapters::FlowCatalogue::LoadDirectory(gw::testing::SourceDir() + "/config/flows");
  if (!cat.ok()) return 1;
  gw::adapters::DtnDecoder decoder(*cat);
  gw::adapters::DtnResult vr;
  double t_validate = BestOf3([&] { vr = decoder.Decode(content, nullptr); });
  if (!vr.ok()) {
    std::fprintf(stderr, "corpus invalid: line %d: %s\n", vr.errors[0].line, vr.errors[0].message.c_str());
    return 1;
  }
  gw::GatewayInfo g = Participant();
  gw::adapters::DtnEventOptions opts;
  opts.gateway = &g;
  int64_t events = 0, json_bytes = 0;
  std::string envelope;
  double t_map = BestOf3([&] {
    events = json_bytes = 0;
    gw::adapters::DtnResult r = gw::adapters::DecodeDtnEvents(decoder, content, "bench", opts, [&](gw::Event&& e) {
      envelope.clear();
      gw::AppendEnvelopeJson(e, &envelope);
      json_bytes += static_cast<int64_t>(envelope.size());
      ++events;
    });
    if (!r.ok()) std::exit(1);
  });

  std::printf("\ncorpus: %.0f MB, %zu lines, %lld MPAN-days\n", size_mb, lines, static_cast<long long>(units));
  std::printf("%-34s %9.0f MB/s\n", "read the bytes (floor)", size_mb / t_read);
  std::printf("%-34s %9.0f MB/s  %9.0f records/s  ratio to read %.2f  (target >= 200 MB/s)\n", "decode + validate",
              size_mb / t_validate, vr.records / t_validate, t_read / t_validate);
  std::printf("%-34s %9.0f MB/s  %9.0f events/s   ratio to read %.2f  (target >= 30000 events/s)\n",
              "decode + validate + IF-021 JSON", size_mb / t_map, events / t_map, t_read / t_map);
  std::printf("IF-021 envelopes: %lld, %.0f MB of JSON, %.0f bytes each\n", static_cast<long long>(events), json_bytes / 1e6,
              static_cast<double>(json_bytes) / events);
  std::printf("dtn_bench: validate %.0f MB/s, IF-021 %.0f events/s\n", size_mb / t_validate, events / t_map);
  return 0;
}
