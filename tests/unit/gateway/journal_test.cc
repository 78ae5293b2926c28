#include "gw/journal.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "tests/support/test_support.h"

namespace gw {
namespace {

Event MakeEvent(const std::string& id, const std::string& payload = R"({"n":1})", const std::string& type = "D0010002") {
  Event e;
  e.id = id;
  e.type = type;
  e.sender = Party{"UDMS", "D", ""};
  e.recipients = {Party{"MRCY", "X", ""}, Party{"BGAS", "X", "1234567890"}};
  e.created_at = "2026-01-01T00:00:00+00:00";
  e.correlation_id = "UDMS-1";
  e.payload = payload;
  e.origin = "inbox:f.uff:2";
  return e;
}

std::vector<DeliveryTarget> To(std::initializer_list<const char*> sinks) {
  std::vector<DeliveryTarget> out;
  for (const char* s : sinks) out.push_back(DeliveryTarget{s, 0});
  return out;
}

void ExpectSameEvent(const Event& got, const Event& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.type, want.type);
  EXPECT_EQ(got.event_code, want.event_code);
  EXPECT_EQ(got.sender, want.sender);
  EXPECT_EQ(got.recipients, want.recipients);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.correlation_id, want.correlation_id);
  EXPECT_EQ(got.payload, want.payload);
  EXPECT_EQ(got.signature, want.signature);
  EXPECT_EQ(got.origin, want.origin);
}

class JournalTest : public ::testing::Test {
 protected:
  // A journal whose hand-off memory holds about eight appends of one 4 kB event (half: four).
  JournalOptions SmallHandoff(std::chrono::milliseconds patience) {
    JournalOptions o;
    o.path = dir_ / "journal.db";
    o.recent_bytes = 40000;
    o.handoff_patience = patience;
    return o;
  }
  // Appends one event of about 4.6 kB, kept in memory for the sinks.
  static void AppendPadded(Journal& j, const std::string& id) {
    auto events = std::make_shared<std::vector<Event>>(1, MakeEvent(id, "{\"pad\":\"" + std::string(4000, 'x') + "\"}"));
    AppendResult r;
    ASSERT_TRUE(j.AppendAsync("inbox", *events, To({"mqtt"}), "", {}, &r, nullptr, events).get().ok());
  }
  std::unique_ptr<Journal> Open(int64_t max_bytes = 0, bool preallocate_wal = false) {
    JournalOptions o;
    o.path = dir_ / "journal.db";
    o.max_bytes = max_bytes;
    o.preallocate_wal = preallocate_wal;  // 32 MiB written per open: only where it is the point
    auto j = Journal::Open(o);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return std::move(j.value());
  }
  std::vector<PendingDelivery> Pending(Journal& j, const std::string& sink, int limit = 1000) {
    std::vector<PendingDelivery> p;
    EXPECT_TRUE(j.FetchPending(sink, limit, &p).ok());
    return p;
  }
  void Deliver(Journal& j, const std::string& sink, std::vector<int64_t> seqs) {
    DeliveryOutcomes o;
    o.delivered = std::move(seqs);
    ASSERT_TRUE(j.RecordOutcomes(sink, o).ok());
  }
  gw::testing::TempDir dir_;
};

// A sink that keeps up takes just-appended events from memory. They must be the same, field
// for field, as reading them back gives: the sealed payload opened, the certificate put back.
TEST_F(JournalTest, JustAppendedEventsAreHandedOverFromMemoryAsTheyReadBack) {
  JournalOptions o;
  o.path = dir_ / "journal.db";
  auto cipher = PayloadCipher::FromKeys({std::string(32, '\x07')});
  ASSERT_TRUE(cipher.ok());
  o.cipher = *cipher;
  auto events = std::make_shared<std::vector<Event>>();
  for (int i = 0; i < 5; ++i) {
    Event e = MakeEvent("m" + std::to_string(i), "{\"i\":" + std::to_string(i) + "}");
    e.signature = R"({"alg":"ES256","value":"v)" + std::to_string(i) + R"(","certificate":"Q0VSVElGSUNBVEU="})";
    events->push_back(e);
  }
  const std::vector<Event> want = *events;
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    AppendResult r;
    ASSERT_TRUE((*j)->AppendAsync("inbox", *events, To({"mqtt"}), "", {}, &r, nullptr, events).get().ok());
    EXPECT_EQ(r.appended, 5);
    std::vector<PendingDelivery> p;
    ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &p).ok());
    ASSERT_EQ(p.size(), 5u);
    events.reset();  // what the journal and the fetched deliveries hold stays alive
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_NE(p[i].shared, nullptr) << i;
      EXPECT_GT(p[i].accepted_at_ms, 0) << i;
      ExpectSameEvent(p[i].view(), want[i]);
    }
    EXPECT_EQ((*j)->EventsFromMemory(), 5);
    EXPECT_EQ((*j)->EventsReadBack(), 0);
  }
  // A new process has nothing in memory: the same events, read back.
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &p).ok());
  ASSERT_EQ(p.size(), 5u);
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(p[i].shared, nullptr) << i;
    ExpectSameEvent(p[i].view(), want[i]);
  }
  EXPECT_EQ((*j)->EventsReadBack(), 5);
}

