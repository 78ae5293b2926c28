#include "gw/journal.h"

#include "gw/event_rows.h"
#include "gw/fs.h"
#include "gw/log.h"
#include "mhhs/json.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <cstdio>
#include <ctime>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace gw {
namespace {

// Authenticated with a sealed quarantined message, so that it cannot pass for a payload.
constexpr std::string_view kQuarantineAad = "quarantine:";
// And a payload with its event's id.
std::string PayloadAad(const std::string& event_id) { return "event:" + event_id; }

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
  seq        INTEGER NOT NULL,
  sink_id    INTEGER NOT NULL,
  state      INTEGER NOT NULL DEFAULT 0,
  attempts   INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  PRIMARY KEY(seq, sink_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(sink_id, seq) WHERE state = 0;
CREATE TABLE IF NOT EXISTS checkpoints(
  source     TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
-- What happened to an event besides being accepted and confirmed (those are in the rows
-- above): failed attempts, dead letters, operator actions, replays, expiry.
CREATE TABLE IF NOT EXISTS event_log(
  id      INTEGER PRIMARY KEY,
  seq     INTEGER NOT NULL,
  sink_id INTEGER,
  at      INTEGER NOT NULL,
  what    TEXT NOT NULL,
  detail  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_log_seq ON event_log(seq);
)sql";

// Version 2: the tamper-evident audit chain and the quarantine.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS audit(
  id       INTEGER PRIMARY KEY,
  at       INTEGER NOT NULL,
  what     TEXT NOT NULL,
  event_id TEXT NOT NULL,
  subject  TEXT NOT NULL,
  detail   TEXT NOT NULL,
  prev     TEXT NOT NULL,
  hash     TEXT NOT NULL
);
-- Where the chain starts after its oldest entries were pruned with their events.
CREATE TABLE IF NOT EXISTS audit_anchor(
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  pruned_through INTEGER NOT NULL,
  hash           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine(
  id     INTEGER PRIMARY KEY,
  at     INTEGER NOT NULL,
  source TEXT NOT NULL,
  origin TEXT NOT NULL,
  reason TEXT NOT NULL,
  raw    BLOB NOT NULL
);
)sql";

// Schema 3: a participant's certificate travels in every signature (about 1.5 kB); the
// journal keeps each certificate once and the signature refers to it.
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE IF NOT EXISTS certificates(
  id      TEXT PRIMARY KEY,
  pem_b64 TEXT NOT NULL
);
)sql";

// In a stored signature, "certificate":"<base64>" becomes "certificate@":"<id>".
constexpr std::string_view kCertMember = "\"certificate\":\"";
constexpr std::string_view kCertRefMember = "\"certificate@\":\"";

// Splits the carried certificate out of `signature`. False when it carries none. `*b64` and
// `*id` may hold the previous call's certificate: when it is the same one (the usual case: one
// participant, one certificate), its id is not worked out again.
bool SplitCertificate(const std::string& signature, std::string* stored, std::string* id, std::string* b64) {
  size_t at = signature.find(kCertMember);
  if (at == std::string::npos) return false;
  size_t begin = at + kCertMember.size();
  size_t end = signature.find('"', begin);  // base64 holds no quote and no escape
  if (end == std::string::npos) return false;
  std::string_view cert(signature.data() + begin, end - begin);
  if (id->empty() || cert != *b64) {
    b64->assign(cert);
    *id = Sha256Hex(*b64).substr(0, 32);
  }
  stored->assign(signature, 0, at);
  stored->append(kCertRefMember);
  stored->append(*id);
  stored->append(signature, end, std::string::npos);
  return true;
}

const std::string kGenesis(64, '0');

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

std::string FormatUnixMs(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

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
  // A new journal gives freed pages back to the file system after pruning.
  auto tables = w.QueryInt("SELECT count(*) FROM sqlite_master");
  if (!tables.ok()) return tables.status().Annotate(options_.path);
  if (*tables == 0) GW_RETURN_IF_ERROR(w.Exec("PRAGMA page_size=16384; PRAGMA auto_vacuum=INCREMENTAL"));
  auto mode = w.Prepare("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  auto row = (*mode)->Step();
  if (!row.ok()) return row.status().Annotate(options_.path);
  if (!*row || (*mode)->Text(0) != "wal") return FailedPrecondition(options_.path + ": cannot switch the journal to WAL mode");
  (*mode)->Reset();
  // Checkpoints (copying the WAL back into the database, with an fsync) run on their own
  // thread, not inside the commit a source or sink is waiting for.
  GW_RETURN_IF_ERROR(w.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=0;"));

  auto check = w.Prepare("PRAGMA quick_check");
  if (!check.ok()) return check.status();
  auto crow = (*check)->Step();
  if (!crow.ok()) return crow.status().Annotate(options_.path + ": quick_check");
  if (*crow && (*check)->Text(0) != "ok") {
    return DataLoss(options_.path + ": journal failed quick_check: " + (*check)->Text(0));
  }
  (*check)->Reset();
  GW_RETURN_IF_ERROR(Migrate(w));
  UpdateUsage(w);
  auto page_size = w.QueryInt("PRAGMA page_size");
  if (page_size.ok() && *page_size > 0) checkpoint_pages_ = static_cast<int>(std::max<int64_t>(256, kCheckpointBytes / *page_size));
  if (options_.preallocate_wal) GW_RETURN_IF_ERROR(PreallocateWal(w).Annotate(options_.path + ": writing the WAL out"));
  GW_RETURN_IF_ERROR(RegisterEventRows(w.raw()).Annotate(options_.path));
  writer_db_ = std::move(db.value());
  sqlite3_wal_hook(writer_db_->raw(), &Journal::OnWalCommit, this);
  auto checkpointer = Db::Open(options_.path, false, false);
  if (!checkpointer.ok()) return checkpointer.status();
  // A connection learns that the database is in WAL mode only when it first reads it; until
  // then sqlite3_wal_checkpoint_v2() does nothing (and says so with -1 frames), which left the
  // WAL to grow until the writer checkpointed it itself.
  auto seen = (*checkpointer)->QueryInt("SELECT count(*) FROM sqlite_master");
  if (!seen.ok()) return seen.status().Annotate(options_.path);
  checkpointer_ = std::thread([this, db = std::move(checkpointer.value())]() mutable {
    NameThread("checkpoint");
    CheckpointLoop(*db);
  });
  writer_ = std::thread([this] {
    NameThread("journal");
    WriterLoop();
  });
  return Status::Ok();
}

Status Journal::PreallocateWal(Db& w) {
  // A WAL that grows makes every commit's fdatasync write the file's new extents as well, and
  // the daemon starts each time with a new one (SQLite deletes it on a clean close). Written
  // out to the size it works at (twice the checkpoint threshold) before the first commit,
  // commits only overwrite blocks the file already has. Zeros are never read as a commit:
  // each frame carries the WAL header's salts and a checksum running on from the frame before,
  // and recovery stops at the first frame without them. Skipped when space is short (a journal
  // close to a full disk needs the room for its data) or the write lock is busy.
  const std::string wal = options_.path + "-wal";
  const off_t want = static_cast<off_t>(kWalPreallocBytes);
  struct statvfs fs;
  if (::statvfs(DirName(wal).c_str(), &fs) != 0 ||
      static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize) < 4.0 * static_cast<double>(want)) {
    return Status::Ok();
  }
  // Under the write lock: no other connection (mhhs-gatewayctl) appends frames past the end
  // that is being extended, restarts the WAL or truncates it.
  if (!w.Exec("BEGIN IMMEDIATE").ok()) return Status::Ok();
  int fd = ::open(wal.c_str(), O_WRONLY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_size < want) {
    std::vector<char> zeros(1 << 20);
    off_t at = st.st_size;
    while (at < want) {
      const size_t n = static_cast<size_t>(std::min<off_t>(want - at, static_cast<off_t>(zeros.size())));
      const ssize_t wrote = ::pwrite(fd, zeros.data(), n, at);
      if (wrote <= 0) break;
      at += wrote;
    }
    ::fdatasync(fd);
  }
  if (fd >= 0) ::close(fd);
  Status end = w.Exec("ROLLBACK");
  // The writer must not start inside a transaction: every BEGIN would fail.
  if (!sqlite3_get_autocommit(w.raw())) return end.ok() ? Internal(options_.path + ": still in a transaction") : end;
  return Status::Ok();
}

int Journal::OnWalCommit(void* self, sqlite3* db, const char*, int pages) {
  auto* j = static_cast<Journal*>(self);
  j->wal_pages_.store(pages);
  if (pages >= j->checkpoint_pages_) {
    if (pages >= j->checkpoint_pages_ * 16) {
      // The background checkpoint cannot keep up (or a reader holds an old snapshot for
      // long): the writer checkpoints itself rather than let the WAL grow without bound.
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
    j->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

void Journal::CheckpointLoop(Db& db) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(checkpoint_mu_);
      checkpoint_cv_.wait_for(lock, std::chrono::seconds(1),
                              [this] { return checkpoint_stop_ || wal_pages_.load() >= checkpoint_pages_; });
      if (checkpoint_stop_) return;
    }
    if (wal_pages_.load() < checkpoint_pages_) continue;
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(db.raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && log >= 0) {
      if (done > 0) checkpoints_.fetch_add(1);
      // Frames left in the WAL count towards the next round; the writer restarts the WAL
      // once every frame is back in the database.
      wal_pages_.store(log - done);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

Status Journal::Migrate(Db& db) {
  auto v = db.QueryInt("PRAGMA user_version");
  if (!v.ok()) return v.status();
  if (*v > kSchemaVersion) {
    return FailedPrecondition(options_.path + ": journal schema " + std::to_string(*v) +
                              " is newer than this build understands (" + std::to_string(kSchemaVersion) + ")");
  }
  // Each step moves the schema up one version in its own transaction.
  const char* steps[] = {kSchemaV1, kSchemaV2, kSchemaV3};
  for (int64_t version = *v; version < kSchemaVersion; ++version) {
    GW_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status s = db.Exec(steps[version]);
    if (s.ok()) s = db.Exec("PRAGMA user_version=" + std::to_string(version + 1));
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s.Annotate("migrating the journal to schema " + std::to_string(version + 1));
    }
    GW_RETURN_IF_ERROR(db.Exec("COMMIT"));
  }
  return ReloadAuditTip(db);
}

Status Journal::ReloadAuditTip(Db& db) {
  // Taken before the tip is read, kept only once it has been: a failed read is tried again
  // on the next transaction.
  auto version = db.QueryInt("PRAGMA data_version");
  data_version_ = -1;
  auto tip = db.Prepare("SELECT hash, id FROM audit ORDER BY id DESC LIMIT 1");
  if (!tip.ok()) return tip.status();
  auto row = (*tip)->Step();
  if (!row.ok()) return row.status();
  if (*row) {
    audit_tip_ = (*tip)->Text(0);
    audit_next_id_ = (*tip)->Int(1) + 1;
    (*tip)->Reset();
    if (version.ok()) data_version_ = *version;
    return Status::Ok();
  }
  (*tip)->Reset();
  // An empty chain continues from the anchor, if entries were pruned.
  auto anchor = db.Prepare("SELECT pruned_through, hash FROM audit_anchor WHERE id = 1");
  if (!anchor.ok()) return anchor.status();
  auto arow = (*anchor)->Step();
  if (!arow.ok()) return arow.status();
  audit_tip_ = *arow ? (*anchor)->Text(1) : kGenesis;
  audit_next_id_ = *arow ? (*anchor)->Int(0) + 1 : 1;
  (*anchor)->Reset();
  if (version.ok()) data_version_ = *version;
  return Status::Ok();
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  WakeAll();
}

Status Journal::Write(std::function<Status(Db&)> fn, bool notify_append) {
  return Submit(std::move(fn), notify_append).get();
}

std::future<Status> Journal::Submit(std::function<Status(Db&)> fn, bool notify_append,
                                    std::shared_ptr<AppendChain> chain, std::shared_ptr<RecentAppend> recent) {
  std::promise<Status> failed;
  if (options_.read_only) {
    failed.set_value(FailedPrecondition(options_.path + ": journal opened read-only"));
    return failed.get_future();
  }
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> fut = done->get_future();
  Status queued = Enqueue(std::move(fn), notify_append, std::move(done), std::move(chain), std::move(recent));
  if (!queued.ok()) {
    failed.set_value(queued);
    return failed.get_future();
  }
  return fut;
}

Status Journal::Enqueue(std::function<Status(Db&)> fn, bool notify_append, std::shared_ptr<std::promise<Status>> done,
                        std::shared_ptr<AppendChain> chain, std::shared_ptr<RecentAppend> recent) {
  WriteOp op;
  op.fn = std::move(fn);
  op.notify_append = notify_append;
  op.done = std::move(done);
  op.chain = std::move(chain);
  op.recent = std::move(recent);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return Cancelled("journal is closing");
    queue_.push_back(std::move(op));
  }
  queue_cv_.notify_one();
  return Status::Ok();
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
    // The audit chain's tip moves only with what commits.
    const std::string tip_before_batch = audit_tip_;
    const int64_t next_before_batch = audit_next_id_;
    Status commit = db.Exec("BEGIN IMMEDIATE");
    bool any_append = false;
    if (commit.ok()) {
      // Another process (mhhs-gatewayctl replay, dead-letters retry) may have extended the
      // audit chain since this writer's last commit: continue from what is on disk.
      auto version = db.QueryInt("PRAGMA data_version");
      if (version.ok() && *version != data_version_) commit = ReloadAuditTip(db);
    }
    if (commit.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].chain && batch[i].chain->broken.load()) {
          results[i] = Unavailable("not committed: an earlier batch of the same source failed");
          continue;
        }
        // A savepoint per operation: one failing caller does not fail the others.
        const std::string tip_before_op = audit_tip_;
        const int64_t next_before_op = audit_next_id_;
        Status s = db.Exec("SAVEPOINT op");
        if (s.ok()) s = batch[i].fn(db);
        if (s.ok()) {
          s = db.Exec("RELEASE op");
          any_append |= batch[i].notify_append;
        } else {
          (void)db.Exec("ROLLBACK TO op");
          (void)db.Exec("RELEASE op");
          audit_tip_ = tip_before_op;
          audit_next_id_ = next_before_op;
          if (batch[i].chain) batch[i].chain->broken.store(true);
        }
        results[i] = s;
        if (!s.ok() && sqlite3_get_autocommit(db.raw())) {
          // SQLite rolled the whole transaction back (disk full, I/O error): nothing of this
          // batch is stored, so the rest must not run outside a transaction.
          for (size_t k = i + 1; k < batch.size(); ++k) results[k] = s;
          commit = s;
          break;
        }
      }
      if (commit.ok()) commit = db.Exec("COMMIT");
      if (!commit.ok()) {
        if (!sqlite3_get_autocommit(db.raw())) (void)db.Exec("ROLLBACK");
        any_append = false;
      }
    }
    if (!commit.ok()) {
      // Whatever failed (BEGIN, the audit tip's reload, an op, COMMIT), the connection must
      // not stay inside a transaction: it would hold the write lock and refuse every BEGIN.
      if (!sqlite3_get_autocommit(db.raw())) (void)db.Exec("ROLLBACK");
      for (const WriteOp& op : batch) {
        if (op.chain) op.chain->broken.store(true);
      }
      // Take the chain's tip from what is on disk, whatever SQLite kept or rolled back.
      if (!ReloadAuditTip(db).ok()) {
        audit_tip_ = tip_before_batch;
        audit_next_id_ = next_before_batch;
      }
    }
    if (commit.ok()) {
      // Right after the commit, before anyone hears of it: a sink that reads the new rows
      // finds their events in memory.
      for (size_t i = 0; i < batch.size(); ++i) {
        if (results[i].ok() && batch[i].recent && !batch[i].recent->by_seq.empty()) Remember(std::move(batch[i].recent));
      }
    }
    UpdateUsage(db);
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

void Journal::UpdateUsage(Db& db) {
  auto pages = db.QueryInt("PRAGMA page_count");
  auto free_pages = db.QueryInt("PRAGMA freelist_count");
  auto page_size = db.QueryInt("PRAGMA page_size");
  if (!pages.ok() || !free_pages.ok() || !page_size.ok()) return;
  int64_t used = (*pages - *free_pages) * *page_size;
  used_bytes_.store(used);
  if (options_.max_bytes <= 0) return;
  if (used >= options_.max_bytes * options_.high_water_pct / 100) paused_.store(true);
  else if (used < options_.max_bytes * options_.low_water_pct / 100) paused_.store(false);
}

bool Journal::ShouldPause(std::string* reason) const {
  if (!paused_.load()) return false;
  if (reason) {
    *reason = "journal holds " + std::to_string(used_bytes_.load()) + " bytes, above the high water mark (" +
              std::to_string(options_.high_water_pct) + "% of max_bytes " + std::to_string(options_.max_bytes) +
              "); sources resume below " + std::to_string(options_.low_water_pct) + "%";
  }
  return true;
}

StatusOr<int64_t> Journal::SinkId(Db& db, const std::string& sink) {
  auto sel = db.Prepare("SELECT id FROM sinks WHERE name=?");
  if (!sel.ok()) return sel.status();
  auto row = (*sel)->Bind(1, sink).Step();
  if (!row.ok()) return row.status();
  if (*row) {
    int64_t id = (*sel)->Int(0);
    (*sel)->Reset();
    return id;
  }
  (*sel)->Reset();
  auto ins = db.Prepare("INSERT INTO sinks(name) VALUES(?)");
  if (!ins.ok()) return ins.status();
  GW_RETURN_IF_ERROR((*ins)->Bind(1, sink).Run());
  return sqlite3_last_insert_rowid(db.raw());
}

std::string Journal::AuditHash(const AuditEntry& e) {
  std::string text = e.prev + "\n" + std::to_string(e.id) + "\n" + std::to_string(e.at_ms) + "\n" + e.what + "\n" +
                     e.event_id + "\n" + e.subject + "\n" + e.detail;
  return Sha256Hex(text);  // not SHA256(): OpenSSL 3 looks the algorithm up on every call of that
}

Status Journal::Audit(Db& db, int64_t at, const std::string& what, const std::string& event_id,
                      const std::string& subject, const std::string& detail) {
  AuditEntry e{audit_next_id_, at, what, event_id, subject, detail, audit_tip_, ""};
  e.hash = AuditHash(e);
  auto st = db.Prepare("INSERT INTO audit(id,at,what,event_id,subject,detail,prev,hash) VALUES(?,?,?,?,?,?,?,?)");
  if (!st.ok()) return st.status();
  GW_RETURN_IF_ERROR((*st)->Bind(1, e.id).Bind(2, e.at_ms).Bind(3, e.what).Bind(4, e.event_id).Bind(5, e.subject)
                         .Bind(6, e.detail).Bind(7, e.prev).Bind(8, e.hash).Run());
  audit_tip_ = e.hash;
  ++audit_next_id_;
  return Status::Ok();
}

Status Journal::AuditEvents(Db& db, int64_t at, const std::string& what, const std::string& subject,
                            const std::vector<std::string_view>& ids, const std::vector<std::string_view>* origins,
                            const std::string& single_detail) {
  if (ids.empty()) return Status::Ok();
  if (ids.size() == 1) {
    return Audit(db, at, what, std::string(ids[0]), subject, origins ? std::string((*origins)[0]) : single_detail);
  }
  // A batch is one entry: one hash and one row instead of one per event (a quarter of the
  // writer's work per event, measured with issue #9's benchmark).
  std::string detail;
  detail.reserve(ids.size() * (origins ? 48 : 24));
  JsonWriter w(&detail);
  w.BeginArray();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (origins) {
      w.BeginArray();
      w.String(ids[i]);
      w.String((*origins)[i]);
      w.EndArray();
    } else {
      w.String(ids[i]);
    }
  }
  w.EndArray();
  return Audit(db, at, what, "", subject, detail);
}

