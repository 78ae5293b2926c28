// journal_bench: the journal's append path against the raw limit of the same SQLite, in one run.
//
//  raw      batched INSERTs of the same rows (event and one delivery row each, one audit entry
//           per batch listing its events), synchronous=FULL, WAL, one transaction per 1000
//           events: what SQLite itself allows on this disk;
//  append   Journal::Append of the same events, 1000 per call (one call per file);
//  append4  four threads appending 100-event batches at once (group commit at work).
// Prints each rate and the ratios append/raw and append4/raw. Target: append/raw >= 0.5.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <thread>

#include "gw/journal.h"
#include "tests/support/test_support.h"

namespace {

constexpr int kEvents = 20000;
constexpr int kBatch = 1000;

std::vector<gw::Event> MakeEvents(const std::string& prefix) {
  std::vector<gw::Event> out;
  out.reserve(kEvents);
  for (int i = 0; i < kEvents; ++i) {
    gw::Event e;
    e.id = prefix + "-" + std::to_string(i);
    e.type = "D0010002";
    e.sender = gw::Party{"UDMS", "D", ""};
    e.recipients = {gw::Party{"MRCY", "X", ""}};
    e.created_at = "2026-03-02T15:31:51+00:00";
    e.correlation_id = "UDMS-0000475656";
    e.payload = R"({"mpanCore":")" + std::to_string(1200023305967LL + i) +
                R"(","bscValidationStatus":"V","meters":[{"meterId":"F75A 00802","readingType":"D","registers":[{"meterRegisterId":"S","readingDateTime":"2016-02-22T00:00:00","registerReading":"56311.0","mdResetDateTime":null,"numberOfMdResets":null,"readingFlag":"T","readingMethod":"N"}]}]})";
    e.origin = "inbox:D0010_UDMS_MRCY_0000475656.uff:" + std::to_string(2 + i * 3);
    out.push_back(std::move(e));
  }
  return out;
}

std::map<std::string, double> g_rates;

void Check(int rc, sqlite3* db) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
    std::abort();
  }
}

void BM_RawSqliteInsert(benchmark::State& state) {
  int round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    gw::testing::TempDir dir;
    std::vector<gw::Event> events = MakeEvents("raw" + std::to_string(round++));
    // The journal's schema, so both write the same rows and indexes.
    {
      gw::JournalOptions o;
      o.path = dir / "raw.db";
      auto j = gw::Journal::Open(o);
      if (!j.ok()) std::abort();
    }
    sqlite3* db = nullptr;
    Check(sqlite3_open((dir / "raw.db").c_str(), &db), db);
    Check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; INSERT INTO sinks(id,name) VALUES(1,'k')", nullptr, nullptr, nullptr), db);
    sqlite3_stmt* ins = nullptr;
    sqlite3_stmt* del = nullptr;
    sqlite3_stmt* aud = nullptr;
    Check(sqlite3_prepare_v2(db, "INSERT INTO audit(id,at,what,event_id,subject,detail,prev,hash) VALUES(?,1,'accepted',?,'inbox',?,?,?)",
                             -1, &aud, nullptr), db);
    const std::string hash(64, 'a');
    Check(sqlite3_prepare_v2(db,
                             "INSERT INTO events(id,type,event_code,sender_mpid,sender_role,sender_dip_id,recipients,"
                             "created_at,correlation_id,payload,signature,source,origin,accepted_at) "
                             "VALUES(?,?,'',?,?,'',?,?,?,?,'','inbox',?,?)", -1, &ins, nullptr), db);
    Check(sqlite3_prepare_v2(db, "INSERT INTO deliveries(seq,sink_id,updated_at,expires_at) VALUES(?,1,?,0)", -1, &del, nullptr), db);
    std::string listed;  // the batch's audit detail: [["id","origin"],...]
    state.ResumeTiming();
    for (int i = 0; i < kEvents; ++i) {
      if (i % kBatch == 0) {
        Check(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), db);
        listed = "[";
      }
      const gw::Event& e = events[i];
      sqlite3_reset(ins);
      sqlite3_bind_text(ins, 1, e.id.data(), static_cast<int>(e.id.size()), SQLITE_STATIC);
      sqlite3_bind_text(ins, 2, e.type.data(), static_cast<int>(e.type.size()), SQLITE_STATIC);
      sqlite3_bind_text(ins, 3, e.sender.mpid.data(), 4, SQLITE_STATIC);
      sqlite3_bind_text(ins, 4, e.sender.role.data(), 1, SQLITE_STATIC);
      sqlite3_bind_text(ins, 5, "X:MRCY:", 7, SQLITE_STATIC);
      sqlite3_bind_text(ins, 6, e.created_at.data(), static_cast<int>(e.created_at.size()), SQLITE_STATIC);
      sqlite3_bind_text(ins, 7, e.correlation_id.data(), static_cast<int>(e.correlation_id.size()), SQLITE_STATIC);
      sqlite3_bind_blob(ins, 8, e.payload.data(), static_cast<int>(e.payload.size()), SQLITE_STATIC);
      sqlite3_bind_text(ins, 9, e.origin.data(), static_cast<int>(e.origin.size()), SQLITE_STATIC);
      sqlite3_bind_int64(ins, 10, 1);
      Check(sqlite3_step(ins), db);
      sqlite3_reset(del);
      sqlite3_bind_int64(del, 1, sqlite3_last_insert_rowid(db));
      sqlite3_bind_int64(del, 2, 1);
      Check(sqlite3_step(del), db);
      listed.append(listed.size() > 1 ? ",[\"" : "[\"").append(e.id).append("\",\"").append(e.origin).append("\"]");
      if (i % kBatch == kBatch - 1) {
        listed.push_back(']');
        sqlite3_reset(aud);
        sqlite3_bind_int64(aud, 1, i / kBatch + 1);
        sqlite3_bind_text(aud, 2, "", 0, SQLITE_STATIC);
        sqlite3_bind_text(aud, 3, listed.data(), static_cast<int>(listed.size()), SQLITE_STATIC);
        sqlite3_bind_text(aud, 4, hash.data(), 64, SQLITE_STATIC);
        sqlite3_bind_text(aud, 5, hash.data(), 64, SQLITE_STATIC);
        Check(sqlite3_step(aud), db);
        Check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db);
      }
    }
    state.PauseTiming();
    sqlite3_finalize(ins);
    sqlite3_finalize(del);
    sqlite3_finalize(aud);
    sqlite3_close(db);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kEvents);
}

