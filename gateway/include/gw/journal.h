// Journal: the gateway's event store and the promise it makes (DESIGN.md, data flow 3-5).
//
// A SQLite database in WAL mode with synchronous=FULL. Every accepted event is appended
// together with its source's checkpoint in one transaction, and one delivery row per
// (event, sink) records whether that sink has confirmed it. Only after Append() returns OK may
// a source release its input.
//
// Writes go through one writer thread that runs whatever has queued up in one transaction
// (group commit: many appends, one fsync); each caller still gets its own Status through a
// savepoint. Reads use a small pool of read-only connections. Event ids are unique: appending
// an id already present stores nothing and creates no deliveries (dedupe).
//
// The journal also keeps each event's life (accepted, routed, attempts, confirmed,
// dead-lettered, replayed) for `mhhs-gatewayctl trace`, prunes delivered events after the
// retention period, and watches its size against a quota with high and low water marks.
//
// Thread-safety: all public methods are thread-safe.
#ifndef GW_JOURNAL_H_
#define GW_JOURNAL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gw/security.h"
#include "gw/sqlite.h"
#include "mhhs/connector.h"
#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw {

struct JournalOptions {
  std::string path;
  bool read_only = false;       // for mhhs-gatewayctl: no writer thread, no schema changes
  int64_t max_bytes = 0;        // quota on live data; 0: none
  int high_water_pct = 90;      // sources pause above this share of max_bytes ...
  int low_water_pct = 80;       // ... and resume below this one
  // Seals event payloads and quarantined messages with AES-256-GCM; null: stored as they are.
  // Rows written before a key was configured stay readable; a sealed row without its key is
  // an error naming the key id.
  std::shared_ptr<const PayloadCipher> cipher;
  // How many bytes of appended events the journal keeps in memory for its sinks, so that a
  // sink close behind takes them from there instead of reading them back (AppendAsync() with
  // `keep`). When full, what the sinks were handed is dropped first, else the newest. 0: none.
  int64_t recent_bytes = 10 << 20;
  // How long after a sink last took events the sources still wait for it when it falls behind
  // (SinksBehind()); 0: they never wait.
  std::chrono::milliseconds handoff_patience{50};
  // Writes the WAL out to Journal::kWalPreallocBytes when opening, unless the disk has less
  // than four times that free: commits then overwrite blocks the file has instead of growing
  // it, and its fdatasync has no new extents to write (measured in docs/performance.md). For
  // the daemon; a short-lived writer (mhhs-gatewayctl) leaves it off.
  bool preallocate_wal = true;
};

// Where an appended event goes: a sink, and how long it may wait there (0: for ever).
struct DeliveryTarget {
  std::string sink;
  int64_t expiry_s = 0;
};

// Ties a source's appends together when it has more than one queued at a time: once one
// fails (its own error, or the transaction it was in did not commit), every later append of
// the same chain fails too without being written, so a checkpoint never moves past input that
// was not stored. Start a new chain after the source has heard of the failure.
struct AppendChain {
  std::atomic<bool> broken{false};
};

struct AppendResult {
  int64_t appended = 0;    // new events stored
  int64_t duplicates = 0;  // events whose id was already journalled
};

// A pending delivery: the event and how often delivery was tried before.
struct PendingDelivery {
  int64_t seq = 0;
  int attempts = 0;
  int64_t expires_at_ms = 0;  // 0: never
  int64_t accepted_at_ms = 0;
  Event event;             // read back from the journal (empty when `shared` is set)
  std::string unreadable;  // why the stored event could not be read (then `event` is partial)
  // The appended event itself, still in the journal's memory (JournalOptions::recent_bytes),
  // kept alive by `keep`: the same content as reading it back would give.
  const Event* shared = nullptr;
  std::shared_ptr<const void> keep;

  const Event& view() const { return shared ? *shared : event; }
};

// What a sink worker learned from one Deliver() call.
struct DeliveryOutcomes {
  std::vector<int64_t> delivered;
  std::vector<std::string> delivered_ids;              // event ids, parallel to `delivered` (for the audit)
  std::vector<std::pair<int64_t, std::string>> dead;  // seq, reason
  int64_t failed_seq = 0;                              // the head transient failure, if any
  std::string failed_error;
};

// Delivery states as stored.
enum class DeliveryState : int { kPending = 0, kDelivered = 1, kDead = 2, kDropped = 3 };

struct SinkQueueStats {
  std::string sink;
  int64_t pending = 0;
  int64_t delivered = 0;
  int64_t dead = 0;
  int64_t oldest_pending_ms = 0;  // accepted_at of the oldest pending event (unix ms), 0 if none
};

struct DeadLetter {
  int64_t seq = 0;
  std::string sink;
  std::string event_id;
  std::string type;
  int attempts = 0;
  int64_t at_ms = 0;
  std::string reason;
};