namespace {

std::string EventIdOf(Db& db, int64_t seq) {
  auto st = db.Prepare("SELECT id FROM events WHERE seq=?");
  if (!st.ok()) return "";
  auto row = (*st)->Bind(1, seq).Step();
  std::string id = row.ok() && *row ? (*st)->Text(0) : "";
  (*st)->Reset();
  return id;
}

Status LogEvent(Db& db, int64_t seq, int64_t sink_id, int64_t at, const char* what, const std::string& detail) {
  auto st = db.Prepare("INSERT INTO event_log(seq,sink_id,at,what,detail) VALUES(?,?,?,?,?)");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, seq);
  if (sink_id > 0) (*st)->Bind(2, sink_id); else (*st)->BindNull(2);
  return (*st)->Bind(3, at).Bind(4, std::string_view(what)).Bind(5, detail).Run();
}

// After an INSERT OR IGNORE ... SELECT FROM gw_event_rows() ... ORDER BY rowid of `events`,
// which inserted `inserted` rows: the seq each event got, 0 for those skipped as already
// journaled (or repeated in the batch). The rows are inserted in the batch's order, each with a
// seq above `before`, the largest before the statement; when none was skipped they are
// consecutive (AUTOINCREMENT, under the write lock).
Status SeqsOfInserted(Db& db, const std::vector<Event>& events, int64_t before, int64_t inserted,
                      std::vector<int64_t>* seqs) {
  seqs->assign(events.size(), 0);
  if (inserted <= 0) return Status::Ok();
  if (static_cast<size_t>(inserted) == events.size()) {
    const int64_t first = sqlite3_last_insert_rowid(db.raw()) - inserted + 1;
    for (size_t i = 0; i < events.size(); ++i) (*seqs)[i] = first + static_cast<int64_t>(i);
    return Status::Ok();
  }
  // A skipped row may still have used up a seq: match the new rows to the batch, in order.
  auto st = db.Prepare("SELECT seq, id FROM events WHERE seq > ? ORDER BY seq");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, before);
  size_t i = 0;
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const std::string_view id = (*st)->View(1);
    while (i < events.size() && events[i].id != id) ++i;
    if (i == events.size()) {
      (*st)->Reset();
      return Internal("journal: appended event " + std::string(id) + " is not in its batch");
    }
    (*seqs)[i++] = (*st)->Int(0);
  }
  (*st)->Reset();
  return Status::Ok();
}

}  // namespace

