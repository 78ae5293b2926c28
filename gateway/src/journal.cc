#include "gw/journal.h"

#include <chrono>
#include <sstream>

namespace gw {
namespace {

constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE IF NOT EXISTS events(
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  type           TEXT NOT NULL,
  event_code     TEXT NOT NULL,
  sender_mpid    TEXT NOT NULL,
  sender_role    TEXT NOT NULL,
  sender_dip_id  TEXT NOT NULL,
  recipients     TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  payload        BLOB NOT NULL,
  signature      TEXT NOT NULL,
  source         TEXT NOT NULL,
  origin         TEXT NOT NULL,
  accepted_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sinks(
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
-- state: 0 pending, 1 delivered, 2 dead letter, 3 dropped by an operator
CREATE TABLE IF NOT EXISTS deliveries(
  sink_id    INTEGER NOT NULL,
  seq        INTEGER NOT NULL,
  state      INTEGER NOT NULL DEFAULT 0,
  attempts   INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  last_error TEXT,
  PRIMARY KEY(sink_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(sink_id, seq) WHERE state = 0;
CREATE TABLE IF NOT EXISTS checkpoints(
  source     TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
)sql";

// Recipients are stored compactly as "role:mpid:dip_id" joined by ','. None of the three
// ever holds ':' or ',' (MPIDs are letters, roles letters, DIP ids digits).
std::string EncodeRecipients(const std::vector<Party>& rs) {
  std::string out;
  for (const Party& p : rs) {
    if (!out.empty()) out += ',';
    out += p.role + ':' + p.mpid + ':' + p.dip_id;
  }
  return out;
}

std::vector<Party> DecodeRecipients(const std::string& s) {
  std::vector<Party> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    Party p;
    size_t a = item.find(':');
    size_t b = item.find(':', a == std::string::npos ? a : a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    p.role = item.substr(0, a);
    p.mpid = item.substr(a + 1, b - a - 1);
    p.dip_id = item.substr(b + 1);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StatusOr<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options) {
  std::unique_ptr<Journal> j(new Journal(options));
  Status s = j->Init();
  if (!s.ok()) return s;
  return j;
}

Status Journal::Init() {
  auto db = Db::Open(options_.path, !options_.read_only, options_.read_only);
  if (!db.ok()) return db.status();
  if (options_.read_only) {
    // Read-only users (mhhs-gatewayctl) still need the schema to be there.
    auto v = (*db)->QueryInt("PRAGMA user_version");
    if (!v.ok()) return v.status();
    if (*v == 0) return FailedPrecondition(options_.path + ": not a gateway journal (no schema)");
    if (*v > kSchemaVersion) {
      return FailedPrecondition(options_.path + ": journal schema " + std::to_string(*v) +
                                " is newer than this build understands (" + std::to_string(kSchemaVersion) + ")");
    }
    ReturnReader(std::move(db.value()));
    return Status::Ok();
  }
  Db& w = **db;
  auto mode = w.Prepare("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  auto row = (*mode)->Step();
  if (!row.ok()) return row.status().Annotate(options_.path);
  if (!*row || (*mode)->Text(0) != "wal") return FailedPrecondition(options_.path + ": cannot switch the journal to WAL mode");
  (*mode)->Reset();
  GW_RETURN_IF_ERROR(w.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=4000;"));
  auto check = w.Prepare("PRAGMA quick_check");
  if (!check.ok()) return check.status();
  auto crow = (*check)->Step();
  if (!crow.ok()) return crow.status().Annotate(options_.path + ": quick_check");
  if (*crow && (*check)->Text(0) != "ok") {
    return DataLoss(options_.path + ": journal failed quick_check: " + (*check)->Text(0));
  }
  (*check)->Reset();
  GW_RETURN_IF_ERROR(Migrate(w));
  writer_db_ = std::move(db.value());
  writer_ = std::thread([this] { WriterLoop(); });
  return Status::Ok();
}

Status Journal::Migrate(Db& db) {
  auto v = db.QueryInt("PRAGMA user_version");
  if (!v.ok()) return v.status();
  if (*v > kSchemaVersion) {
    return FailedPrecondition(options_.path + ": journal schema " + std::to_string(*v) +
                              " is newer than this build understands (" + std::to_string(kSchemaVersion) + ")");
  }
  if (*v < 1) {
    GW_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status s = db.Exec(kSchemaV1);
    if (s.ok()) s = db.Exec("PRAGMA user_version=1");
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s;
    }
    GW_RETURN_IF_ERROR(db.Exec("COMMIT"));
  }
  return Status::Ok();
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  WakeAll();
}

Status Journal::Write(std::function<Status(Db&)> fn, bool notify_append, bool wait) {
  if (options_.read_only) return FailedPrecondition(options_.path + ": journal opened read-only");
  WriteOp op;
  op.fn = std::move(fn);
  op.notify_append = notify_append;
  std::future<Status> fut;
  if (wait) {
    op.done = std::make_shared<std::promise<Status>>();
    fut = op.done->get_future();
  }
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return Cancelled("journal is closing");
    queue_.push_back(std::move(op));
  }
  queue_cv_.notify_one();
  return wait ? fut.get() : Status::Ok();
}

void Journal::WriterLoop() {
  Db& db = *writer_db_;
  for (;;) {
    std::deque<WriteOp> batch;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) break;
      batch.swap(queue_);
    }
    std::vector<Status> results(batch.size());
    Status commit = db.Exec("BEGIN IMMEDIATE");
    bool any_append = false;
    if (commit.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        // A savepoint per operation: one failing caller does not fail the others.
        Status s = db.Exec("SAVEPOINT op");
        if (s.ok()) s = batch[i].fn(db);
        if (s.ok()) {
          s = db.Exec("RELEASE op");
          any_append |= batch[i].notify_append;
        } else {
          (void)db.Exec("ROLLBACK TO op");
          (void)db.Exec("RELEASE op");
        }
        results[i] = s;
      }
      commit = db.Exec("COMMIT");
      if (!commit.ok()) {
        (void)db.Exec("ROLLBACK");
        any_append = false;
      }
    }
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      last_commit_ = commit;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done->set_value(commit.ok() ? results[i] : commit.Annotate("journal commit"));
    }
    if (any_append) {
      {
        std::lock_guard<std::mutex> lock(append_mu_);
        ++append_generation_;
      }
      append_cv_.notify_all();
    }
  }
}

StatusOr<int64_t> Journal::SinkId(Db& db, const std::string& sink) {
  auto ins = db.Prepare("INSERT OR IGNORE INTO sinks(name) VALUES(?)");
  if (!ins.ok()) return ins.status();
  GW_RETURN_IF_ERROR((*ins)->Bind(1, sink).Run());
  auto sel = db.Prepare("SELECT id FROM sinks WHERE name=?");
  if (!sel.ok()) return sel.status();
  auto row = (*sel)->Bind(1, sink).Step();
  if (!row.ok()) return row.status();
  if (!*row) return Internal("sink id missing for " + sink);
  int64_t id = (*sel)->Int(0);
  (*sel)->Reset();
  return id;
}

Status Journal::Append(const std::string& source, const std::vector<Event>& events,
                       const std::vector<std::string>& sinks, const std::string& checkpoint,
                       AppendResult* result) {
  AppendResult local;
  Status s = Write(
      [&](Db& db) -> Status {
        local = AppendResult();
        std::vector<int64_t> sink_ids;
        for (const std::string& name : sinks) {
          auto id = SinkId(db, name);
          if (!id.ok()) return id.status();
          sink_ids.push_back(*id);
        }
        auto ins = db.Prepare(
            "INSERT OR IGNORE INTO events(id,type,event_code,sender_mpid,sender_role,sender_dip_id,"
            "recipients,created_at,correlation_id,payload,signature,source,origin,accepted_at) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        if (!ins.ok()) return ins.status();
        auto del = db.Prepare("INSERT INTO deliveries(sink_id,seq,updated_at) VALUES(?,?,?)");
        if (!del.ok()) return del.status();
        int64_t now = NowUnixMs();
        for (const Event& e : events) {
          Stmt& st = **ins;
          st.Reset()
              .Bind(1, e.id).Bind(2, e.type).Bind(3, e.event_code)
              .Bind(4, e.sender.mpid).Bind(5, e.sender.role).Bind(6, e.sender.dip_id)
              .Bind(7, EncodeRecipients(e.recipients)).Bind(8, e.created_at).Bind(9, e.correlation_id)
              .BindBlob(10, e.payload).Bind(11, e.signature).Bind(12, source).Bind(13, e.origin)
              .Bind(14, now);
          GW_RETURN_IF_ERROR(st.Run());
          if (db.Changes() == 0) {
            ++local.duplicates;
            continue;
          }
          ++local.appended;
          int64_t seq = sqlite3_last_insert_rowid(db.raw());
          for (int64_t sid : sink_ids) {
            GW_RETURN_IF_ERROR((*del)->Reset().Bind(1, sid).Bind(2, seq).Bind(3, now).Run());
          }
        }
        if (!checkpoint.empty()) {
          auto cp = db.Prepare("INSERT OR REPLACE INTO checkpoints(source,value,updated_at) VALUES(?,?,?)");
          if (!cp.ok()) return cp.status();
          GW_RETURN_IF_ERROR((*cp)->Bind(1, source).Bind(2, checkpoint).Bind(3, now).Run());
        }
        return Status::Ok();
      },
      /*notify_append=*/true, /*wait=*/true);
  if (result) *result = local;
  return s;
}

void Journal::MarkDelivered(const std::string& sink, std::vector<int64_t> seqs) {
  if (seqs.empty()) return;
  (void)Write(
      [this, sink, seqs = std::move(seqs)](Db& db) -> Status {
        auto id = SinkId(db, sink);
        if (!id.ok()) return id.status();
        auto st = db.Prepare("UPDATE deliveries SET state=1, attempts=attempts+1, updated_at=?, last_error=NULL "
                             "WHERE sink_id=? AND seq=? AND state=0");
        if (!st.ok()) return st.status();
        int64_t now = NowUnixMs();
        for (int64_t seq : seqs) GW_RETURN_IF_ERROR((*st)->Reset().Bind(1, now).Bind(2, *id).Bind(3, seq).Run());
        return Status::Ok();
      },
      false, false);
}

void Journal::MarkAttempted(const std::string& sink, std::vector<int64_t> seqs, const std::string& error) {
  if (seqs.empty()) return;
  (void)Write(
      [this, sink, error, seqs = std::move(seqs)](Db& db) -> Status {
        auto id = SinkId(db, sink);
        if (!id.ok()) return id.status();
        auto st = db.Prepare("UPDATE deliveries SET attempts=attempts+1, updated_at=?, last_error=? "
                             "WHERE sink_id=? AND seq=? AND state=0");
        if (!st.ok()) return st.status();
        int64_t now = NowUnixMs();
        for (int64_t seq : seqs) {
          GW_RETURN_IF_ERROR((*st)->Reset().Bind(1, now).Bind(2, error).Bind(3, *id).Bind(4, seq).Run());
        }
        return Status::Ok();
      },
      false, false);
}

void Journal::MarkDead(const std::string& sink, int64_t seq, const std::string& reason) {
  (void)Write(
      [this, sink, seq, reason](Db& db) -> Status {
        auto id = SinkId(db, sink);
        if (!id.ok()) return id.status();
        auto st = db.Prepare("UPDATE deliveries SET state=2, attempts=attempts+1, updated_at=?, last_error=? "
                             "WHERE sink_id=? AND seq=? AND state=0");
        if (!st.ok()) return st.status();
        return (*st)->Bind(1, NowUnixMs()).Bind(2, reason).Bind(3, *id).Bind(4, seq).Run();
      },
      false, false);
}

Status Journal::Flush() {
  return Write([](Db&) { return Status::Ok(); }, false, true);
}

void Journal::WaitForAppend(uint64_t* generation, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(append_mu_);
  append_cv_.wait_for(lock, timeout, [&] { return append_generation_ != *generation; });
  *generation = append_generation_;
}

void Journal::WakeAll() {
  {
    std::lock_guard<std::mutex> lock(append_mu_);
    ++append_generation_;
  }
  append_cv_.notify_all();
}

StatusOr<std::unique_ptr<Db>> Journal::TakeReader() {
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    if (!readers_.empty()) {
      auto db = std::move(readers_.back());
      readers_.pop_back();
      return db;
    }
  }
  return Db::Open(options_.path, false, true);
}

void Journal::ReturnReader(std::unique_ptr<Db> db) {
  std::lock_guard<std::mutex> lock(readers_mu_);
  readers_.push_back(std::move(db));
}

// Borrows a read connection for the scope; returns it to the pool unless it failed.
class Journal::Reader {
 public:
  explicit Reader(Journal* j) : j_(j) {
    auto db = j_->TakeReader();
    if (db.ok()) db_ = std::move(db.value()); else status_ = db.status();
  }
  ~Reader() { if (db_ && keep_) j_->ReturnReader(std::move(db_)); }
  const Status& status() const { return status_; }
  Db& db() { return *db_; }
  void Discard() { keep_ = false; }

 private:
  Journal* j_;
  std::unique_ptr<Db> db_;
  Status status_;
  bool keep_ = true;
};

StatusOr<std::string> Journal::GetCheckpoint(const std::string& source) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare("SELECT value FROM checkpoints WHERE source=?");
  if (!st.ok()) return st.status();
  auto row = (*st)->Bind(1, source).Step();
  if (!row.ok()) return row.status();
  std::string v = *row ? (*st)->Text(0) : "";
  (*st)->Reset();
  return v;
}

Status Journal::FetchPending(const std::string& sink, int64_t after_seq, int limit,
                             std::vector<PendingDelivery>* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare(
      "SELECT d.seq, d.attempts, e.id, e.type, e.event_code, e.sender_mpid, e.sender_role, e.sender_dip_id,"
      " e.recipients, e.created_at, e.correlation_id, e.payload, e.signature, e.origin"
      " FROM deliveries d JOIN events e ON e.seq = d.seq"
      " WHERE d.sink_id = (SELECT id FROM sinks WHERE name=?) AND d.state = 0 AND d.seq > ?"
      " ORDER BY d.seq LIMIT ?");
  if (!st.ok()) return st.status();
  Stmt& s = **st;
  s.Bind(1, sink).Bind(2, after_seq).Bind(3, static_cast<int64_t>(limit));
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    PendingDelivery d;
    d.seq = s.Int(0);
    d.attempts = static_cast<int>(s.Int(1));
    Event& e = d.event;
    e.id = s.Text(2);
    e.type = s.Text(3);
    e.event_code = s.Text(4);
    e.sender.mpid = s.Text(5);
    e.sender.role = s.Text(6);
    e.sender.dip_id = s.Text(7);
    e.recipients = DecodeRecipients(s.Text(8));
    e.created_at = s.Text(9);
    e.correlation_id = s.Text(10);
    e.payload = s.Text(11);
    e.signature = s.Text(12);
    e.origin = s.Text(13);
    out->push_back(std::move(d));
  }
  s.Reset();
  return Status::Ok();
}

Status Journal::QueueStats(std::vector<SinkQueueStats>* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare(
      "SELECT s.name,"
      " (SELECT count(*) FROM deliveries d WHERE d.sink_id=s.id AND d.state=0),"
      " (SELECT count(*) FROM deliveries d WHERE d.sink_id=s.id AND d.state=1),"
      " (SELECT count(*) FROM deliveries d WHERE d.sink_id=s.id AND d.state=2),"
      " (SELECT e.accepted_at FROM deliveries d JOIN events e ON e.seq=d.seq"
      "   WHERE d.sink_id=s.id AND d.state=0 ORDER BY d.seq LIMIT 1)"
      " FROM sinks s ORDER BY s.name");
  if (!st.ok()) return st.status();
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    SinkQueueStats q;
    q.sink = (*st)->Text(0);
    q.pending = (*st)->Int(1);
    q.delivered = (*st)->Int(2);
    q.dead = (*st)->Int(3);
    q.oldest_pending_ms = (*st)->IsNull(4) ? 0 : (*st)->Int(4);
    out->push_back(std::move(q));
  }
  (*st)->Reset();
  return Status::Ok();
}

