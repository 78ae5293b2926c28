// The pipeline's delivery policy with fake connectors and a real journal: order, retries,
// dead letters, and acking sources only after the commit.
#include "gw/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <mutex>

#include "tests/support/test_support.h"

namespace gw {
namespace {

Event Ev(const std::string& id) {
  Event e;
  e.id = id;
  e.type = "T";
  e.sender = Party{"UDMS", "D", ""};
  e.created_at = "2026-01-01T00:00:00+00:00";
  e.payload = "{}";
  return e;
}

struct FakeState {
  std::mutex mu;
  std::deque<SourceBatch> to_emit;
  std::vector<std::string> acked;           // units acked OK
  std::vector<std::string> delivered;       // event ids, in delivery order
  std::map<std::string, int> fail_times;    // transient failures before success
  std::set<std::string> refuse;             // permanent failures
  int deliver_calls = 0;
  std::vector<size_t> call_sizes;
  DeliveryHints hints;
  std::atomic<bool> wedge{false};
  std::atomic<int> deliver_sleep_ms{0};      // a slow far side
  int pipelined = 0;                        // > 0: the source is a PipelinedSource with this many in hand
  std::vector<std::string> source_log;      // "poll UNIT", "ack UNIT ok|failed"
  std::deque<SourceBatch> retry;            // batches acked with an error, offered again first
};

class FakeSource : public Source {
 public:
  explicit FakeSource(FakeState* s) : s_(s) {}
  Status Start(const std::string&) override { return Status::Ok(); }
  StatusOr<bool> Poll(SourceBatch* b, std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> l(s_->mu);
    std::deque<SourceBatch>& from = s_->retry.empty() ? s_->to_emit : s_->retry;
    if (from.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return false;
    }
    *b = from.front();
    from.pop_front();
    s_->source_log.push_back("poll " + b->unit);
    return true;
  }
  void Ack(const SourceBatch& b, const Status& st) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->source_log.push_back("ack " + b.unit + (st.ok() ? " ok" : " failed"));
    if (st.ok()) s_->acked.push_back(b.unit);
    else s_->retry.push_back(b);
  }
  void Stop() override {}

 private:
  FakeState* s_;
};

class FakePipelinedSource : public FakeSource, public PipelinedSource {
 public:
  FakePipelinedSource(FakeState* s, int depth) : FakeSource(s), depth_(depth) {}
  int MaxBatchesInHand() const override { return depth_; }

 private:
  int depth_;
};

class FakeSink : public Sink {
 public:
  explicit FakeSink(FakeState* s) : s_(s) {}
  Status Start() override { return Status::Ok(); }
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override {
    while (s_->wedge.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(s_->deliver_sleep_ms.load()));
    std::lock_guard<std::mutex> l(s_->mu);
    ++s_->deliver_calls;
    s_->call_sizes.push_back(events.size());
    // A sequential sink: after a transient failure it attempts nothing more in the batch.
    std::vector<Status> out;
    bool stalled = false;
    for (const Event* e : events) {
      if (stalled) {
        out.push_back(Unavailable("not attempted"));
      } else if (s_->refuse.count(e->id)) {
        out.push_back(InvalidArgument("refused " + e->id));
      } else if (s_->fail_times[e->id] > 0) {
        --s_->fail_times[e->id];
        out.push_back(Unavailable("try later"));
        stalled = true;
      } else {
        s_->delivered.push_back(e->id);
        out.push_back(Status::Ok());
      }
    }
    return out;
  }
  bool Connected() const override { return true; }
  DeliveryHints Hints() const override { return s_->hints; }
  void Stop() override {}