Status Journal::Append(const std::string& source, const std::vector<Event>& events,
                       const std::vector<DeliveryTarget>& targets, const std::string& checkpoint,
                       AppendResult* result) {
  static const std::vector<Rejection> kNone;
  return AppendAsync(source, events, targets, checkpoint, kNone, result).get();
}

std::future<Status> Journal::AppendAsync(const std::string& source, const std::vector<Event>& events,
                                         const std::vector<DeliveryTarget>& targets, const std::string& checkpoint,
                                         const std::vector<Rejection>& rejections, AppendResult* result,
                                         std::shared_ptr<AppendChain> chain,
                                         std::shared_ptr<const std::vector<Event>> keep) {
  // What the writer needs beyond the caller's references, prepared here on the caller's
  // thread so that the writer thread only writes: sealed payloads, and each signature with its
  // certificate split off (certificates are stored once; INSERT OR IGNORE, usually one).
  struct Prepared {
    std::vector<std::string> sealed;
    std::vector<std::string> signatures;
    std::map<std::string, std::string> new_certs;  // id -> base64
    std::vector<std::string> recipients;           // encoded, each list once when events in a row share it
    std::vector<size_t> recipients_of;             // per event, its index in `recipients`
  };
  auto prep = std::make_shared<Prepared>();
  prep->recipients_of.resize(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    if (i == 0 || events[i].recipients != events[i - 1].recipients) {
      prep->recipients.push_back(EncodeRecipients(events[i].recipients));
    }
    prep->recipients_of[i] = prep->recipients.size() - 1;
  }
  if (options_.cipher) {
    prep->sealed.reserve(events.size());
    for (const Event& e : events) prep->sealed.push_back(options_.cipher->Seal(e.payload, PayloadAad(e.id)));
  }
  prep->signatures.resize(events.size());
  {
    std::string id, b64;
    for (size_t i = 0; i < events.size(); ++i) {
      if (!SplitCertificate(events[i].signature, &prep->signatures[i], &id, &b64)) {
        prep->signatures[i] = events[i].signature;
        continue;
      }
      if (prep->new_certs.find(id) == prep->new_certs.end()) prep->new_certs.emplace(id, b64);
    }
  }
  const std::vector<Event>* evs = &events;
  const std::vector<DeliveryTarget>* tgs = &targets;
  const std::vector<Rejection>* rejs = &rejections;
  std::shared_ptr<RecentAppend> recent;
  if (keep && keep.get() == &events && options_.recent_bytes > 0 && !events.empty() && !targets.empty()) {
    recent = std::make_shared<RecentAppend>();
    recent->events = std::move(keep);
    recent->by_seq.reserve(events.size());
    // What keeping it holds: every event of the batch (duplicates too), and what else the
    // caller's batch holds that is as large (quarantined messages).
    for (const Event& e : events) {
      recent->bytes += static_cast<int64_t>(e.payload.capacity() + e.signature.capacity() + e.id.capacity() +
                                            e.origin.capacity() + e.created_at.capacity()) + 512;
    }
    for (const Rejection& r : rejections) recent->bytes += static_cast<int64_t>(r.raw.capacity());
  }
  return Submit(
      [this, prep, evs, tgs, rejs, source, checkpoint, result, recent](Db& db) -> Status {
        const std::vector<Event>& events = *evs;
        AppendResult local;
        int64_t now = NowUnixMs();
        std::vector<std::pair<int64_t, int64_t>> sinks;  // id, expires_at
        for (const DeliveryTarget& t : *tgs) {
          auto id = SinkId(db, t.sink);
          if (!id.ok()) return id.status();
          sinks.emplace_back(*id, t.expiry_s > 0 ? now + t.expiry_s * 1000 : 0);
        }
        if (!prep->new_certs.empty()) {
          auto cert = db.Prepare("INSERT OR IGNORE INTO certificates(id, pem_b64) VALUES(?,?)");
          if (!cert.ok()) return cert.status();
          for (const auto& [id, b64] : prep->new_certs) {
            GW_RETURN_IF_ERROR((*cert)->Reset().Bind(1, id).Bind(2, b64).Run());
          }
        }
        // The whole batch with one statement (gw_event_rows reads it where it is): a statement
        // per event spent more on binding and on running the statement than on the rows.
        std::vector<EventRow> rows(events.size());
        for (size_t i = 0; i < events.size(); ++i) {
          rows[i] = EventRow{&events[i],
                             prep->sealed.empty() ? std::string_view(events[i].payload) : std::string_view(prep->sealed[i]),
                             prep->signatures[i], prep->recipients[prep->recipients_of[i]]};
        }
        auto before = db.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
        if (!before.ok()) return before.status();
        auto ins = db.Prepare(
            "INSERT OR IGNORE INTO events(id,type,event_code,sender_mpid,sender_role,sender_dip_id,"
            "recipients,created_at,correlation_id,payload,signature,source,origin,accepted_at) "
            "SELECT id,type,event_code,sender_mpid,sender_role,sender_dip_id,recipients,created_at,"
            "correlation_id,payload,signature,?2,origin,?3 FROM gw_event_rows(?1) ORDER BY rowid");
        if (!ins.ok()) return ins.status();
        Status inserted_ok = (*ins)->BindPointer(1, &rows, kEventRowsPointer).Bind(2, source).Bind(3, now).Run();
        (*ins)->Reset();  // lets go of `rows`
        GW_RETURN_IF_ERROR(inserted_ok);
        const int64_t inserted = db.Changes();
        std::vector<int64_t> seqs;
        GW_RETURN_IF_ERROR(SeqsOfInserted(db, events, *before, inserted, &seqs));
        if (!sinks.empty() && inserted > 0) {
          auto del = db.Prepare("INSERT INTO deliveries(seq,sink_id,updated_at,expires_at) "
                                "SELECT seq,?2,?3,?4 FROM events WHERE seq > ?1");
          if (!del.ok()) return del.status();
          for (const auto& [sid, expires] : sinks) {
            GW_RETURN_IF_ERROR((*del)->Reset().Bind(1, *before).Bind(2, sid).Bind(3, now).Bind(4, expires).Run());
          }
        }
        std::vector<std::string_view> accepted_ids, accepted_origins;
        accepted_ids.reserve(events.size());
        accepted_origins.reserve(events.size());
        for (size_t i = 0; i < events.size(); ++i) {
          if (seqs[i] == 0) {
            ++local.duplicates;
            continue;
          }
          ++local.appended;
          accepted_ids.push_back(events[i].id);
          accepted_origins.push_back(events[i].origin);
          if (recent) recent->by_seq.emplace_back(seqs[i], &events[i]);
        }
        GW_RETURN_IF_ERROR(AuditEvents(db, now, "accepted", source, accepted_ids, &accepted_origins, ""));
        if (!checkpoint.empty()) {
          auto cp = db.Prepare("INSERT OR REPLACE INTO checkpoints(source,value,updated_at) VALUES(?,?,?)");
          if (!cp.ok()) return cp.status();
          GW_RETURN_IF_ERROR((*cp)->Bind(1, source).Bind(2, checkpoint).Bind(3, now).Run());
        }
        GW_RETURN_IF_ERROR(WriteRejections(db, source, *rejs, now));
        if (recent) recent->accepted_at_ms = now;
        if (result) *result = local;
        return Status::Ok();
      },
      /*notify_append=*/!events.empty(), std::move(chain), recent);
}

