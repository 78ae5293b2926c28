// Thin RAII wrappers over the SQLite C API: a connection (Db) and a prepared statement (Stmt).
// Errors come back as Status naming the database file and SQLite's message.
// Thread-safety: a Db and its statements are used by one thread at a time.
#ifndef GW_SQLITE_H_
#define GW_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "mhhs/status.h"

namespace gw {

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Resets the statement and clears its bindings; returns *this for chaining.
  Stmt& Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); return *this; }
  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int i) { sqlite3_bind_null(stmt_, i); return *this; }
  // Binds `p` for sqlite3_value_pointer(..., type), without taking it: it must outlive every
  // step until the next Reset() (which Db::Prepare() does) or a rebinding.
  Stmt& BindPointer(int i, const void* p, const char* type) {
    sqlite3_bind_pointer(stmt_, i, const_cast<void*>(p), type, nullptr);
    return *this;
  }

  // Steps once. Returns true when a row is available, false when done.
  StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }
  // The column's bytes where SQLite holds them: valid until the statement steps or resets.
  std::string_view View(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string_view();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if `create`) the database at `path`, with a busy timeout.
  static StatusOr<std::unique_ptr<Db>> Open(const std::string& path, bool create, bool read_only);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements with no results.
  Status Exec(const std::string& sql);
  // A cached prepared statement for `sql`, reset and ready to bind. Valid while the Db lives.
  StatusOr<Stmt*> Prepare(const std::string& sql);
  // A scalar integer result of `sql`.
  StatusOr<int64_t> QueryInt(const std::string& sql);

  Status Error(const std::string& what) const;
  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }
  int64_t Changes() const { return sqlite3_changes64(db_); }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::map<std::string, std::unique_ptr<Stmt>> cache_;
};

// Maps an SQLite result code to a Status code: disk full and I/O errors are kUnavailable
// (space may come back), corruption is kDataLoss, busy is kUnavailable.
StatusCode SqliteCodeToStatus(int rc);

}  // namespace gw

#endif  // GW_SQLITE_H_