// Memory holds what the sinks come to next, within recent_bytes: when it is full and they are
// behind, the newest append is the one not kept; once they have been handed an append it makes
// way. Older pending events are read back, and a fetch hands both over in seq order, within its
// limit, after its cursor. What was delivered is not handed over again, from memory or not.
TEST_F(JournalTest, WhatTheSinksComeToNextStaysInMemoryAndTheRestIsReadBackInOrder) {
  JournalOptions o;
  o.path = dir_ / "journal.db";
  o.recent_bytes = 20000;  // one append of three 4 kB events, not two
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  std::vector<std::shared_ptr<std::vector<Event>>> appends;
  auto append = [&](const std::string& a) {
    auto events = std::make_shared<std::vector<Event>>();
    for (int i = 1; i <= 3; ++i) {
      events->push_back(MakeEvent(a + std::to_string(i), "{\"pad\":\"" + std::string(4000, 'x') + "\"}"));
    }
    AppendResult r;
    ASSERT_TRUE((*j)->AppendAsync("inbox", *events, To({"mqtt"}), "", {}, &r, nullptr, events).get().ok());
    appends.push_back(events);
  };
  auto ids = [](const std::vector<PendingDelivery>& p) {
    std::string out;
    for (const PendingDelivery& d : p) out += d.view().id + (d.shared ? "* " : " ");
    return out;
  };
  for (const char* a : {"a", "b", "c"}) append(a);
  std::vector<PendingDelivery> all;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &all).ok());
  EXPECT_EQ(ids(all), "a1* a2* a3* b1 b2 b3 c1 c2 c3 ");
  EXPECT_EQ((*j)->EventsFromMemory(), 3);
  EXPECT_EQ((*j)->EventsReadBack(), 6);
  for (size_t i = 0; i < all.size(); ++i) ExpectSameEvent(all[i].view(), (*appends[i / 3])[i % 3]);

  std::vector<PendingDelivery> head;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 4, &head).ok());
  EXPECT_EQ(ids(head), "a1* a2* a3* b1 ");
  std::vector<PendingDelivery> rest;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 4, &rest, head.back().seq).ok());
  EXPECT_EQ(ids(rest), "b2 b3 c1 c2 ");

  Deliver(**j, "mqtt", {all[1].seq, all[6].seq, all[7].seq, all[8].seq});
  std::vector<PendingDelivery> left;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &left).ok());
  EXPECT_EQ(ids(left), "a1* a3* b1 b2 b3 ");

  // Everything up to c3 has been handed over: the next append takes the place of the first.
  append("d");
  std::vector<PendingDelivery> now;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &now).ok());
  EXPECT_EQ(ids(now), "a1 a3 b1 b2 b3 d1* d2* d3* ");
}

// What an append keeps in memory is its whole batch, duplicates included: it counts them all
// against recent_bytes, or a batch of mostly duplicates would hold far more than counted.
TEST_F(JournalTest, AKeptAppendCountsItsDuplicatesToo) {
  JournalOptions o;
  o.path = dir_ / "journal.db";
  o.recent_bytes = 20000;  // room for three 4 kB events and a little more, not for seven
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  auto pad = [](const std::string& id) { return MakeEvent(id, "{\"pad\":\"" + std::string(4000, 'x') + "\"}"); };
  auto first = std::make_shared<std::vector<Event>>(std::vector<Event>{pad("a1"), pad("a2"), pad("a3")});
  AppendResult r;
  ASSERT_TRUE((*j)->AppendAsync("inbox", *first, To({"mqtt"}), "", {}, &r, nullptr, first).get().ok());
  // The same three again (a source offering its input a second time) and one new event.
  auto second = std::make_shared<std::vector<Event>>(std::vector<Event>{pad("a1"), pad("a2"), pad("a3"), pad("b1")});
  ASSERT_TRUE((*j)->AppendAsync("inbox", *second, To({"mqtt"}), "", {}, &r, nullptr, second).get().ok());
  EXPECT_EQ(r.appended, 1);
  EXPECT_EQ(r.duplicates, 3);
  std::vector<PendingDelivery> p;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 100, &p).ok());
  std::string got;
  for (const PendingDelivery& d : p) got += d.view().id + (d.shared ? "* " : " ");
  EXPECT_EQ(got, "a1* a2* a3* b1 ") << "the second append, holding four events, did not fit beside the first";
}