Status Journal::RecordOutcomes(const std::string& sink, const DeliveryOutcomes& o) {
  return RecordOutcomesAsync(sink, o).get();
}

std::future<Status> Journal::RecordOutcomesAsync(const std::string& sink, DeliveryOutcomes outcomes) {
  if (outcomes.delivered.empty() && outcomes.dead.empty() && outcomes.failed_seq == 0) {
    std::promise<Status> nothing;
    nothing.set_value(Status::Ok());
    return nothing.get_future();
  }
  auto held = std::make_shared<const DeliveryOutcomes>(std::move(outcomes));
  return Submit(
      [this, sink, held](Db& db) -> Status {
        const DeliveryOutcomes& o = *held;
        auto id = SinkId(db, sink);
        if (!id.ok()) return id.status();
        int64_t now = NowUnixMs();
        if (!o.delivered.empty()) {
          auto st = db.Prepare("UPDATE deliveries SET state=1, attempts=attempts+1, updated_at=? "
                               "WHERE seq=? AND sink_id=? AND state=0");
          if (!st.ok()) return st.status();
          std::deque<std::string> looked_up;  // ids the caller did not give (a deque: ids point into it)
          std::vector<std::string_view> ids;
          ids.reserve(o.delivered.size());
          for (size_t i = 0; i < o.delivered.size(); ++i) {
            int64_t seq = o.delivered[i];
            GW_RETURN_IF_ERROR((*st)->Reset().Bind(1, now).Bind(2, seq).Bind(3, *id).Run());
            if (db.Changes() == 0) continue;
            if (i < o.delivered_ids.size()) {
              ids.push_back(o.delivered_ids[i]);
            } else {
              looked_up.push_back(EventIdOf(db, seq));
              ids.push_back(looked_up.back());
            }
          }
          GW_RETURN_IF_ERROR(AuditEvents(db, now, "delivered", sink, ids, nullptr, "confirmed by the far side"));
        }
        if (!o.dead.empty()) {
          auto st = db.Prepare("UPDATE deliveries SET state=2, attempts=attempts+1, updated_at=?, last_error=? "
                               "WHERE seq=? AND sink_id=? AND state=0");
          if (!st.ok()) return st.status();
          for (const auto& [seq, reason] : o.dead) {
            GW_RETURN_IF_ERROR((*st)->Reset().Bind(1, now).Bind(2, reason).Bind(3, seq).Bind(4, *id).Run());
            GW_RETURN_IF_ERROR(LogEvent(db, seq, *id, now, "dead-lettered", reason));
            GW_RETURN_IF_ERROR(Audit(db, now, "dead-lettered", EventIdOf(db, seq), sink, reason));
          }
        }
        if (o.failed_seq != 0) {
          auto st = db.Prepare("UPDATE deliveries SET attempts=attempts+1, updated_at=?, last_error=? "
                               "WHERE seq=? AND sink_id=? AND state=0");
          if (!st.ok()) return st.status();
          GW_RETURN_IF_ERROR((*st)->Bind(1, now).Bind(2, o.failed_error).Bind(3, o.failed_seq).Bind(4, *id).Run());
          GW_RETURN_IF_ERROR(LogEvent(db, o.failed_seq, *id, now, "attempt-failed", o.failed_error));
        }
        return Status::Ok();
      },
      false);
}