 private:
  FakeState* s_;
};

class PipelineTest : public ::testing::Test {
 protected:
  void Run(const std::string& sink_extra_key = "", const std::string& value = "", const std::string& route_extra = "") {
    auto cfg = ParseConfig(
        "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = D\nenvironment = SIT\n"
        "[journal]\npath = " + dir_ / "j.db" + "\n"
        "[source.in]\ntype = fake\n"
        "[sink.out]\ntype = fake\nretry_base_ms = 1\nretry_max_ms = 5\n" +
        (sink_extra_key.empty() ? "" : sink_extra_key + " = " + value + "\n") +
        "[route.r]\nfrom = in\nto = out\n" + route_extra, "test.ini");
    ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
    config_ = std::move(*cfg);
    ASSERT_TRUE(registry_.RegisterSource("fake", [this](const ConnectorContext&) -> StatusOr<std::unique_ptr<Source>> {
      if (state_.pipelined > 0) return std::unique_ptr<Source>(new FakePipelinedSource(&state_, state_.pipelined));
      return std::unique_ptr<Source>(new FakeSource(&state_));
    }).ok());
    ASSERT_TRUE(registry_.RegisterSink("fake", [this](const ConnectorContext&) -> StatusOr<std::unique_ptr<Sink>> {
      return std::unique_ptr<Sink>(new FakeSink(&state_));
    }).ok());
    JournalOptions jo = journal_options_;
    jo.path = config_.journal.path;
    auto j = Journal::Open(jo);
    ASSERT_TRUE(j.ok());
    journal_ = std::move(j.value());
    pipeline_ = std::make_unique<Pipeline>(config_, journal_.get(), registry_, &metrics_);
    ASSERT_TRUE(pipeline_->Build().ok());
    ASSERT_TRUE(pipeline_->Start().ok());
  }
  static SourceBatch Batch(const std::string& unit, std::vector<std::string> ids, const std::string& checkpoint = "") {
    SourceBatch b;
    b.unit = unit;
    b.checkpoint = checkpoint;
    for (auto& id : ids) b.events.push_back(Ev(id));
    return b;
  }
  // Emits event "eI" in batch "fI", with a payload of about 4 kB.
  void EmitPadded(int i) {
    SourceBatch b = Batch("f" + std::to_string(i), {"e" + std::to_string(i)});
    b.events[0].payload = "{\"pad\":\"" + std::string(4000, 'x') + "\"}";
    std::lock_guard<std::mutex> l(state_.mu);
    state_.to_emit.push_back(std::move(b));
  }
  void Emit(const std::string& unit, std::vector<std::string> ids, const std::string& checkpoint = "") {
    SourceBatch b = Batch(unit, std::move(ids), checkpoint);
    std::lock_guard<std::mutex> l(state_.mu);
    state_.to_emit.push_back(std::move(b));
  }
  // The sink's dead letters once there are `n` of them (fewer if they do not come in 10 s).
  std::vector<DeadLetter> WaitForDeadLetters(size_t n) {
    std::vector<DeadLetter> dl;
    gw::testing::WaitFor([&] {
      dl.clear();
      return journal_->ListDeadLetters("out", &dl).ok() && dl.size() == n;
    }, std::chrono::seconds(10));
    return dl;
  }
  void StopRefusing() {
    std::lock_guard<std::mutex> l(state_.mu);
    state_.refuse.clear();
  }
  size_t Delivered() {
    std::lock_guard<std::mutex> l(state_.mu);
    return state_.delivered.size();
  }

  gw::testing::TempDir dir_;
  JournalOptions journal_options_;  // the path is set by Run()
  GatewayConfig config_;
  Registry registry_;
  MetricsRegistry metrics_;
  FakeState state_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Pipeline> pipeline_;
};

TEST_F(PipelineTest, TransientFailuresAreRetriedInOrder) {
  state_.fail_times["b"] = 3;
  Run();
  Emit("f1", {"a", "b", "c"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 3; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(state_.acked, std::vector<std::string>{"f1"});
  std::vector<SinkQueueStats> stats;
  ASSERT_TRUE(journal_->QueueStats(&stats).ok());
  EXPECT_EQ(stats[0].pending, 0);
  EXPECT_EQ(stats[0].delivered, 3);
}

TEST_F(PipelineTest, RefusedEventIsDeadLetteredAndTheRestGoOn) {
  state_.refuse.insert("b");
  Run();
  Emit("f1", {"a", "b", "c"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 2; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "c"}));
  std::vector<DeadLetter> dl;
  ASSERT_TRUE(journal_->ListDeadLetters("out", &dl).ok());
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].event_id, "b");
  EXPECT_EQ(dl[0].reason, "INVALID_ARGUMENT: refused b");
  EXPECT_EQ(pipeline_->counters().dead_letters.load(), 1);
}