// Flow control: the sources wait for a sink that is taking events but has fallen behind by
// half the memory, and not for one that has stopped taking them.
TEST_F(JournalTest, SinksAreBehindWhileOneThatIsTakingEventsLagsByHalfTheMemory) {
  const JournalOptions o = SmallHandoff(std::chrono::milliseconds(1000));
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  int n = 0;
  auto append = [&](Journal& journal) { AppendPadded(journal, "e" + std::to_string(++n)); };
  for (int i = 0; i < 8; ++i) append(**j);
  // No sink has taken anything yet: nothing to wait for.
  EXPECT_FALSE((*j)->SinksBehind());
  std::vector<PendingDelivery> taken;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &taken).ok());
  EXPECT_TRUE((*j)->SinksBehind()) << "seven appends of about 4.6 kB not taken, a sink taking them";
  ASSERT_TRUE((*j)->FetchPending("mqtt", 3, &taken, taken.back().seq).ok());
  EXPECT_FALSE((*j)->SinksBehind()) << "four not taken: within half the memory";
  append(**j);
  append(**j);
  ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &taken, taken.back().seq).ok());
  EXPECT_TRUE((*j)->SinksBehind()) << "five not taken";
  // The sink stops taking: after handoff_patience it holds nothing back.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_FALSE((*j)->SinksBehind());
  // A sink reading older rows again (a rescan from the start) is not catching up.
  std::vector<PendingDelivery> again;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 2, &again).ok());
  EXPECT_FALSE((*j)->SinksBehind());
  // Taking new events counts again.
  append(**j);
  ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &taken, taken.back().seq).ok());
  EXPECT_TRUE((*j)->SinksBehind()) << "five not taken";

  // After a restart the eleven events before it are a backlog on disk. A sink working through it
  // is short of what memory holds, and holds no source back however much waits there...
  j->reset();
  auto k = Journal::Open(o);
  ASSERT_TRUE(k.ok());
  for (int i = 0; i < 8; ++i) append(**k);
  std::vector<PendingDelivery> backlog;
  ASSERT_TRUE((*k)->FetchPending("mqtt", 1, &backlog).ok());
  ASSERT_EQ(backlog[0].view().id, "e1");
  EXPECT_FALSE((*k)->SinksBehind());
  // ... until it reaches it.
  ASSERT_TRUE((*k)->FetchPending("mqtt", 10, &backlog, backlog.back().seq).ok());
  ASSERT_EQ(backlog.back().view().id, "e11");
  EXPECT_TRUE((*k)->SinksBehind()) << "eight appends in memory, none taken, the sink at their door";
}

TEST_F(JournalTest, WithoutPatienceTheSourcesNeverWaitForTheSinks) {
  auto j = Journal::Open(SmallHandoff(std::chrono::milliseconds(0)));
  ASSERT_TRUE(j.ok());
  for (int i = 0; i < 8; ++i) AppendPadded(**j, "e" + std::to_string(i));
  std::vector<PendingDelivery> taken;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &taken).ok());
  EXPECT_FALSE((*j)->SinksBehind());
}

TEST_F(JournalTest, WaitingForTheSinksEndsWhenOneCatchesUpOrStopsTakingEvents) {
  auto j = Journal::Open(SmallHandoff(std::chrono::milliseconds(2000)));
  ASSERT_TRUE(j.ok());
  for (int i = 0; i < 8; ++i) AppendPadded(**j, "e" + std::to_string(i));
  std::vector<PendingDelivery> taken;
  ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &taken).ok());
  ASSERT_TRUE((*j)->SinksBehind());
  // A sink that keeps taking, one event every 150 ms, until it has caught up: the wait ends
  // then, at the third take, woken by it. (Without the wake-up it would last until the patience
  // after the third take; waiting for the patience alone, until after the fourth, 600 ms later.)
  std::atomic<int> takes{0};
  std::thread sink([&] {
    std::vector<PendingDelivery> more = taken;
    for (int i = 0; i < 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(i < 3 ? 150 : 600));
      takes.fetch_add(1);  // before the take, which wakes the waiter
      ASSERT_TRUE((*j)->FetchPending("mqtt", 1, &more, more.back().seq).ok());
    }
  });
  (*j)->WaitForSinks(std::chrono::seconds(30));
  const int seen = takes.load();
  sink.join();
  EXPECT_EQ(seen, 3) << "the wait ended when three more of the seven were taken (four left: within half)";
  EXPECT_FALSE((*j)->SinksBehind());
  // Behind again after one more take, and then no sink takes anything: the wait ends
  // handoff_patience after that take, well before `at_most`.
  for (int i = 8; i < 12; ++i) AppendPadded(**j, "e" + std::to_string(i));
  std::vector<PendingDelivery> six;  // one more than the sink had: e0 to e5
  ASSERT_TRUE((*j)->FetchPending("mqtt", 6, &six).ok());
  ASSERT_TRUE((*j)->SinksBehind());
  const auto began = std::chrono::steady_clock::now();
  (*j)->WaitForSinks(std::chrono::seconds(60));
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(30)) << "waited for at_most, not the patience";
  EXPECT_FALSE((*j)->SinksBehind());
}

TEST_F(JournalTest, AppendedEventsComeBackPendingInOrderForEachSink) {
  auto j = Open();
  AppendResult r;
  ASSERT_TRUE(j->Append("inbox", {MakeEvent("a"), MakeEvent("b"), MakeEvent("c")}, To({"mqtt", "files"}), "cp1", &r).ok());
  EXPECT_EQ(r.appended, 3);
  EXPECT_EQ(r.duplicates, 0);
  for (const char* sink : {"mqtt", "files"}) {
    auto p = Pending(*j, sink);
    ASSERT_EQ(p.size(), 3u) << sink;
    EXPECT_EQ(p[0].event.id, "a");
    EXPECT_EQ(p[2].event.id, "c");
    EXPECT_LT(p[0].seq, p[1].seq);
    EXPECT_LT(p[1].seq, p[2].seq);
    EXPECT_EQ(p[0].expires_at_ms, 0);
  }
  const Event e = Pending(*j, "mqtt")[0].event;
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

TEST_F(JournalTest, FetchHonoursLimitAndOrder) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b"), MakeEvent("c")}, To({"k"}), "", nullptr).ok());
  auto p = Pending(*j, "k", 2);
  ASSERT_EQ(p.size(), 2u);
  Deliver(*j, "k", {p[0].seq, p[1].seq});
  auto rest = Pending(*j, "k");
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].event.id, "c");
}