Status Journal::RecordRejections(const std::string& source, const std::vector<Rejection>& rejections) {
  if (rejections.empty()) return Status::Ok();
  return Write([&](Db& db) -> Status { return WriteRejections(db, source, rejections, NowUnixMs()); }, false);
}

Status Journal::WriteRejections(Db& db, const std::string& source, const std::vector<Rejection>& rejections,
                                int64_t now) {
  for (const Rejection& r : rejections) {
    if (r.quarantine) {
      auto st = db.Prepare("INSERT INTO quarantine(at,source,origin,reason,raw) VALUES(?,?,?,?,?)");
      if (!st.ok()) return st.status();
      const std::string raw = options_.cipher ? options_.cipher->Seal(r.raw, kQuarantineAad) : r.raw;
      GW_RETURN_IF_ERROR((*st)->Bind(1, now).Bind(2, source).Bind(3, r.unit).Bind(4, r.reason).BindBlob(5, raw).Run());
    }
    GW_RETURN_IF_ERROR(Audit(db, now, r.quarantine ? "quarantined" : "rejected", "", source, r.unit + ": " + r.reason));
  }
  return Status::Ok();
}

Status Journal::LastCommit() {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return last_commit_;
}

Status Journal::Flush() {
  return Write([](Db&) { return Status::Ok(); }, false);
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

// Borrows a read connection for the scope and returns it to the pool.
class Journal::Reader {
 public:
  explicit Reader(Journal* j) : j_(j) {
    auto db = j_->TakeReader();
    if (db.ok()) db_ = std::move(db.value()); else status_ = db.status();
  }
  ~Reader() { if (db_) j_->ReturnReader(std::move(db_)); }
  const Status& status() const { return status_; }
  Db& db() { return *db_; }

 private:
  Journal* j_;
  std::unique_ptr<Db> db_;
  Status status_;
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

namespace {

constexpr const char* kEventColumns =
    "e.id, e.type, e.event_code, e.sender_mpid, e.sender_role, e.sender_dip_id,"
    " e.recipients, e.created_at, e.correlation_id, e.payload, e.signature, e.origin";

// Reads kEventColumns starting at column `c`, opening a sealed payload with `cipher`.
Status ReadEvent(const Stmt& s, int c, const PayloadCipher* cipher, Event* e) {
  e->id = s.Text(c);
  e->type = s.Text(c + 1);
  e->event_code = s.Text(c + 2);
  e->sender.mpid = s.Text(c + 3);
  e->sender.role = s.Text(c + 4);
  e->sender.dip_id = s.Text(c + 5);
  e->recipients = DecodeRecipients(s.Text(c + 6));
  e->created_at = s.Text(c + 7);
  e->correlation_id = s.Text(c + 8);
  e->signature = s.Text(c + 10);
  e->origin = s.Text(c + 11);
  // A sealed payload is opened straight from SQLite's copy of the row.
  const std::string_view stored = s.View(c + 9);
  if (!PayloadCipher::IsSealed(stored)) {
    e->payload.assign(stored);
    return Status::Ok();
  }
  if (!cipher) return FailedPrecondition("event " + e->id + ": its payload is encrypted and no journal key is configured ([security] journal_key_file)");
  auto plain = cipher->Open(stored, PayloadAad(e->id));
  if (!plain.ok()) return plain.status().Annotate("event " + e->id);
  e->payload = std::move(plain.value());
  return Status::Ok();
}

}  // namespace

Status Journal::RestoreCertificate(Db& db, std::string* signature) {
  size_t at = signature->find(kCertRefMember);
  if (at == std::string::npos) return Status::Ok();
  size_t begin = at + kCertRefMember.size();
  size_t end = signature->find('"', begin);
  if (end == std::string::npos) return DataLoss("stored signature: unterminated certificate reference");
  const std::string id = signature->substr(begin, end - begin);
  std::string b64;
  {
    std::lock_guard<std::mutex> lock(certs_mu_);
    auto it = certs_.find(id);
    if (it != certs_.end()) b64 = it->second;
  }
  if (b64.empty()) {
    auto st = db.Prepare("SELECT pem_b64 FROM certificates WHERE id=?");
    if (!st.ok()) return st.status();
    auto row = (*st)->Bind(1, id).Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      (*st)->Reset();
      return DataLoss("stored signature refers to certificate " + id + ", which the journal does not hold");
    }
    b64 = (*st)->Text(0);
    (*st)->Reset();
    std::lock_guard<std::mutex> lock(certs_mu_);
    if (certs_.size() > 1024) certs_.clear();
    certs_.emplace(id, b64);
  }
  std::string restored;
  restored.reserve(signature->size() + b64.size());
  restored.append(*signature, 0, at);
  restored.append(kCertMember);
  restored.append(b64);
  restored.append(*signature, end, std::string::npos);
  signature->swap(restored);
  return Status::Ok();
}

void Journal::Remember(std::shared_ptr<RecentAppend> append) {
  std::lock_guard<std::mutex> lock(recent_mu_);
  recent_bytes_ += append->bytes;
  recent_.push_back(std::move(append));
  const int64_t handed = handed_through_.load();
  while (recent_bytes_ > options_.recent_bytes && !recent_.empty()) {
    // What the sinks have been given goes first. Otherwise they are behind: the appends they
    // come to next stay, and the newest is dropped (read back when they get there). Dropping
    // the oldest instead would drop each append just before a sink behind came to it.
    const bool handed_over = recent_.front()->by_seq.back().first <= handed;
    recent_bytes_ -= handed_over ? recent_.front()->bytes : recent_.back()->bytes;
    if (handed_over) {
      recent_.pop_front();
    } else {
      recent_.pop_back();
    }
  }
}

void Journal::NoteHandedThrough(const std::vector<PendingDelivery>& fetched) {
  if (fetched.empty()) return;
  int64_t last = fetched.back().seq, seen = handed_through_.load();
  while (last > seen && !handed_through_.compare_exchange_weak(seen, last)) {
  }
  if (last <= seen) return;  // nothing new: a sink reading older rows again is not catching up
  {
    std::lock_guard<std::mutex> lock(recent_mu_);
    last_handover_ = std::chrono::steady_clock::now();
  }
  handover_cv_.notify_all();
}

bool Journal::SinksBehindLocked(std::chrono::steady_clock::time_point now) const {
  if (options_.handoff_patience.count() <= 0 || options_.recent_bytes <= 0 || recent_.empty()) return false;
  // Nothing handed over yet (seqs start at 1), or not lately.
  const int64_t handed = handed_through_.load();
  if (handed == 0 || now - last_handover_ >= options_.handoff_patience) return false;
  // Seqs ascend along recent_. A sink still short of what memory holds (a backlog from before
  // a restart or an outage) reads from disk whatever the sources do: holding them back would
  // only stall them until it is through.
  if (handed < recent_.front()->by_seq.front().first - 1) return false;
  // The appends not yet handed over are at the end.
  int64_t waiting = 0;
  for (auto it = recent_.rbegin(); it != recent_.rend() && (*it)->by_seq.front().first > handed; ++it) {
    waiting += (*it)->bytes;
  }
  // Half: the appends still in the sources' hands (signed, committing) need room too, or the
  // newest would be dropped from memory before a sink came to it.
  return waiting > options_.recent_bytes / 2;
}

bool Journal::SinksBehind() {
  std::lock_guard<std::mutex> lock(recent_mu_);
  return SinksBehindLocked(std::chrono::steady_clock::now());
}

void Journal::WaitForSinks(std::chrono::milliseconds at_most) {
  const auto end = std::chrono::steady_clock::now() + at_most;
  std::unique_lock<std::mutex> lock(recent_mu_);
  // Each hand-over moves the deadline on: the wait lasts while a sink keeps taking events and
  // is still behind, and ends handoff_patience after the last time one took any.
  for (auto now = std::chrono::steady_clock::now(); now < end && SinksBehindLocked(now);
       now = std::chrono::steady_clock::now()) {
    handover_cv_.wait_until(lock, std::min(end, last_handover_ + options_.handoff_patience));
  }
}

Status Journal::FetchPending(const std::string& sink, int limit, std::vector<PendingDelivery>* out, int64_t after_seq) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  out->reserve(out->size() + static_cast<size_t>(std::min(limit, 4096)));  // no event moved as the batch grows
  // The appends still in memory, and the lowest seq they hold: rows below it are read with
  // their events in one query; from it on, only the delivery rows are read and the events
  // taken from memory (an event not there, appended by another process, is read by itself).
  std::vector<std::shared_ptr<const RecentAppend>> recent;
  {
    std::lock_guard<std::mutex> lock(recent_mu_);
    // Only the appends that may hold a seq after the cursor (seqs ascend along recent_).
    auto first = std::partition_point(recent_.begin(), recent_.end(), [after_seq](const auto& a) {
      return a->by_seq.back().first <= after_seq;
    });
    recent.assign(first, recent_.end());
  }
  const int64_t recent_from = recent.empty() ? INT64_MAX : recent.front()->by_seq.front().first;
  // A row that cannot be read (its key retired, its bytes damaged) must not stall the sink:
  // it is handed over with the reason, and the sink worker dead-letters it.
  auto read_event = [&](const Stmt& s, int c, PendingDelivery* d) {
    Status read = ReadEvent(s, c, options_.cipher.get(), &d->event);
    if (read.ok()) read = RestoreCertificate(r.db(), &d->event.signature);
    if (!read.ok()) d->unreadable = read.ToString();
  };
  // A delivery row's own columns: seq, attempts, expires_at.
  auto delivery = [](const Stmt& s) {
    PendingDelivery d;
    d.seq = s.Int(0);
    d.attempts = static_cast<int>(s.Int(1));
    d.expires_at_ms = s.Int(2);
    return d;
  };
  int64_t taken = 0;
  if (after_seq < recent_from - 1) {
    auto st = r.db().Prepare(std::string("SELECT d.seq, d.attempts, d.expires_at, e.accepted_at, ") + kEventColumns +
                             " FROM deliveries d JOIN events e ON e.seq = d.seq"
                             " WHERE d.sink_id = (SELECT id FROM sinks WHERE name=?) AND d.state = 0 AND d.seq > ?"
                             " AND d.seq < ? ORDER BY d.seq LIMIT ?");
    if (!st.ok()) return st.status();
    Stmt& s = **st;
    s.Bind(1, sink).Bind(2, after_seq).Bind(3, recent_from).Bind(4, static_cast<int64_t>(limit));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      PendingDelivery d = delivery(s);
      d.accepted_at_ms = s.Int(3);
      read_event(s, 4, &d);
      out->push_back(std::move(d));
      ++taken;
    }
    s.Reset();
    read_back_.fetch_add(taken);
  }
  if (taken >= limit || recent.empty()) {
    NoteHandedThrough(*out);
    return Status::Ok();
  }
  auto st = r.db().Prepare("SELECT d.seq, d.attempts, d.expires_at FROM deliveries d"
                           " WHERE d.sink_id = (SELECT id FROM sinks WHERE name=?) AND d.state = 0 AND d.seq > ?"
                           " ORDER BY d.seq LIMIT ?");
  if (!st.ok()) return st.status();
  Stmt& s = **st;
  s.Bind(1, sink).Bind(2, std::max(after_seq, recent_from - 1)).Bind(3, static_cast<int64_t>(limit - taken));
  size_t at = 0;  // the append in `recent` that the next seq is looked for in (seqs ascend)
  const size_t before = out->size();
  std::vector<size_t> missing;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    PendingDelivery d = delivery(s);
    while (at < recent.size() && recent[at]->by_seq.back().first < d.seq) ++at;
    if (at < recent.size()) {
      const auto& by_seq = recent[at]->by_seq;
      auto it = std::partition_point(by_seq.begin(), by_seq.end(), [&d](const auto& p) { return p.first < d.seq; });
      if (it != by_seq.end() && it->first == d.seq) {
        d.shared = it->second;
        d.keep = recent[at];
        d.accepted_at_ms = recent[at]->accepted_at_ms;
      }
    }
    if (!d.shared) missing.push_back(out->size());
    out->push_back(std::move(d));
  }
  s.Reset();
  from_memory_.fetch_add(static_cast<int64_t>(out->size() - before - missing.size()));
  NoteHandedThrough(*out);
  read_back_.fetch_add(static_cast<int64_t>(missing.size()));
  if (missing.empty()) return Status::Ok();
  auto ev = r.db().Prepare(std::string("SELECT e.accepted_at, ") + kEventColumns + " FROM events e WHERE e.seq=?");
  if (!ev.ok()) return ev.status();
  std::vector<size_t> gone;  // pruned since the delivery row was read: left out, as the join would
  for (size_t i : missing) {
    PendingDelivery& d = (*out)[i];
    Stmt& q = **ev;
    auto row = q.Reset().Bind(1, d.seq).Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      gone.push_back(i);
      continue;
    }
    d.accepted_at_ms = q.Int(0);
    read_event(q, 1, &d);
  }
  (*ev)->Reset();
  for (auto i = gone.rbegin(); i != gone.rend(); ++i) out->erase(out->begin() + static_cast<std::ptrdiff_t>(*i));
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
Status ChangeDeadLetter(Db& db, const std::string& sink, int64_t seq, DeliveryState to,
                        const std::function<Status(const char*, const std::string&)>& audit) {
  auto sel = db.Prepare("SELECT d.sink_id FROM deliveries d JOIN sinks s ON s.id=d.sink_id"
                        " WHERE d.seq=? AND d.state=2 AND (?='' OR s.name=?)");
  if (!sel.ok()) return sel.status();
  (*sel)->Bind(1, seq).Bind(2, sink).Bind(3, sink);
  std::vector<int64_t> ids;
  for (;;) {
    auto row = (*sel)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back((*sel)->Int(0));
  }
  (*sel)->Reset();
  if (ids.empty()) return NotFound("no dead letter with seq " + std::to_string(seq) + (sink.empty() ? "" : " for sink " + sink));
  auto upd = db.Prepare("UPDATE deliveries SET state=?, updated_at=?, attempts=CASE WHEN ?=0 THEN 0 ELSE attempts END"
                        " WHERE seq=? AND sink_id=?");
  if (!upd.ok()) return upd.status();
  int64_t now = NowUnixMs();
  int state = static_cast<int>(to);
  for (int64_t id : ids) {
    GW_RETURN_IF_ERROR((*upd)->Reset().Bind(1, state).Bind(2, now).Bind(3, state).Bind(4, seq).Bind(5, id).Run());
    GW_RETURN_IF_ERROR(LogEvent(db, seq, id, now, to == DeliveryState::kPending ? "retried" : "dropped", "by an operator"));
    if (audit) GW_RETURN_IF_ERROR(audit(to == DeliveryState::kPending ? "retried" : "dropped", EventIdOf(db, seq)));
  }
  return Status::Ok();
}
}  // namespace