void BM_JournalAppend(benchmark::State& state) {
  int round = 0;
  const int threads = static_cast<int>(state.range(0));
  const int batch = threads == 1 ? kBatch : 100;
  for (auto _ : state) {
    state.PauseTiming();
    gw::testing::TempDir dir;
    std::vector<gw::Event> events = MakeEvents("j" + std::to_string(round++));
    gw::JournalOptions o;
    o.path = dir / "journal.db";
    auto j = gw::Journal::Open(o);
    if (!j.ok()) std::abort();
    std::vector<gw::DeliveryTarget> targets{gw::DeliveryTarget{"k", 0}};
    state.ResumeTiming();
    std::atomic<int> next{0};
    auto work = [&] {
      for (;;) {
        int start = next.fetch_add(batch);
        if (start >= kEvents) return;
        std::vector<gw::Event> chunk(events.begin() + start, events.begin() + std::min(kEvents, start + batch));
        gw::Status s = (*j)->Append("inbox", chunk, targets, "file " + std::to_string(start), nullptr);
        if (!s.ok()) std::abort();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work);
    for (auto& t : pool) t.join();
    state.PauseTiming();
    j->reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kEvents);
}

BENCHMARK(BM_RawSqliteInsert)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
BENCHMARK(BM_JournalAppend)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
BENCHMARK(BM_JournalAppend)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

// Captures each benchmark's items/s so the ratios can be printed in the same run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) g_rates[r.benchmark_name()] = it->second.value;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double raw = g_rates["BM_RawSqliteInsert/iterations:5/real_time"];
  double one = g_rates["BM_JournalAppend/1/iterations:5/real_time"];
  double four = g_rates["BM_JournalAppend/4/iterations:5/real_time"];
  if (raw <= 0) {
    for (const auto& kv : g_rates) std::printf("%s %.0f\n", kv.first.c_str(), kv.second);
    return 1;
  }
  std::printf("\nraw limit:          %9.0f events/s (SQLite, synchronous=FULL, 1000 per transaction)\n", raw);
  std::printf("journal append:     %9.0f events/s (1000 per call)   ratio %.2f\n", one, one / raw);
  std::printf("journal append x4:  %9.0f events/s (100 per call, 4 threads, group commit)   ratio %.2f\n", four, four / raw);
  std::printf("journal_bench: append/raw %.2f (target >= 0.5)\n", one / raw);
  return 0;
}