TEST_F(JournalTest, DeliveredEventsAreNoLongerPendingAndSurviveReopen) {
  {
    auto j = Open();
    ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, To({"k"}), "", nullptr).ok());
    Deliver(*j, "k", {Pending(*j, "k")[0].seq});
  }
  auto j = Open();
  auto p = Pending(*j, "k");
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
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, To({"k"}), "", nullptr).ok());
  Deliver(*j, "k", {Pending(*j, "k")[0].seq});
  AppendResult r;
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, To({"k"}), "", &r).ok());
  EXPECT_EQ(r.appended, 1);
  EXPECT_EQ(r.duplicates, 1);
  auto p = Pending(*j, "k");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].event.id, "b");
  EXPECT_EQ(*j->CountEvents(), 2);
}

// A batch goes in with one statement, which skips what is already there. Each new event must
// still be queued under its own seq, whether it comes back from memory or is read back: the
// skipped ones, here between and after the new ones and once within the batch itself, must not
// shift the others.
TEST_F(JournalTest, ABatchWithDuplicatesAmongItsEventsQueuesEachNewOneUnderItsOwnSeq) {
  auto ev = [](const std::string& id) { return MakeEvent(id, "{\"id\":\"" + id + "\"}"); };
  JournalOptions o;
  o.path = dir_ / "journal.db";
  {
    auto j = Journal::Open(o);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append("s", {ev("a"), ev("c")}, To({"k", "f"}), "", nullptr).ok());
    auto batch = std::make_shared<std::vector<Event>>(
        std::vector<Event>{ev("x"), ev("a"), ev("y"), ev("y"), ev("c"), ev("z")});
    AppendResult r;
    ASSERT_TRUE((*j)->AppendAsync("s", *batch, To({"k", "f"}), "", {}, &r, nullptr, batch).get().ok());
    EXPECT_EQ(r.appended, 3);
    EXPECT_EQ(r.duplicates, 3);
    for (const char* sink : {"k", "f"}) {
      std::vector<PendingDelivery> p;
      ASSERT_TRUE((*j)->FetchPending(sink, 100, &p).ok());
      std::string got;
      for (const PendingDelivery& d : p) got += d.view().id + "=" + d.view().payload + (d.shared ? "* " : " ");
      EXPECT_EQ(got, R"(a={"id":"a"} c={"id":"c"} x={"id":"x"}* y={"id":"y"}* z={"id":"z"}* )") << sink;
    }
  }
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok());
  std::vector<PendingDelivery> p;
  ASSERT_TRUE((*j)->FetchPending("k", 100, &p).ok());
  std::string got;
  for (const PendingDelivery& d : p) got += d.view().id + "=" + d.view().payload + " ";
  EXPECT_EQ(got, R"(a={"id":"a"} c={"id":"c"} x={"id":"x"} y={"id":"y"} z={"id":"z"} )");
  EXPECT_EQ(*(*j)->CountEvents(), 5);
}

TEST_F(JournalTest, DeadLettersCanBeListedRetriedAndDropped) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, To({"k"}), "", nullptr).ok());
  auto p = Pending(*j, "k");
  DeliveryOutcomes o;
  o.dead = {{p[0].seq, "INVALID_ARGUMENT: too big"}, {p[1].seq, "INVALID_ARGUMENT: bad"}};
  ASSERT_TRUE(j->RecordOutcomes("k", o).ok());
  std::vector<DeadLetter> dl;
  ASSERT_TRUE(j->ListDeadLetters("", &dl).ok());
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(dl[0].event_id, "a");
  EXPECT_EQ(dl[0].reason, "INVALID_ARGUMENT: too big");
  EXPECT_EQ(dl[0].attempts, 1);
  EXPECT_TRUE(Pending(*j, "k").empty());

  ASSERT_TRUE(j->RetryDeadLetter("k", dl[0].seq).ok());
  ASSERT_TRUE(j->DropDeadLetter("", dl[1].seq).ok());
  EXPECT_EQ(j->DropDeadLetter("", dl[1].seq).code(), StatusCode::kNotFound);
  auto again = Pending(*j, "k");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].event.id, "a");
  EXPECT_EQ(again[0].attempts, 0);
  dl.clear();
  ASSERT_TRUE(j->ListDeadLetters("k", &dl).ok());
  EXPECT_TRUE(dl.empty());
}

TEST_F(JournalTest, FailedAttemptsAreCountedAndTraced) {
  auto j = Open();
  ASSERT_TRUE(j->Append("inbox", {MakeEvent("a")}, To({"k"}), "", nullptr).ok());
  int64_t seq = Pending(*j, "k")[0].seq;
  DeliveryOutcomes fail;
  fail.failed_seq = seq;
  fail.failed_error = "UNAVAILABLE: broker down";
  ASSERT_TRUE(j->RecordOutcomes("k", fail).ok());
  ASSERT_TRUE(j->RecordOutcomes("k", fail).ok());
  auto p = Pending(*j, "k");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].attempts, 2);
  Deliver(*j, "k", {seq});
  EventTrace t;
  ASSERT_TRUE(j->Trace("a", &t).ok());
  EXPECT_EQ(t.event.id, "a");
  EXPECT_EQ(t.source, "inbox");
  std::vector<std::string> whats;
  for (const auto& e : t.entries) whats.push_back(e.what + (e.sink.empty() ? "" : "@" + e.sink));
  EXPECT_EQ(whats, (std::vector<std::string>{"accepted", "routed@k", "attempt-failed@k", "attempt-failed@k", "delivered@k"}));
  EXPECT_EQ(t.entries[0].detail, "from source inbox, inbox:f.uff:2");
  EXPECT_EQ(t.entries[2].detail, "UNAVAILABLE: broker down");
  EXPECT_EQ(t.entries[4].detail, "confirmed by the far side after 3 attempt(s)");
  EXPECT_EQ(j->Trace("nope", &t).code(), StatusCode::kNotFound);
}