Status Journal::RetryDeadLetter(const std::string& sink, int64_t seq) {
  return Write([&](Db& db) {
    return ChangeDeadLetter(db, sink, seq, DeliveryState::kPending, [&](const char* what, const std::string& id) {
      return Audit(db, NowUnixMs(), what, id, sink, "dead letter queued again by an operator");
    });
  }, true);
}

Status Journal::DropDeadLetter(const std::string& sink, int64_t seq) {
  return Write([&](Db& db) {
    return ChangeDeadLetter(db, sink, seq, DeliveryState::kDropped, [&](const char* what, const std::string& id) {
      return Audit(db, NowUnixMs(), what, id, sink, "dead letter dropped by an operator");
    });
  }, false);
}

StatusOr<int64_t> Journal::Replay(const ReplayFilter& f) {
  if (f.sink.empty()) return InvalidArgument("replay needs a sink");
  int64_t count = 0;
  Status s = Write(
      [&](Db& db) -> Status {
        count = 0;
        auto id = SinkId(db, f.sink);
        if (!id.ok()) return id.status();
        auto sel = db.Prepare("SELECT seq FROM events WHERE accepted_at >= ? AND (?=0 OR accepted_at < ?)"
                              " AND (?='' OR type=?) ORDER BY seq");
        if (!sel.ok()) return sel.status();
        (*sel)->Bind(1, f.from_ms).Bind(2, f.to_ms).Bind(3, f.to_ms).Bind(4, f.type).Bind(5, f.type);
        std::vector<int64_t> seqs;
        for (;;) {
          auto row = (*sel)->Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          seqs.push_back((*sel)->Int(0));
        }
        (*sel)->Reset();
        auto up = db.Prepare(
            "INSERT INTO deliveries(seq,sink_id,state,attempts,updated_at,expires_at) VALUES(?,?,0,0,?,0)"
            " ON CONFLICT(seq,sink_id) DO UPDATE SET state=0, attempts=0, updated_at=excluded.updated_at,"
            " expires_at=0, last_error=NULL WHERE state<>0");
        if (!up.ok()) return up.status();
        int64_t now = NowUnixMs();
        for (int64_t seq : seqs) {
          GW_RETURN_IF_ERROR((*up)->Reset().Bind(1, seq).Bind(2, *id).Bind(3, now).Run());
          if (db.Changes() == 0) continue;  // already pending
          ++count;
          GW_RETURN_IF_ERROR(LogEvent(db, seq, *id, now, "replayed", "queued again by an operator"));
          GW_RETURN_IF_ERROR(Audit(db, now, "replayed", EventIdOf(db, seq), f.sink, "queued again by an operator"));
        }
        return Status::Ok();
      },
      true);
  if (!s.ok()) return s;
  return count;
}