TEST_F(PipelineTest, MaxAttemptsTurnsEndlessFailureIntoADeadLetter) {
  state_.fail_times["a"] = 1000;
  Run("max_attempts", "3");
  Emit("f1", {"a", "b"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 1; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(state_.delivered, std::vector<std::string>{"b"});
  std::vector<DeadLetter> dl;
  ASSERT_TRUE(journal_->ListDeadLetters("out", &dl).ok());
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].reason, "max_attempts (3) reached: UNAVAILABLE: try later");
  EXPECT_EQ(dl[0].attempts, 3);
}

TEST_F(PipelineTest, RetriedDeadLetterIsDeliveredWhileRunning) {
  state_.refuse.insert("a");
  Run();
  Emit("f1", {"a"});
  std::vector<DeadLetter> dl = WaitForDeadLetters(1);
  ASSERT_EQ(dl.size(), 1u);
  StopRefusing();
  ASSERT_TRUE(journal_->RetryDeadLetter("out", dl[0].seq).ok());
  EXPECT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 1; }, std::chrono::seconds(15)));
  pipeline_->Stop(std::chrono::seconds(1));
}

TEST_F(PipelineTest, ADeadLetterRetriedWhileTheSinkIsBusyIsNotLeftBehindTheBacklog) {
  // The worker fetches after a cursor; a retried dead letter sits behind it. It must be found
  // by the periodic look from the start, not only once the whole queue has drained.
  state_.refuse.insert("a");
  state_.hints.max_batch = 1;
  Run();
  Emit("f0", {"a"});
  std::vector<DeadLetter> dl = WaitForDeadLetters(1);
  ASSERT_EQ(dl.size(), 1u);
  state_.deliver_sleep_ms = 20;  // 300 events, one per call: at least 6 s of work
  std::vector<std::string> backlog;
  for (int i = 0; i < 300; ++i) backlog.push_back("b" + std::to_string(i));
  Emit("f1", backlog);
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() >= 5; }, std::chrono::seconds(10)));
  StopRefusing();
  ASSERT_TRUE(journal_->RetryDeadLetter("out", dl[0].seq).ok());
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return std::find(state_.delivered.begin(), state_.delivered.end(), "a") != state_.delivered.end();
  }, std::chrono::seconds(20)));
  size_t at = 0;
  {
    std::lock_guard<std::mutex> l(state_.mu);
    at = std::find(state_.delivered.begin(), state_.delivered.end(), "a") - state_.delivered.begin();
  }
  state_.deliver_sleep_ms = 0;
  pipeline_->Stop(std::chrono::seconds(5));
  EXPECT_LT(at, 250u) << "delivered only after the backlog";
}