TEST_F(JournalTest, ExpiryIsStoredPerTarget) {
  auto j = Open();
  int64_t before = NowUnixMs();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, {DeliveryTarget{"k", 60}, DeliveryTarget{"m", 0}}, "", nullptr).ok());
  auto k = Pending(*j, "k");
  ASSERT_EQ(k.size(), 1u);
  EXPECT_GE(k[0].expires_at_ms, before + 60000);
  EXPECT_LE(k[0].expires_at_ms, NowUnixMs() + 60000);
  EXPECT_EQ(Pending(*j, "m")[0].expires_at_ms, 0);
}

TEST_F(JournalTest, ReplayQueuesFinishedEventsAgainForOneSink) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a", "{}", "IF-021"), MakeEvent("b", "{}", "D0010002"), MakeEvent("c", "{}", "IF-021")},
                        To({"k"}), "", nullptr).ok());
  auto p = Pending(*j, "k");
  Deliver(*j, "k", {p[0].seq, p[1].seq});  // c stays pending
  ReplayFilter f;
  f.from_ms = NowUnixMs() - 60000;
  f.type = "IF-021";
  f.sink = "k";
  auto n = j->Replay(f);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1) << "a is queued again; b is another type; c was still pending";
  auto again = Pending(*j, "k");
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].event.id, "a");
  EXPECT_EQ(again[1].event.id, "c");
  // A sink that never had the events gets them all.
  f.sink = "new-sink";
  f.type = "";
  EXPECT_EQ(*j->Replay(f), 3);
  // A time range in the future matches nothing.
  f.from_ms = NowUnixMs() + 3600000;
  f.sink = "k";
  EXPECT_EQ(*j->Replay(f), 0);
  EventTrace t;
  ASSERT_TRUE(j->Trace("a", &t).ok());
  std::vector<std::string> whats;
  for (const auto& e : t.entries) whats.push_back(e.what + "@" + e.sink);
  // Entries are in time order; the two replays may fall in different milliseconds, so check
  // the content and the order within each sink rather than one exact interleaving.
  std::multiset<std::string> got(whats.begin(), whats.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"accepted@", "routed@k", "routed@new-sink", "replayed@k",
                                              "replayed@new-sink", "pending@k", "pending@new-sink"}));
  EXPECT_EQ(whats.front(), "accepted@");
  auto pos = [&](const char* w) { return std::find(whats.begin(), whats.end(), w) - whats.begin(); };
  EXPECT_LT(pos("replayed@k"), pos("pending@k"));
  EXPECT_LT(pos("replayed@new-sink"), pos("pending@new-sink"));
}

TEST_F(JournalTest, AChainExtendedByAnotherProcessIsContinuedNotForked) {
  // mhhs-gatewayctl replay and dead-letters retry open the journal beside the running daemon
  // and add audit entries; the daemon's writer must go on from them (it used to keep its own
  // idea of the chain's tip and fail every later record with a duplicate audit id).
  auto daemon = Open();
  ASSERT_TRUE(daemon->Append("s", {MakeEvent("a"), MakeEvent("b")}, To({"k"}), "", nullptr).ok());
  auto p = Pending(*daemon, "k");
  Deliver(*daemon, "k", {p[0].seq});
  {
    auto ctl = Open();
    ReplayFilter f;
    f.from_ms = NowUnixMs() - 60000;
    f.sink = "k";
    ASSERT_EQ(*ctl->Replay(f), 1);
  }
  Deliver(*daemon, "k", {p[0].seq, p[1].seq});
  ASSERT_TRUE(daemon->Append("s", {MakeEvent("c")}, To({"k"}), "", nullptr).ok());
  std::vector<AuditEntry> chain;
  ASSERT_TRUE(daemon->ReadAudit(0, 0, &chain).ok());
  std::vector<std::string> whats;
  std::string prev(64, '0');
  for (size_t i = 0; i < chain.size(); ++i) {
    whats.push_back(chain[i].what + ":" + chain[i].event_id);
    EXPECT_EQ(chain[i].id, static_cast<int64_t>(i + 1));
    EXPECT_EQ(chain[i].prev, prev) << "entry " << chain[i].id;
    EXPECT_EQ(Journal::AuditHash(chain[i]), chain[i].hash) << "entry " << chain[i].id;
    prev = chain[i].hash;
  }
  // An append or a confirmed batch of several events is one entry listing them (event_id "").
  EXPECT_EQ(whats, (std::vector<std::string>{"accepted:", "delivered:a", "replayed:a", "delivered:", "accepted:c"}));
  ASSERT_EQ(chain.size(), 5u);
  EXPECT_EQ(chain[0].detail, R"([["a","inbox:f.uff:2"],["b","inbox:f.uff:2"]])");
  EXPECT_EQ(chain[3].detail, R"(["a","b"])");
}