Status Journal::Prune(std::chrono::seconds retention, PruneResult* result) {
  PruneResult local;
  int64_t cutoff = NowUnixMs() - static_cast<int64_t>(retention.count()) * 1000;
  // In chunks, so the writer is never held for long.
  for (int round = 0; round < 1000; ++round) {
    bool over_quota = options_.max_bytes > 0 &&
                      used_bytes_.load() >= options_.max_bytes * options_.low_water_pct / 100;
    int64_t removed = 0, early = 0;
    Status s = Write(
        [&](Db& db) -> Status {
          removed = early = 0;
          // Finished: no delivery pending or dead-lettered (both are undelivered).
          auto sel = db.Prepare(
              "SELECT e.seq, e.accepted_at FROM events e WHERE (e.accepted_at < ? OR ?)"
              " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq=e.seq AND d.state IN (0,2))"
              " ORDER BY e.seq LIMIT 2000");
          if (!sel.ok()) return sel.status();
          (*sel)->Bind(1, cutoff).Bind(2, static_cast<int64_t>(over_quota));
          std::vector<std::pair<int64_t, int64_t>> rows;
          for (;;) {
            auto row = (*sel)->Step();
            if (!row.ok()) return row.status();
            if (!*row) break;
            rows.emplace_back((*sel)->Int(0), (*sel)->Int(1));
          }
          (*sel)->Reset();
          auto d1 = db.Prepare("DELETE FROM deliveries WHERE seq=?");
          auto d2 = db.Prepare("DELETE FROM event_log WHERE seq=?");
          auto d3 = db.Prepare("DELETE FROM events WHERE seq=?");
          if (!d1.ok()) return d1.status();
          if (!d2.ok()) return d2.status();
          if (!d3.ok()) return d3.status();
          for (const auto& [seq, accepted] : rows) {
            GW_RETURN_IF_ERROR((*d1)->Reset().Bind(1, seq).Run());
            GW_RETURN_IF_ERROR((*d2)->Reset().Bind(1, seq).Run());
            GW_RETURN_IF_ERROR((*d3)->Reset().Bind(1, seq).Run());
            ++removed;
            if (accepted >= cutoff) ++early;
          }
          if (removed > 0) GW_RETURN_IF_ERROR(db.Exec("PRAGMA incremental_vacuum(4096)"));
          return Status::Ok();
        },
        false);
    if (!s.ok()) return s;
    local.events_removed += removed;
    local.early += early;
    if (removed < 2000) break;
  }
  // The audit chain is cut from the front where the event store ends: entries older than the
  // oldest event still journalled (and, outside quota pressure, older than the retention) go,
  // and the anchor keeps the hash the remaining chain continues from.
  bool over_quota = options_.max_bytes > 0 && used_bytes_.load() >= options_.max_bytes * options_.low_water_pct / 100;
  Status s = Write(
      [&](Db& db) -> Status {
        auto oldest = db.QueryInt("SELECT coalesce(min(accepted_at), 0) FROM events");
        if (!oldest.ok()) return oldest.status();
        int64_t before = *oldest == 0 ? NowUnixMs() : *oldest;
        if (!over_quota) before = std::min(before, cutoff);
        auto last = db.Prepare("SELECT id, hash FROM audit WHERE at < ? ORDER BY id DESC LIMIT 1");
        if (!last.ok()) return last.status();
        auto row = (*last)->Bind(1, before).Step();
        if (!row.ok()) return row.status();
        if (!*row) {
          (*last)->Reset();
          return Status::Ok();
        }
        int64_t through = (*last)->Int(0);
        std::string hash = (*last)->Text(1);
        (*last)->Reset();
        auto del = db.Prepare("DELETE FROM audit WHERE id <= ?");
        if (!del.ok()) return del.status();
        GW_RETURN_IF_ERROR((*del)->Bind(1, through).Run());
        auto anchor = db.Prepare("INSERT OR REPLACE INTO audit_anchor(id, pruned_through, hash) VALUES(1, ?, ?)");
        if (!anchor.ok()) return anchor.status();
        GW_RETURN_IF_ERROR((*anchor)->Bind(1, through).Bind(2, hash).Run());
        return db.Exec("PRAGMA incremental_vacuum(4096)");
      },
      false);
  if (!s.ok()) return s;
  if (result) *result = local;
  return Status::Ok();
}