struct TraceEntry {
  int64_t at_ms = 0;
  std::string what;    // accepted, routed, attempt-failed, delivered, dead-lettered, ...
  std::string sink;    // empty when not about one sink
  std::string detail;
};

struct EventTrace {
  int64_t seq = 0;
  Event event;
  std::string source;
  std::vector<TraceEntry> entries;  // in time order
};

struct ReplayFilter {
  int64_t from_ms = 0;   // accepted_at >= from_ms
  int64_t to_ms = 0;     // accepted_at < to_ms (0: no upper bound)
  std::string type;      // "" for every type
  std::string sink;      // required
};

struct AuditEntry {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string what;      // accepted, delivered, dead-lettered, rejected, quarantined, retried, dropped, replayed
  std::string event_id;  // "" when not about one event
  std::string subject;   // the source or sink
  // An entry about several events of one batch (`accepted` per append, `delivered` per
  // confirmed batch; event_id ""): a JSON array, of [id, origin] pairs for `accepted`, of ids
  // for `delivered`.
  std::string detail;
  std::string prev;      // the previous entry's hash (64 zeros for the first)
  std::string hash;      // SHA-256 over prev and this entry's fields
};

struct QuarantinedMessage {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string source;
  std::string origin;
  std::string reason;
  std::string raw;
};

struct PruneResult {
  int64_t events_removed = 0;
  int64_t early = 0;  // of those, removed before retention ran out, to get under the quota
};