TEST_F(JournalTest, ABatchIsOneAuditEntryListingEachEventItChanged) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, To({"k"}), "", nullptr).ok());
  Event b = MakeEvent("b"), c = MakeEvent("c");
  c.origin = "inbox:g.uff:7";
  AppendResult r;
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), b, c}, To({"k"}), "", &r).ok());
  EXPECT_EQ(r.duplicates, 1);
  auto p = Pending(*j, "k");
  ASSERT_EQ(p.size(), 3u);
  Deliver(*j, "k", {p[0].seq});
  // a again (already delivered, not listed); the sink gave b's id but not c's.
  DeliveryOutcomes o;
  o.delivered = {p[0].seq, p[1].seq, p[2].seq};
  o.delivered_ids = {"a", "b"};
  ASSERT_TRUE(j->RecordOutcomes("k", o).ok());
  std::vector<AuditEntry> chain;
  ASSERT_TRUE(j->ReadAudit(0, 0, &chain).ok());
  ASSERT_EQ(chain.size(), 4u);
  EXPECT_EQ(chain[0].what, "accepted");
  EXPECT_EQ(chain[0].event_id, "a") << "one event keeps the one-event form";
  EXPECT_EQ(chain[0].detail, "inbox:f.uff:2");
  EXPECT_EQ(chain[1].what, "accepted");
  EXPECT_EQ(chain[1].event_id, "");
  EXPECT_EQ(chain[1].subject, "s");
  EXPECT_EQ(chain[1].detail, R"([["b","inbox:f.uff:2"],["c","inbox:g.uff:7"]])") << "the duplicate a is not accepted again";
  EXPECT_EQ(chain[2].event_id, "a");
  EXPECT_EQ(chain[2].detail, "confirmed by the far side");
  EXPECT_EQ(chain[3].what, "delivered");
  EXPECT_EQ(chain[3].event_id, "");
  EXPECT_EQ(chain[3].subject, "k");
  EXPECT_EQ(chain[3].detail, R"(["b","c"])");
  std::string prev(64, '0');
  for (const AuditEntry& e : chain) {
    EXPECT_EQ(e.prev, prev);
    EXPECT_EQ(Journal::AuditHash(e), e.hash);
    prev = e.hash;
  }
}

TEST_F(JournalTest, NothingOfAChainCommitsAfterAnAppendThatFailed) {
  auto j = Open();
  // Another connection holds the write lock until the first append has failed (busy timeout).
  auto other = Db::Open(dir_ / "journal.db", false, false);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN EXCLUSIVE").ok());
  auto chain = std::make_shared<AppendChain>();
  std::vector<Event> first{MakeEvent("a")}, second{MakeEvent("b")}, third{MakeEvent("c")};
  const std::vector<DeliveryTarget> to = To({"k"});
  const std::vector<Rejection> none;
  AppendResult r1, r2, r3;
  auto f1 = j->AppendAsync("s", first, to, "cp1", none, &r1, chain);
  auto f2 = j->AppendAsync("s", second, to, "cp2", none, &r2, chain);
  EXPECT_FALSE(f1.get().ok());
  ASSERT_TRUE((*other)->Exec("ROLLBACK").ok());
  Status s2 = f2.get();
  EXPECT_EQ(s2.code(), StatusCode::kUnavailable) << s2.ToString();
  EXPECT_TRUE(chain->broken.load());
  EXPECT_EQ(*j->CountEvents(), 0) << "the second was queued behind the failed first and must not be written";
  EXPECT_EQ(*j->GetCheckpoint("s"), "");
  // A new chain, once the source has heard of the failure, commits again.
  auto f3 = j->AppendAsync("s", third, to, "cp3", none, &r3, std::make_shared<AppendChain>());
  ASSERT_TRUE(f3.get().ok());
  EXPECT_EQ(r3.appended, 1);
  EXPECT_EQ(*j->GetCheckpoint("s"), "cp3");
}

TEST_F(JournalTest, TheWalIsCheckpointedInTheBackground) {
  // The checkpoint thread's connection used to do nothing (it had not read the database, so
  // did not know it was in WAL mode), and the WAL grew until the writer checkpointed it itself.
  auto j = Open();
  const std::string payload(16 << 10, 'x');
  for (int batch = 0; batch < 12; ++batch) {  // 12 x 100 x 16 KiB: more than the 16 MiB threshold
    std::vector<Event> events;
    for (int i = 0; i < 100; ++i) events.push_back(MakeEvent("e" + std::to_string(batch * 100 + i), payload));
    ASSERT_TRUE(j->Append("s", events, To({"k"}), "", nullptr).ok());
  }
  EXPECT_TRUE(gw::testing::WaitFor([&] { return j->CheckpointsDone() > 0; }, std::chrono::seconds(10)));
}

// The WAL is written out to its working size when the journal opens, so that commits do not
// grow it; the blocks are really there (not a sparse file), and the journal works on.
bool RoomToWriteTheWalOut(const std::string& dir) {
  struct statvfs fs;
  return ::statvfs(dir.c_str(), &fs) == 0 &&
         static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) >= 4.0 * Journal::kWalPreallocBytes;
}

