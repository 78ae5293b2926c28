#include "gw/sqlite.h"

#include <mutex>

namespace gw {

StatusCode SqliteCodeToStatus(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
      return StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StatusCode::kDataLoss;
    case SQLITE_CONSTRAINT:
      return StatusCode::kAlreadyExists;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StatusCode::kPermissionDenied;
    default:
      return StatusCode::kInternal;
  }
}

StatusOr<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status s(SqliteCodeToStatus(rc), std::string(sqlite3_errmsg(db_)) + " (" + sqlite3_sql(stmt_) + ")");
  sqlite3_reset(stmt_);
  return s;
}

Status Stmt::Run() {
  auto r = Step();
  if (!r.ok()) return r.status();
  sqlite3_reset(stmt_);
  return Status::Ok();
}

StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path, bool create, bool read_only) {
  // Before SQLite's first use in the process: a savepoint's undo log (the statement journal)
  // stays in memory up to 4 MiB instead of 64 KiB. The journal wraps each operation in a
  // savepoint, and an append touches a few 16 KiB pages it did not create: past 64 KiB the log
  // went to a temporary file, created, written and deleted on the writer thread (85 files per
  // 100 appended files). Larger ones (a prune's) still go to a file, so memory stays bounded.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 4 << 20); });
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
  if (create && !read_only) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Status(SqliteCodeToStatus(rc), path + ": cannot open journal: " + msg);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  return std::unique_ptr<Db>(new Db(raw, path));
}

Db::~Db() {
  cache_.clear();
  sqlite3_close(db_);
}

Status Db::Error(const std::string& what) const {
  return Status(SqliteCodeToStatus(sqlite3_extended_errcode(db_)),
                path_ + ": " + what + ": " + sqlite3_errmsg(db_));
}

Status Db::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status(SqliteCodeToStatus(rc), path_ + ": " + msg + " (" + sql.substr(0, 60) + ")");
  }
  return Status::Ok();
}

StatusOr<Stmt*> Db::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error("prepare \"" + sql.substr(0, 60) + "\"");
  auto owned = std::make_unique<Stmt>(db_, stmt);
  Stmt* p = owned.get();
  cache_.emplace(sql, std::move(owned));
  return p;
}

StatusOr<int64_t> Db::QueryInt(const std::string& sql) {
  auto st = Prepare(sql);
  if (!st.ok()) return st.status();
  auto row = (*st)->Step();
  if (!row.ok()) return row.status();
  int64_t v = *row ? (*st)->Int(0) : 0;
  (*st)->Reset();
  return v;
}

}  // namespace gw