TEST_F(PipelineTest, DuplicateEventsFromASecondDropAreNotDeliveredAgain) {
  Run();
  Emit("f1", {"a", "b"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 2; }, std::chrono::seconds(10)));
  Emit("f1-again", {"a", "b", "c"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 3; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(pipeline_->counters().events_duplicate.load(), 2);
}

TEST_F(PipelineTest, EventNotDeliveredInTimeIsDeadLetteredAsExpired) {
  state_.fail_times["a"] = 1000000;
  Run("", "", "expiry_s = 1\n");
  Emit("f1", {"a"});
  std::vector<DeadLetter> dl = WaitForDeadLetters(1);
  ASSERT_EQ(dl.size(), 1u);
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(dl[0].reason.rfind("expired: not delivered by ", 0), 0u) << dl[0].reason;
  EXPECT_TRUE(state_.delivered.empty()) << "never delivered stale";
}

TEST_F(PipelineTest, StopDrainsPendingDeliveries) {
  Run();
  Emit("f1", {"a", "b", "c"});
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return state_.acked.size() == 1;
  }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(5));
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(PipelineTest, LingerGathersABatchBeforeDelivering) {
  state_.hints.max_batch = 5;
  state_.hints.linger = std::chrono::seconds(3);
  Run();
  Emit("f1", {"a", "b", "c"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Emit("f2", {"d", "e", "f", "g"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 7; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  ASSERT_GE(state_.call_sizes.size(), 1u);
  EXPECT_EQ(state_.call_sizes[0], 5u) << "the first 3 waited for more, up to max_batch";
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"}));
}

TEST_F(PipelineTest, LingerEndsWhenTheOldestEventIsOldEnough) {
  state_.hints.max_batch = 100;
  state_.hints.linger = std::chrono::milliseconds(300);
  Run();
  Emit("f1", {"a", "b"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 2; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(state_.call_sizes, std::vector<size_t>{2});
}

TEST_F(PipelineTest, AWedgedSinkMakesThePipelineUnhealthy) {
  Run();
  std::string why;
  EXPECT_TRUE(pipeline_->Healthy(std::chrono::seconds(1), &why)) << why;
  state_.wedge = true;
  Emit("f1", {"a"});
  ASSERT_TRUE(gw::testing::WaitFor([&] { return !pipeline_->Healthy(std::chrono::seconds(1), &why); }, std::chrono::seconds(10)));
  EXPECT_EQ(why.rfind("sink out has made no progress for ", 0), 0u) << why;
  state_.wedge = false;
  ASSERT_TRUE(gw::testing::WaitFor([&] { return pipeline_->Healthy(std::chrono::seconds(1), &why); }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
}

TEST_F(PipelineTest, APipelinedSourceIsPolledWhileItsLastBatchCommits) {
  state_.pipelined = 2;
  Emit("f1", {"a"}, "cp1");
  Emit("f2", {"b"}, "cp2");
  Emit("f3", {"c"}, "cp3");
  Run();
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 3; }, std::chrono::seconds(10)));
  pipeline_->Stop(std::chrono::seconds(1));
  // The next batch is taken before the last one's verdict, never more than two are in hand,
  // and the verdicts come in order. (Exactly when each verdict comes depends on the commits.)
  const std::vector<std::string>& log = state_.source_log;
  auto at = [&](const char* what) { return std::find(log.begin(), log.end(), what) - log.begin(); };
  ASSERT_EQ(log.size(), 6u) << ::testing::PrintToString(log);
  EXPECT_LT(at("poll f2"), at("ack f1 ok")) << ::testing::PrintToString(log);
  EXPECT_LT(at("ack f1 ok"), at("ack f2 ok"));
  EXPECT_LT(at("ack f2 ok"), at("ack f3 ok"));
  int in_hand = 0;
  for (const std::string& l : log) {
    in_hand += l.rfind("poll ", 0) == 0 ? 1 : -1;
    EXPECT_LE(in_hand, 2) << ::testing::PrintToString(log);
  }
  EXPECT_EQ(*journal_->GetCheckpoint("in"), "cp3");
}

TEST_F(PipelineTest, NothingIsCommittedAfterAPipelinedBatchThatFailed) {
  state_.pipelined = 3;
  Run();
  // Another connection holds the write lock: f1's commit fails once the busy timeout runs out.
  auto other = Db::Open(config_.journal.path, false, false);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN EXCLUSIVE").ok());
  {
    std::lock_guard<std::mutex> l(state_.mu);  // both at once: f2 is there when f1 is taken
    state_.retry.push_back(Batch("f1", {"a"}, "cp1"));
    state_.retry.push_back(Batch("f2", {"b"}, "cp2"));
    state_.retry.push_back(Batch("f3", {"c"}, "cp3"));
  }
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return std::find(state_.source_log.begin(), state_.source_log.end(), "ack f3 failed") != state_.source_log.end();
  }, std::chrono::seconds(20)));
  // f2 and f3 were in hand while f1 committed, and were handed back without being committed.
  EXPECT_EQ(*journal_->CountEvents(), 0);
  ASSERT_TRUE((*other)->Exec("ROLLBACK").ok());
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 3; }, std::chrono::seconds(20)));
  pipeline_->Stop(std::chrono::seconds(1));
  std::vector<std::string> log(state_.source_log.begin(), state_.source_log.begin() + 6);
  EXPECT_EQ(log, (std::vector<std::string>{"poll f1", "poll f2", "poll f3", "ack f1 failed", "ack f2 failed",
                                           "ack f3 failed"}));
  EXPECT_EQ(state_.acked, (std::vector<std::string>{"f1", "f2", "f3"}));
  EXPECT_EQ(state_.delivered, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*journal_->GetCheckpoint("in"), "cp3");
}