class Journal {
 public:
  // Opens or creates the journal, applies migrations, runs quick_check.
  // Errors: kDataLoss (corrupt), kUnavailable / kPermissionDenied (cannot open or write).
  static StatusOr<std::unique_ptr<Journal>> Open(const JournalOptions& options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The schema version this build writes.
  static constexpr int kSchemaVersion = 3;
  // The size the WAL is written out to when the journal opens (when the disk has four times
  // that free), so that commits overwrite blocks it already has instead of growing the file.
  static constexpr int64_t kWalPreallocBytes = 32 << 20;

  // Stores `events` from `source` with a delivery row for each target, and the source's
  // `checkpoint` ("" leaves it as it is), in one durable transaction. Returns OK only after
  // the commit reached the disk; on error nothing is stored (kUnavailable for a full disk or
  // an I/O error: try again later).
  Status Append(const std::string& source, const std::vector<Event>& events,
                const std::vector<DeliveryTarget>& targets, const std::string& checkpoint,
                AppendResult* result);

  // As Append(), without waiting: queues the write and returns its verdict as a future, so
  // that the caller can prepare its next batch while this one commits. `rejections` are
  // recorded in the same transaction (as RecordRejections()). Everything passed by reference
  // (`result` included) must stay valid until the future is ready.
  // With a `chain`, the append is refused unwritten when an earlier append of the chain failed.
  // With `keep` (owning `events`, which must not change any more), the journal may hold on to
  // the events once committed and give them to FetchPending() from memory.
  std::future<Status> AppendAsync(const std::string& source, const std::vector<Event>& events,
                                  const std::vector<DeliveryTarget>& targets, const std::string& checkpoint,
                                  const std::vector<Rejection>& rejections, AppendResult* result,
                                  std::shared_ptr<AppendChain> chain = nullptr,
                                  std::shared_ptr<const std::vector<Event>> keep = nullptr);
  // The last committed checkpoint of `source`, or "" when there is none.
  StatusOr<std::string> GetCheckpoint(const std::string& source);

  // Up to `limit` pending deliveries for `sink` with seq above `after_seq`, the oldest first.
  // Events still in memory from their append come from there (PendingDelivery::shared).
  Status FetchPending(const std::string& sink, int limit, std::vector<PendingDelivery>* out, int64_t after_seq = 0);

  // Records a sink's outcomes durably: delivered, dead-lettered (with reasons) and the one
  // transient failure at the head of the batch. Returns after the commit.
  Status RecordOutcomes(const std::string& sink, const DeliveryOutcomes& outcomes);
  // As RecordOutcomes(), without waiting for the commit: a sink worker goes on delivering
  // while its last outcomes are written.
  std::future<Status> RecordOutcomesAsync(const std::string& sink, DeliveryOutcomes outcomes);

  // Records what `source` turned away: an audit entry each, and the raw message of each
  // quarantined one. Returns after the commit.
  Status RecordRejections(const std::string& source, const std::vector<Rejection>& rejections);
  Status ListQuarantine(std::vector<QuarantinedMessage>* out, bool with_raw);
  // The audit chain in id order, entries accepted in [from_ms, to_ms) (to 0: no end).
  Status ReadAudit(int64_t from_ms, int64_t to_ms, std::vector<AuditEntry>* out);
  // Where the chain starts: the last pruned entry's id and hash (0 and 64 zeros when nothing
  // was pruned). Entries are pruned from the front together with the events they are about.
  Status AuditAnchor(int64_t* pruned_through, std::string* hash);
  // The hash an entry must carry, given its fields and `prev`.
  static std::string AuditHash(const AuditEntry& e);

  // Waits until every write queued so far is committed; returns the last commit's status.
  Status Flush();
  // The status of the writer's most recent commit (OK before the first).
  Status LastCommit();

  // Blocks until an append commits after `*generation` was read, or `timeout` passes.
  // Updates `*generation`. Used by sink workers to wake on new events.
  void WaitForAppend(uint64_t* generation, std::chrono::milliseconds timeout);
  // Wakes every WaitForAppend() (used on shutdown).
  void WakeAll();

  // Quota: true while sources should take no new input (above the high water mark, until
  // back below the low one). `*reason` says why.
  bool ShouldPause(std::string* reason) const;
  // Live data bytes (pages in use) as of the last commit.
  int64_t UsedBytes() const { return used_bytes_.load(); }

  // Removes events every sink has finished with (delivered or dropped) that were accepted
  // before `now - retention`; while above the quota's high water mark it also removes the
  // oldest finished events younger than that. Never removes an undelivered event.
  Status Prune(std::chrono::seconds retention, PruneResult* result);

  Status QueueStats(std::vector<SinkQueueStats>* out);
  Status ListDeadLetters(const std::string& sink, std::vector<DeadLetter>* out);
  // Moves a dead letter back to pending; kNotFound if `seq` is not dead for `sink`
  // (any sink when `sink` is empty).
  Status RetryDeadLetter(const std::string& sink, int64_t seq);
  // Marks a dead letter as dropped for good; kNotFound as above.
  Status DropDeadLetter(const std::string& sink, int64_t seq);
  // Queues events again for a sink; returns how many were queued. Pending ones stay as they are.
  StatusOr<int64_t> Replay(const ReplayFilter& filter);
  // The event with id `event_id` and its life; kNotFound when it is not in the journal.
  Status Trace(const std::string& event_id, EventTrace* out);
  StatusOr<int64_t> CountEvents();
  // How many stored payloads each journal key sealed (hex key id, or "plaintext"): a retired
  // key may be removed once no row needs it any more.
  Status PayloadKeys(std::vector<std::pair<std::string, int64_t>>* out);
  // Runs PRAGMA integrity_check; OK when the answer is "ok".
  Status IntegrityCheck();

  const std::string& path() const { return options_.path; }
  // Background checkpoints that copied WAL frames back into the database so far.
  int64_t CheckpointsDone() const { return checkpoints_.load(); }
  // Pending events FetchPending() took from memory, and those it read back, so far.
  int64_t EventsFromMemory() const { return from_memory_.load(); }
  int64_t EventsReadBack() const { return read_back_.load(); }

  // Flow control between the sources and the sinks, through the memory above. True while the
  // committed appends no sink has taken yet fill more than half of recent_bytes, the sink
  // furthest along is within what memory holds, and it took events within the last
  // handoff_patience: the sinks keep up, only behind. A source then takes no more input until
  // they catch up, so that what they deliver comes from memory rather than read back from disk
  // (docs/architecture.md). Sinks that have stopped taking events (the broker down, a far side
  // that hangs) or are working through a backlog on disk hold nothing back: the sources go on
  // at full speed and the journal stores what comes, as ever.
  bool SinksBehind();
  // Waits while SinksBehind(), `at_most` at the longest: until the sinks have caught up, or
  // handoff_patience after one last took events.
  void WaitForSinks(std::chrono::milliseconds at_most);

 private:
  // The events of one committed append, as FetchPending() may take them from memory.
  struct RecentAppend {
    std::shared_ptr<const std::vector<Event>> events;
    std::vector<std::pair<int64_t, const Event*>> by_seq;  // ascending seq
    int64_t accepted_at_ms = 0;
    int64_t bytes = 0;
  };
  struct WriteOp {
    std::function<Status(Db&)> fn;
    bool notify_append = false;
    std::shared_ptr<std::promise<Status>> done;  // the caller's verdict
    std::shared_ptr<AppendChain> chain;          // null: independent of other writes
    std::shared_ptr<RecentAppend> recent;        // filled by `fn`; kept once committed
  };

  explicit Journal(JournalOptions options) : options_(std::move(options)) {}
  Status Init();
  Status Migrate(Db& db);
  // Runs `fn` inside the writer's next transaction and returns its status after the commit.
  Status Write(std::function<Status(Db&)> fn, bool notify_append);
  // Queues `fn` and returns a future for its status.
  std::future<Status> Submit(std::function<Status(Db&)> fn, bool notify_append,
                             std::shared_ptr<AppendChain> chain = nullptr,
                             std::shared_ptr<RecentAppend> recent = nullptr);
  Status Enqueue(std::function<Status(Db&)> fn, bool notify_append, std::shared_ptr<std::promise<Status>> done,
                 std::shared_ptr<AppendChain> chain = nullptr, std::shared_ptr<RecentAppend> recent = nullptr);
  // Keeps a committed append's events for the sinks, within recent_bytes: what was handed over
  // is dropped first, else the newest.
  void Remember(std::shared_ptr<RecentAppend> append);
  // Raises handed_through_ to the last seq of what FetchPending() hands over.
  void NoteHandedThrough(const std::vector<PendingDelivery>& fetched);
  // Under recent_mu_: SinksBehind() as of `now`.
  bool SinksBehindLocked(std::chrono::steady_clock::time_point now) const;
  // Writes an audit entry for each rejection and keeps the quarantined ones (writer thread).
  Status WriteRejections(Db& db, const std::string& source, const std::vector<Rejection>& rejections, int64_t now);
  void WriterLoop();
  void UpdateUsage(Db& db);
  StatusOr<int64_t> SinkId(Db& db, const std::string& sink);
  // Sets the chain's tip from the audit table (or its anchor) on disk.
  Status ReloadAuditTip(Db& db);
  // Puts the certificate a stored signature refers to back in place: the exact bytes received.
  Status RestoreCertificate(Db& db, std::string* signature);
  // Appends an audit entry chained to the last (writer thread only).
  Status Audit(Db& db, int64_t at, const std::string& what, const std::string& event_id, const std::string& subject,
               const std::string& detail);
  // One entry for the events `ids` (with `origins`, for `accepted`): the one-event form when
  // there is one, else the batch form (AuditEntry::detail). Nothing when there is none.
  Status AuditEvents(Db& db, int64_t at, const std::string& what, const std::string& subject,
                     const std::vector<std::string_view>& ids, const std::vector<std::string_view>* origins,
                     const std::string& single_detail);

  // A pooled read connection, returned to the pool on destruction.
  class Reader;
  StatusOr<std::unique_ptr<Db>> TakeReader();
  void ReturnReader(std::unique_ptr<Db> db);

  JournalOptions options_;
  std::unique_ptr<Db> writer_db_;  // used only by the writer thread after Open()

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<WriteOp> queue_;
  bool stopping_ = false;
  std::thread writer_;
  Status last_commit_;

  std::mutex append_mu_;
  std::condition_variable append_cv_;
  uint64_t append_generation_ = 0;

  std::string audit_tip_;      // hash of the last audit entry written (writer thread only)
  int64_t audit_next_id_ = 1;  // id of the next audit entry (writer thread only)
  int64_t data_version_ = 0;   // PRAGMA data_version at the writer's last look (writer thread only)

  std::atomic<int64_t> used_bytes_{0};
  std::atomic<bool> paused_{false};

  std::mutex readers_mu_;
  // Checkpoints on their own thread and connection, when the WAL holds kCheckpointBytes.
  static constexpr int64_t kCheckpointBytes = 16 << 20;
  static_assert(kWalPreallocBytes == 2 * kCheckpointBytes, "the WAL works at about twice the checkpoint threshold");
  Status PreallocateWal(Db& w);
  int checkpoint_pages_ = 4000;  // kCheckpointBytes in pages of this journal's size (set once at open)
  std::atomic<int64_t> checkpoints_{0};
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);
  void CheckpointLoop(Db& db);
  std::atomic<int> wal_pages_{0};
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_stop_ = false;
  std::thread checkpointer_;
  // Certificates by id, as read back (schema 3 stores each once).
  std::mutex certs_mu_;
  std::unordered_map<std::string, std::string> certs_;
  std::vector<std::unique_ptr<Db>> readers_;
  // The latest committed appends, oldest first (Remember()).
  std::mutex recent_mu_;
  std::deque<std::shared_ptr<const RecentAppend>> recent_;
  int64_t recent_bytes_ = 0;
  std::atomic<int64_t> handed_through_{0};  // the highest seq FetchPending() has handed over
  // Under recent_mu_: when handed_through_ last rose (if it ever did), and the sources waiting
  // for it (WaitForSinks()).
  std::chrono::steady_clock::time_point last_handover_;
  std::condition_variable handover_cv_;
  std::atomic<int64_t> from_memory_{0};
  std::atomic<int64_t> read_back_{0};
};

// Unix time in milliseconds.
int64_t NowUnixMs();
// "2026-11-26T14:00:00.123Z", or "-" for 0.
std::string FormatUnixMs(int64_t ms);

}  // namespace gw

#endif  // GW_JOURNAL_H_
