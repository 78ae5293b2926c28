#include "gw/journal.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/test_support.h"

namespace gw {
namespace {

Event MakeEvent(const std::string& id, const std::string& payload = R"({"n":1})") {
  Event e;
  e.id = id;
  e.type = "D0010002";
  e.sender = Party{"UDMS", "D", ""};
  e.recipients = {Party{"MRCY", "X", ""}, Party{"BGAS", "X", "1234567890"}};
  e.created_at = "2026-01-01T00:00:00+00:00";
  e.correlation_id = "UDMS-1";
  e.payload = payload;
  e.origin = "inbox:f.uff:2";
  return e;
}

class JournalTest : public ::testing::Test {
 protected:
  std::unique_ptr<Journal> Open() {
    auto j = Journal::Open(JournalOptions{dir_ / "journal.db", false});
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return std::move(j.value());
  }
  gw::testing::TempDir dir_;
};

TEST_F(JournalTest, AppendedEventsComeBackPendingInOrderForEachSink) {
  auto j = Open();
  AppendResult r;
  ASSERT_TRUE(j->Append("inbox", {MakeEvent("a"), MakeEvent("b"), MakeEvent("c")}, {"mqtt", "files"}, "cp1", &r).ok());
  EXPECT_EQ(r.appended, 3);
  EXPECT_EQ(r.duplicates, 0);
  for (const char* sink : {"mqtt", "files"}) {
    std::vector<PendingDelivery> p;
    ASSERT_TRUE(j->FetchPending(sink, 0, 10, &p).ok());
    ASSERT_EQ(p.size(), 3u) << sink;
    EXPECT_EQ(p[0].event.id, "a");
    EXPECT_EQ(p[2].event.id, "c");
    EXPECT_LT(p[0].seq, p[1].seq);
    EXPECT_LT(p[1].seq, p[2].seq);
  }
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("mqtt", 0, 10, &p).ok());
  const Event& e = p[0].event;
  Event want = MakeEvent("a");
  EXPECT_EQ(e.type, want.type);
  EXPECT_EQ(e.sender, want.sender);
  EXPECT_EQ(e.recipients, want.recipients);
  EXPECT_EQ(e.created_at, want.created_at);
  EXPECT_EQ(e.correlation_id, want.correlation_id);
  EXPECT_EQ(e.payload, want.payload);
  EXPECT_EQ(e.origin, want.origin);
  EXPECT_EQ(*j->GetCheckpoint("inbox"), "cp1");
  EXPECT_EQ(*j->GetCheckpoint("other"), "");
}

TEST_F(JournalTest, FetchHonoursCursorAndLimit) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b"), MakeEvent("c")}, {"k"}, "", nullptr).ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 2, &p).ok());
  ASSERT_EQ(p.size(), 2u);
  std::vector<PendingDelivery> rest;
  ASSERT_TRUE(j->FetchPending("k", p.back().seq, 10, &rest).ok());
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].event.id, "c");
}

TEST_F(JournalTest, DeliveredEventsAreNoLongerPendingAndSurviveReopen) {
  {
    auto j = Open();
    ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, {"k"}, "", nullptr).ok());
    std::vector<PendingDelivery> p;
    ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
    j->MarkDelivered("k", {p[0].seq});
    ASSERT_TRUE(j->Flush().ok());
  }
  auto j = Open();
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].event.id, "b");
  std::vector<SinkQueueStats> stats;
  ASSERT_TRUE(j->QueueStats(&stats).ok());
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].pending, 1);
  EXPECT_EQ(stats[0].delivered, 1);
  EXPECT_GT(stats[0].oldest_pending_ms, 0);
}

TEST_F(JournalTest, DuplicateIdsAreNotQueuedAgain) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, {"k"}, "", nullptr).ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  j->MarkDelivered("k", {p[0].seq});
  AppendResult r;
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, {"k"}, "", &r).ok());
  EXPECT_EQ(r.appended, 1);
  EXPECT_EQ(r.duplicates, 1);
  p.clear();
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].event.id, "b");
  EXPECT_EQ(*j->CountEvents(), 2);
}

TEST_F(JournalTest, DeadLettersCanBeListedRetriedAndDropped) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, {"k"}, "", nullptr).ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  j->MarkDead("k", p[0].seq, "INVALID_ARGUMENT: too big");
  j->MarkDead("k", p[1].seq, "INVALID_ARGUMENT: bad");
  ASSERT_TRUE(j->Flush().ok());
  std::vector<DeadLetter> dl;
  ASSERT_TRUE(j->ListDeadLetters("", &dl).ok());
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(dl[0].event_id, "a");
  EXPECT_EQ(dl[0].reason, "INVALID_ARGUMENT: too big");
  EXPECT_EQ(dl[0].attempts, 1);
  std::vector<PendingDelivery> none;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &none).ok());
  EXPECT_TRUE(none.empty());

  ASSERT_TRUE(j->RetryDeadLetter("k", dl[0].seq).ok());
  ASSERT_TRUE(j->DropDeadLetter("", dl[1].seq).ok());
  EXPECT_EQ(j->DropDeadLetter("", dl[1].seq).code(), StatusCode::kNotFound);
  std::vector<PendingDelivery> again;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &again).ok());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].event.id, "a");
  dl.clear();
  ASSERT_TRUE(j->ListDeadLetters("k", &dl).ok());
  EXPECT_TRUE(dl.empty());
}

TEST_F(JournalTest, AttemptsAreCountedForTransientFailures) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, {"k"}, "", nullptr).ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  j->MarkAttempted("k", {p[0].seq}, "UNAVAILABLE: broker down");
  j->MarkAttempted("k", {p[0].seq}, "UNAVAILABLE: broker down");
  ASSERT_TRUE(j->Flush().ok());
  p.clear();
  ASSERT_TRUE(j->FetchPending("k", 0, 10, &p).ok());
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].attempts, 2);
}

TEST_F(JournalTest, ConcurrentAppendsAreAllStored) {
  auto j = Open();
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = j->Append("s" + std::to_string(t), {MakeEvent(std::to_string(t) + "-" + std::to_string(i))}, {"k"},
                             std::to_string(i), nullptr);
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(*j->CountEvents(), kThreads * kPerThread);
  std::vector<PendingDelivery> p;
  ASSERT_TRUE(j->FetchPending("k", 0, 100000, &p).ok());
  EXPECT_EQ(p.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(*j->GetCheckpoint("s" + std::to_string(t)), std::to_string(kPerThread - 1));
  EXPECT_TRUE(j->IntegrityCheck().ok());
}

TEST_F(JournalTest, ReadOnlyOpenRefusesAFileThatIsNotAJournal) {
  gw::testing::WriteFile(dir_ / "other.db", "");
  auto j = Journal::Open(JournalOptions{dir_ / "other.db", true});
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("not a gateway journal"), std::string::npos);
}

TEST_F(JournalTest, CorruptFileIsRefusedAsDataLoss) {
  gw::testing::WriteFile(dir_ / "bad.db", std::string(8192, 'x'));
  auto j = Journal::Open(JournalOptions{dir_ / "bad.db", false});
  ASSERT_FALSE(j.ok());
  EXPECT_TRUE(j.status().code() == StatusCode::kDataLoss || j.status().code() == StatusCode::kInternal)
      << j.status().ToString();
}

}  // namespace
}  // namespace gw