TEST_F(JournalTest, TheWalIsWrittenOutToItsWorkingSizeWhenTheJournalOpens) {
  if (!RoomToWriteTheWalOut(dir_.path())) GTEST_SKIP() << "less than 128 MiB free: the WAL is not written out";
  auto j = Open(0, true);
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "journal.db-wal").c_str(), &st), 0);
  EXPECT_GE(st.st_size, Journal::kWalPreallocBytes);
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b")}, To({"k"}), "cp", nullptr).ok());
  j.reset();
  j = Open(0, true);
  EXPECT_EQ(Pending(*j, "k").size(), 2u);
  EXPECT_EQ(*j->GetCheckpoint("s"), "cp");
}

// Writing the WAL out must never touch frames in it: after a crash the WAL holds commits not
// yet copied into the database, and opening the journal again recovers them from there.
TEST_F(JournalTest, WritingTheWalOutKeepsTheCommitsStillInIt) {
  if (!RoomToWriteTheWalOut(dir_.path())) GTEST_SKIP() << "less than 128 MiB free: the WAL is not written out";
  { auto j = Open(); }  // the schema; closing copies the WAL into the database and deletes it
  const std::string crashed = dir_ / "crashed";
  ASSERT_EQ(::mkdir(crashed.c_str(), 0700), 0);
  {
    auto raw = Db::Open(dir_ / "journal.db", false, false);
    ASSERT_TRUE(raw.ok());
    ASSERT_TRUE((*raw)->Exec("PRAGMA wal_autocheckpoint=0").ok());
    ASSERT_TRUE((*raw)->Exec("INSERT INTO checkpoints(source,value,updated_at) VALUES('s','only-in-the-wal',1)").ok());
    struct stat st;
    ASSERT_EQ(::stat((dir_ / "journal.db-wal").c_str(), &st), 0);
    ASSERT_GT(st.st_size, 0);
    ASSERT_LT(st.st_size, Journal::kWalPreallocBytes);
    // What a crash leaves on disk: the database without the commit, the WAL with it.
    for (const char* f : {"journal.db", "journal.db-wal"}) {
      std::ifstream in(dir_ / f, std::ios::binary);
      std::ofstream out(crashed + "/" + f, std::ios::binary);
      out << in.rdbuf();
    }
  }
  JournalOptions o;
  o.path = crashed + "/journal.db";
  o.preallocate_wal = true;
  auto j = Journal::Open(o);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat((crashed + "/journal.db-wal").c_str(), &st), 0);
  EXPECT_GE(st.st_size, Journal::kWalPreallocBytes);
  EXPECT_EQ(*(*j)->GetCheckpoint("s"), "only-in-the-wal");
  j->reset();
  j = Journal::Open(o);  // and once more, from the database the close checkpointed into
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(*(*j)->GetCheckpoint("s"), "only-in-the-wal");
}

TEST_F(JournalTest, AFailedReloadOfTheAuditTipLeavesNoTransactionOpen) {
  // Another process changes the journal and the writer's reload of the audit chain's tip
  // fails (here: the table is away). That write fails; the writer must not stay inside its
  // transaction holding the write lock, or every later write fails until a restart.
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a")}, To({"k"}), "", nullptr).ok());
  auto other = Db::Open(dir_ / "journal.db", false, false);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("ALTER TABLE audit RENAME TO audit_away").ok());
  EXPECT_FALSE(j->Append("s", {MakeEvent("b")}, To({"k"}), "", nullptr).ok());
  ASSERT_TRUE((*other)->Exec("ALTER TABLE audit_away RENAME TO audit").ok()) << "the writer still holds the lock";
  ASSERT_TRUE(j->Append("s", {MakeEvent("c")}, To({"k"}), "", nullptr).ok());
  std::vector<AuditEntry> chain;
  ASSERT_TRUE(j->ReadAudit(0, 0, &chain).ok());
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[1].event_id, "c");
  EXPECT_EQ(chain[1].prev, chain[0].hash);
}

TEST_F(JournalTest, FetchAfterASeqSkipsWhatIsAlreadyInHand) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("a"), MakeEvent("b"), MakeEvent("c")}, To({"k"}), "", nullptr).ok());
  auto all = Pending(*j, "k");
  ASSERT_EQ(all.size(), 3u);
  std::vector<PendingDelivery> rest;
  ASSERT_TRUE(j->FetchPending("k", 10, &rest, all[0].seq).ok());
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].event.id, "b");
  EXPECT_EQ(rest[1].event.id, "c");
  rest.clear();
  ASSERT_TRUE(j->FetchPending("k", 10, &rest, all[2].seq).ok());
  EXPECT_TRUE(rest.empty());
}