// Flow control (Journal::SinksBehind()): a sink that takes events but has fallen behind gets
// the events it comes to from memory, because the source waits for it instead of running so
// far ahead that the newest are dropped from memory and read back later.
TEST_F(PipelineTest, ASourceWaitsForASinkThatIsTakingEventsButBehind) {
  journal_options_.recent_bytes = 40000;  // about eight 4 kB events
  journal_options_.handoff_patience = std::chrono::seconds(5);
  state_.hints.max_batch = 1;
  state_.deliver_sleep_ms = 50;  // far slower than a commit, even on a loaded machine
  Run();
  // One first, so that the sink has taken events when the burst comes: until then there is no
  // sink to wait for.
  EmitPadded(0);
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 1; }, std::chrono::seconds(10)));
  for (int i = 1; i < 31; ++i) EmitPadded(i);
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 31; }, std::chrono::seconds(30)));
  pipeline_->Stop(std::chrono::seconds(1));
  EXPECT_EQ(journal_->EventsReadBack(), 0) << "the source ran ahead of the sink by more than the memory";
  EXPECT_EQ(journal_->EventsFromMemory(), 31);
  for (int i = 0; i < 31; ++i) EXPECT_EQ(state_.delivered[static_cast<size_t>(i)], "e" + std::to_string(i));
  EXPECT_GT(metrics_.Value("mhhs_gateway_source_waited_for_sinks_seconds_total", {{"source", "in"}}), 0.1)
      << "about 25 events held back for about 50 ms each";
}

// A sink far slower than the source, taking an event every 3 s, well within the patience: the
// source still takes a batch at least every second (Pipeline::kMaxHold), so that one that must
// be polled to stay connected is. Held back until the sink caught up, the last three of eight
// would come in after about 9 s; with the limit, after about 3.5.
TEST_F(PipelineTest, ASourceHeldBackForASlowSinkStillTakesABatchEverySecond) {
  journal_options_.recent_bytes = 40000;
  journal_options_.handoff_patience = std::chrono::seconds(10);
  state_.hints.max_batch = 1;
  state_.deliver_sleep_ms = 3000;
  Run();
  EmitPadded(0);
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return state_.acked.size() == 1;
  }, std::chrono::seconds(10)));
  for (int i = 1; i < 9; ++i) EmitPadded(i);
  EXPECT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return state_.acked.size() == 9;
  }, std::chrono::seconds(7))) << "the source was held back for longer than a second at a time";
  state_.deliver_sleep_ms = 0;
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 9; }, std::chrono::seconds(30)));
  pipeline_->Stop(std::chrono::seconds(1));
}

// ... and a sink that has stopped taking events holds the source back no longer than the
// patience: store-and-forward takes in everything while the far side is away.
TEST_F(PipelineTest, ASinkThatStopsTakingEventsHoldsNoSourceBack) {
  journal_options_.recent_bytes = 40000;
  journal_options_.handoff_patience = std::chrono::milliseconds(200);
  state_.hints.max_batch = 1;
  state_.wedge = true;  // the sink takes the first event and then hangs in Deliver()
  for (int i = 0; i < 30; ++i) EmitPadded(i);
  Run();
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(state_.mu);
    return state_.acked.size() == 30;
  }, std::chrono::seconds(20))) << "the source waited for a sink that was not taking events";
  EXPECT_EQ(Delivered(), 0u);
  state_.wedge = false;
  ASSERT_TRUE(gw::testing::WaitFor([&] { return Delivered() == 30; }, std::chrono::seconds(20)));
  pipeline_->Stop(std::chrono::seconds(1));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(state_.delivered[static_cast<size_t>(i)], "e" + std::to_string(i));
}

TEST(RegistryTest, UnknownTypeListsTheKnownOnes) {
  Registry r;
  ASSERT_TRUE(r.RegisterSink("mqtt", [](const ConnectorContext&) -> StatusOr<std::unique_ptr<Sink>> {
    return InvalidArgument("unused");
  }).ok());
  EXPECT_EQ(r.RegisterSink("mqtt", nullptr).code(), StatusCode::kAlreadyExists);
  ConnectorConfig c;
  c.name = "x";
  c.type = "kafka";
  c.section = ConfigSection("gw.ini", "sink.x", 4);
  c.section.Add("type", "kafka", 5);
  GatewayInfo info;
  StderrLogger log("t");
  auto s = r.CreateSink(c, info, log);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "gw.ini:5: [sink.x] type: no sink connector of type \"kafka\" (known: mqtt)");
}

TEST(BackoffTest, FullJitterStaysWithinTheCap) {
  for (int attempt = 1; attempt < 40; ++attempt) {
    auto d = JitteredBackoff(attempt, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), std::min<int64_t>(5000, 100LL << std::min(attempt - 1, 30)));
  }
}

}  // namespace
}  // namespace gw