Status Journal::Trace(const std::string& event_id, EventTrace* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  Db& db = r.db();
  auto ev = db.Prepare(std::string("SELECT e.seq, e.source, e.accepted_at, ") + kEventColumns +
                       " FROM events e WHERE e.id=?");
  if (!ev.ok()) return ev.status();
  auto row = (*ev)->Bind(1, event_id).Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    (*ev)->Reset();
    return NotFound("no event with id " + event_id + " in the journal (never accepted, or pruned after retention)");
  }
  out->seq = (*ev)->Int(0);
  out->source = (*ev)->Text(1);
  int64_t accepted = (*ev)->Int(2);
  Status read = ReadEvent(**ev, 3, options_.cipher.get(), &out->event);
  (*ev)->Reset();
  if (read.ok()) read = RestoreCertificate(db, &out->event.signature);
  if (!read.ok()) return read;
  out->entries.clear();
  out->entries.push_back(TraceEntry{accepted, "accepted", "", "from source " + out->source + ", " + out->event.origin});

  auto dl = db.Prepare("SELECT s.name, d.state, d.attempts, d.updated_at, d.expires_at, coalesce(d.last_error,'')"
                       " FROM deliveries d JOIN sinks s ON s.id=d.sink_id WHERE d.seq=? ORDER BY s.name");
  if (!dl.ok()) return dl.status();
  (*dl)->Bind(1, out->seq);
  // Final states go after the log entries, so that equal timestamps keep causal order.
  std::vector<TraceEntry> finals;
  for (;;) {
    auto r2 = (*dl)->Step();
    if (!r2.ok()) return r2.status();
    if (!*r2) break;
    std::string sink = (*dl)->Text(0);
    int state = static_cast<int>((*dl)->Int(1));
    int attempts = static_cast<int>((*dl)->Int(2));
    int64_t at = (*dl)->Int(3);
    int64_t expires = (*dl)->Int(4);
    out->entries.push_back(TraceEntry{accepted, "routed", sink, expires ? "expires at " + FormatUnixMs(expires) : ""});
    if (state == static_cast<int>(DeliveryState::kDelivered)) {
      finals.push_back(TraceEntry{at, "delivered", sink, "confirmed by the far side after " + std::to_string(attempts) + " attempt(s)"});
    } else if (state == static_cast<int>(DeliveryState::kPending)) {
      finals.push_back(TraceEntry{at, "pending", sink, attempts ? std::to_string(attempts) + " failed attempt(s) so far" : "not yet attempted"});
    }
  }
  (*dl)->Reset();
  auto lg = db.Prepare("SELECT l.at, l.what, coalesce(s.name,''), l.detail FROM event_log l"
                       " LEFT JOIN sinks s ON s.id=l.sink_id WHERE l.seq=? ORDER BY l.id");
  if (!lg.ok()) return lg.status();
  (*lg)->Bind(1, out->seq);
  for (;;) {
    auto r3 = (*lg)->Step();
    if (!r3.ok()) return r3.status();
    if (!*r3) break;
    out->entries.push_back(TraceEntry{(*lg)->Int(0), (*lg)->Text(1), (*lg)->Text(2), (*lg)->Text(3)});
  }
  (*lg)->Reset();
  out->entries.insert(out->entries.end(), finals.begin(), finals.end());
  std::stable_sort(out->entries.begin(), out->entries.end(),
                   [](const TraceEntry& a, const TraceEntry& b) { return a.at_ms < b.at_ms; });
  return Status::Ok();
}

StatusOr<int64_t> Journal::CountEvents() {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  return r.db().QueryInt("SELECT count(*) FROM events");
}

Status Journal::PayloadKeys(std::vector<std::pair<std::string, int64_t>>* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare(
      "SELECT CASE WHEN substr(payload,1,4) = CAST('GWE1' AS BLOB) THEN lower(hex(substr(payload,5,4))) ELSE 'plaintext' END AS k,"
      " count(*) FROM events GROUP BY k ORDER BY k");
  if (!st.ok()) return st.status();
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out->emplace_back((*st)->Text(0), (*st)->Int(1));
  }
  (*st)->Reset();
  return Status::Ok();
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

Status Journal::ListQuarantine(std::vector<QuarantinedMessage>* out, bool with_raw) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare("SELECT id, at, source, origin, reason, raw FROM quarantine ORDER BY id");
  if (!st.ok()) return st.status();
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    QuarantinedMessage q;
    q.id = (*st)->Int(0);
    q.at_ms = (*st)->Int(1);
    q.source = (*st)->Text(2);
    q.origin = (*st)->Text(3);
    q.reason = (*st)->Text(4);
    if (with_raw) {
      q.raw = (*st)->Text(5);
      if (PayloadCipher::IsSealed(q.raw)) {
        auto plain = options_.cipher ? options_.cipher->Open(q.raw, kQuarantineAad)
                                     : StatusOr<std::string>(FailedPrecondition("no journal key is configured"));
        q.raw = plain.ok() ? std::move(plain.value()) : "(encrypted: " + plain.status().message() + ")";
      }
    }
    out->push_back(std::move(q));
  }
  (*st)->Reset();
  return Status::Ok();
}

Status Journal::AuditAnchor(int64_t* pruned_through, std::string* hash) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare("SELECT pruned_through, hash FROM audit_anchor WHERE id = 1");
  if (!st.ok()) return st.status();
  auto row = (*st)->Step();
  if (!row.ok()) return row.status();
  *pruned_through = *row ? (*st)->Int(0) : 0;
  *hash = *row ? (*st)->Text(1) : kGenesis;
  (*st)->Reset();
  return Status::Ok();
}

Status Journal::ReadAudit(int64_t from_ms, int64_t to_ms, std::vector<AuditEntry>* out) {
  Reader r(this);
  GW_RETURN_IF_ERROR(r.status());
  auto st = r.db().Prepare("SELECT id, at, what, event_id, subject, detail, prev, hash FROM audit"
                           " WHERE at >= ? AND (?=0 OR at < ?) ORDER BY id");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, from_ms).Bind(2, to_ms).Bind(3, to_ms);
  for (;;) {
    auto row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Stmt& q = **st;
    out->push_back(AuditEntry{q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4), q.Text(5), q.Text(6), q.Text(7)});
  }
  (*st)->Reset();
  return Status::Ok();
}

}  // namespace gw
