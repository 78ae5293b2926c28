// Journal: the gateway's event store and the promise it makes (DESIGN.md, data flow 3-5).
//
// A SQLite database in WAL mode with synchronous=FULL. Every accepted event is appended
// together with its source's checkpoint in one transaction, and one delivery row per
// (event, sink) records whether that sink has confirmed it. Only after Append() returns OK may
// a source release its input.
//
// Writes go through one writer thread that commits whatever has queued up in one transaction
// (group commit: many appends, one fsync); each caller still gets its own Status. Reads use a
// small pool of read-only connections. Event ids are unique: appending an id already present
// stores nothing and creates no deliveries (dedupe).
//
// Thread-safety: all public methods are thread-safe.
#ifndef GW_JOURNAL_H_
#define GW_JOURNAL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gw/sqlite.h"
#include "mhhs/event.h"
#include "mhhs/status.h"

namespace gw {

struct JournalOptions {
  std::string path;
  bool read_only = false;  // for mhhs-gatewayctl: no writer thread, no schema changes
};

struct AppendResult {
  int64_t appended = 0;    // new events stored
  int64_t duplicates = 0;  // events whose id was already journalled
};

// A pending delivery: the event and how often delivery was tried before.
struct PendingDelivery {
  int64_t seq = 0;
  int attempts = 0;
  Event event;
};

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

class Journal {
 public:
  // Opens or creates the journal, applies migrations, runs quick_check.
  // Errors: kDataLoss (corrupt), kUnavailable / kPermissionDenied (cannot open or write).
  static StatusOr<std::unique_ptr<Journal>> Open(const JournalOptions& options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The schema version this build writes.
  static constexpr int kSchemaVersion = 1;

  // Stores `events` from `source` with a delivery row for each sink in `sinks`, and the
  // source's `checkpoint` ("" leaves it as it is), in one durable transaction.
  // Returns OK only after the commit reached the disk. On error nothing is stored.
  Status Append(const std::string& source, const std::vector<Event>& events,
                const std::vector<std::string>& sinks, const std::string& checkpoint,
                AppendResult* result);

  // The last committed checkpoint of `source`, or "" when there is none.
  StatusOr<std::string> GetCheckpoint(const std::string& source);

  // Up to `limit` pending deliveries for `sink` with seq > `after_seq`, in journal order.
  Status FetchPending(const std::string& sink, int64_t after_seq, int limit,
                      std::vector<PendingDelivery>* out);

  // Records outcomes for `sink`. These are queued to the writer and return without waiting
  // for the commit: losing one in a crash only means a redelivery (at-least-once).
  void MarkDelivered(const std::string& sink, std::vector<int64_t> seqs);
  void MarkAttempted(const std::string& sink, std::vector<int64_t> seqs, const std::string& error);
  void MarkDead(const std::string& sink, int64_t seq, const std::string& reason);

  // Waits until every write queued so far is committed; returns the last commit's status.
  Status Flush();

  // Blocks until an append commits after `*generation` was read, or `timeout` passes.
  // Updates `*generation`. Used by sink workers to wake on new events.
  void WaitForAppend(uint64_t* generation, std::chrono::milliseconds timeout);
  // Wakes every WaitForAppend() (used on shutdown).
  void WakeAll();

  Status QueueStats(std::vector<SinkQueueStats>* out);
  Status ListDeadLetters(const std::string& sink, std::vector<DeadLetter>* out);
  // Moves a dead letter back to pending; kNotFound if `seq` is not dead for `sink`
  // (any sink when `sink` is empty).
  Status RetryDeadLetter(const std::string& sink, int64_t seq);
  // Marks a dead letter as dropped for good; kNotFound as above.
  Status DropDeadLetter(const std::string& sink, int64_t seq);
  StatusOr<int64_t> CountEvents();
  // Runs PRAGMA integrity_check; OK when the answer is "ok".
  Status IntegrityCheck();

  const std::string& path() const { return options_.path; }

 private:
  struct WriteOp {
    std::function<Status(Db&)> fn;
    bool notify_append = false;
    std::shared_ptr<std::promise<Status>> done;  // null when nobody waits
  };

  explicit Journal(JournalOptions options) : options_(std::move(options)) {}
  Status Init();
  Status Migrate(Db& db);
  // Queues `fn` to run inside the writer's next transaction and, if `wait`, blocks for its status.
  Status Write(std::function<Status(Db&)> fn, bool notify_append, bool wait);
  void WriterLoop();
  StatusOr<int64_t> SinkId(Db& db, const std::string& sink);

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

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Db>> readers_;
};

// Unix time in milliseconds.
int64_t NowUnixMs();

}  // namespace gw

#endif  // GW_JOURNAL_H_