TEST_F(JournalTest, PruneRemovesOnlyFinishedEvents) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("done"), MakeEvent("pending"), MakeEvent("dead"), MakeEvent("dropped")},
                        To({"k", "m"}), "", nullptr).ok());
  auto p = Pending(*j, "k");
  Deliver(*j, "k", {p[0].seq, p[1].seq});
  Deliver(*j, "m", {p[0].seq});            // "pending" is still pending for m
  DeliveryOutcomes dead;
  dead.dead = {{p[2].seq, "bad"}, {p[3].seq, "bad"}};
  ASSERT_TRUE(j->RecordOutcomes("k", dead).ok());
  Deliver(*j, "m", {p[2].seq, p[3].seq});
  ASSERT_TRUE(j->DropDeadLetter("k", p[3].seq).ok());
  PruneResult r;
  ASSERT_TRUE(j->Prune(std::chrono::seconds(0), &r).ok());
  EXPECT_EQ(r.events_removed, 2);  // "done" and "dropped"
  EventTrace t;
  EXPECT_EQ(j->Trace("done", &t).code(), StatusCode::kNotFound);
  EXPECT_EQ(j->Trace("dropped", &t).code(), StatusCode::kNotFound);
  EXPECT_TRUE(j->Trace("pending", &t).ok());
  EXPECT_TRUE(j->Trace("dead", &t).ok());
  // Inside the retention period nothing goes.
  ASSERT_TRUE(j->Append("s", {MakeEvent("fresh")}, To({"k"}), "", nullptr).ok());
  Deliver(*j, "k", {Pending(*j, "k")[1].seq});
  ASSERT_TRUE(j->Prune(std::chrono::hours(24), &r).ok());
  EXPECT_EQ(r.events_removed, 0);
  EXPECT_TRUE(j->IntegrityCheck().ok());
}

TEST_F(JournalTest, PrunedAuditEntriesLeaveAnAnchorTheChainContinuesFrom) {
  auto j = Open();
  ASSERT_TRUE(j->Append("s", {MakeEvent("old1"), MakeEvent("old2")}, To({"k"}), "", nullptr).ok());
  auto p = Pending(*j, "k");
  Deliver(*j, "k", {p[0].seq, p[1].seq});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  PruneResult r;
  ASSERT_TRUE(j->Prune(std::chrono::seconds(0), &r).ok());
  EXPECT_EQ(r.events_removed, 2);
  ASSERT_TRUE(j->Append("s", {MakeEvent("new")}, To({"k"}), "", nullptr).ok());
  int64_t through = 0;
  std::string hash;
  ASSERT_TRUE(j->AuditAnchor(&through, &hash).ok());
  EXPECT_EQ(through, 2) << "the accepted and the delivered entry of the two went with their events";
  std::vector<AuditEntry> rest;
  ASSERT_TRUE(j->ReadAudit(0, 0, &rest).ok());
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, 3);
  EXPECT_EQ(rest[0].prev, hash);
  EXPECT_EQ(Journal::AuditHash(rest[0]), rest[0].hash);
}

TEST_F(JournalTest, QuotaPausesAboveHighWaterAndResumesBelowLow) {
  auto j = Open(/*max_bytes=*/400 * 1024);
  std::string reason;
  EXPECT_FALSE(j->ShouldPause(&reason));
  std::string big(2000, 'x');
  int i = 0;
  while (!j->ShouldPause(&reason) && i < 1000) {
    std::vector<Event> batch;
    for (int k = 0; k < 10; ++k, ++i) batch.push_back(MakeEvent("e" + std::to_string(i), "\"" + big + "\""));
    // Appends still succeed above the mark: nothing accepted is refused or evicted.
    ASSERT_TRUE(j->Append("s", batch, To({"k"}), "", nullptr).ok());
  }
  ASSERT_TRUE(j->ShouldPause(&reason)) << "quota never reached";
  EXPECT_NE(reason.find("above the high water mark (90% of max_bytes 409600)"), std::string::npos) << reason;
  // Nothing is delivered yet: pruning may not free anything.
  PruneResult r;
  ASSERT_TRUE(j->Prune(std::chrono::hours(24 * 28), &r).ok());
  EXPECT_EQ(r.events_removed, 0);
  EXPECT_TRUE(j->ShouldPause(nullptr));
  // Once delivered, pruning under pressure removes them early and sources may resume.
  std::vector<int64_t> seqs;
  for (const auto& d : Pending(*j, "k", 100000)) seqs.push_back(d.seq);
  Deliver(*j, "k", seqs);
  ASSERT_TRUE(j->Prune(std::chrono::hours(24 * 28), &r).ok());
  EXPECT_GT(r.early, 0);
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_FALSE(j->ShouldPause(&reason)) << "used " << j->UsedBytes();
}

TEST_F(JournalTest, ConcurrentAppendsAreAllStored) {
  auto j = Open();
  constexpr int kThreads = 4, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = j->Append("s" + std::to_string(t), {MakeEvent(std::to_string(t) + "-" + std::to_string(i))}, To({"k"}),
                             std::to_string(i), nullptr);
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(*j->CountEvents(), kThreads * kPerThread);
  EXPECT_EQ(Pending(*j, "k", 100000).size(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(*j->GetCheckpoint("s" + std::to_string(t)), std::to_string(kPerThread - 1));
  EXPECT_TRUE(j->IntegrityCheck().ok());
}

TEST_F(JournalTest, ReadOnlyOpenRefusesAFileThatIsNotAJournal) {
  gw::testing::WriteFile(dir_ / "other.db", "");
  JournalOptions o;
  o.path = dir_ / "other.db";
  o.read_only = true;
  auto j = Journal::Open(o);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("not a gateway journal"), std::string::npos);
}

TEST_F(JournalTest, CorruptFileIsRefused) {
  gw::testing::WriteFile(dir_ / "bad.db", std::string(8192, 'x'));
  JournalOptions o;
  o.path = dir_ / "bad.db";
  auto j = Journal::Open(o);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kDataLoss) << j.status().ToString();
}

}  // namespace
}  // namespace gw