Status Journal::ListDeadLetters(const std::string& sink, std::vector<DeadLetter>* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare(
      "SELECT d.seq, s.name, e.id, e.type, d.attempts, d.updated_at, coalesce(d.last_error,'')"
      " FROM deliveries d JOIN sinks s ON s.id=d.sink_id JOIN events e ON e.seq=d.seq"
      " WHERE d.state=2 AND (?='' OR s.name=?) ORDER BY d.seq");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, sink).Bind(2, sink);
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    DeadLetter d;
    d.seq = (*st)->Int(0);
    d.sink = (*st)->Text(1);
    d.event_id = (*st)->Text(2);
    d.type = (*st)->Text(3);
    d.attempts = static_cast<int>((*st)->Int(4));
    d.at_ms = (*st)->Int(5);
    d.reason = (*st)->Text(6);
    out->push_back(std::move(d));
  }
  (*st)->Reset();
  return Status::Ok();
}

namespace {
Status ChangeDeadLetter(Db& db, const std::string& sink, int64_t seq, int new_state) {
  auto st = db.Prepare(
      "UPDATE deliveries SET state=?, updated_at=?, attempts=CASE WHEN ?=0 THEN 0 ELSE attempts END"
      " WHERE state=2 AND seq=? AND (?='' OR sink_id=(SELECT id FROM sinks WHERE name=?))");
  if (!st.ok()) return st.status();
  GW_RETURN_IF_ERROR((*st)->Bind(1, new_state).Bind(2, NowUnixMs()).Bind(3, new_state).Bind(4, seq)
                         .Bind(5, sink).Bind(6, sink).Run());
  if (db.Changes() == 0) return NotFound("no dead letter with seq " + std::to_string(seq) + (sink.empty() ? "" : " for sink " + sink));
  return Status::Ok();
}
}  // namespace

Status Journal::RetryDeadLetter(const std::string& sink, int64_t seq) {
  return Write([&](Db& db) { return ChangeDeadLetter(db, sink, seq, 0); }, true, true);
}

Status Journal::DropDeadLetter(const std::string& sink, int64_t seq) {
  return Write([&](Db& db) { return ChangeDeadLetter(db, sink, seq, 3); }, false, true);
}

StatusOr<int64_t> Journal::CountEvents() {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  return r.db().QueryInt("SELECT count(*) FROM events");
}

Status Journal::IntegrityCheck() {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare("PRAGMA integrity_check");
  if (!st.ok()) return st.status();
  auto row = (*st)->Step();
  if (!row.ok()) return row.status();
  std::string v = *row ? (*st)->Text(0) : "";
  (*st)->Reset();
  if (v != "ok") return DataLoss(options_.path + ": integrity_check: " + v);
  return Status::Ok();
}

}  // namespace gw
