#include "connectors/sql/sql_connector.h"

#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <mutex>
#include <sstream>
#include <thread>

#include "gw/config.h"
#include "gw/fs.h"
#include "gw/journal.h"
#include "mhhs/json.h"

namespace gw::connectors::sql {
namespace {

using Poco::Data::Keywords::use;

// The connector's positional placeholder for parameter n (1-based).
std::string Placeholder(const std::string& connector, int n) {
  return connector == "PostgreSQL" ? "$" + std::to_string(n) : "?";
}

std::string Iso(int64_t ms) {
  std::string s = FormatUnixMs(ms);  // 2026-11-26T14:00:00.123Z
  return s.substr(0, 19) + "+00:00";
}

Status DbError(const std::string& what, const Poco::Exception& e) {
  return Unavailable(what + ": " + e.displayText());
}

}  // namespace

void RegisterDatabaseConnectors() {
  static std::once_flag once;
  std::call_once(once, [] {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::PostgreSQL::Connector::registerConnector();
  });
}

StatusOr<SqlConnection> ReadConnection(const ConfigSection& c) {
  SqlConnection db;
  std::string kind = c.GetString("connector", "");
  if (kind == "sqlite") db.connector = "SQLite";
  else if (kind == "postgresql") db.connector = "PostgreSQL";
  else return c.Error("connector", "must be sqlite or postgresql (got \"" + kind + "\")");
  auto conn = c.GetRequired("connection");
  if (!conn.ok()) return conn.status();
  db.connection = *conn;
  if (db.connection.find("password=") != std::string::npos) {
    return c.Error("connection", "holds a password: put it in password_file, readable by the service user only");
  }
  std::string pw_file = c.GetString("password_file", "");
  if (!pw_file.empty()) {
    auto pw = ReadSecretFile(pw_file);
    if (!pw.ok()) return c.Error("password_file", pw.status().message());
    db.connection += " password=" + *pw;
  }
  return db;
}

// ---- source ----

StatusOr<std::unique_ptr<Source>> SqlSource::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  SqlSourceOptions o;
  auto db = ReadConnection(c);
  if (!db.ok()) return db.status();
  o.db = *db;
  auto query = c.GetRequired("query");
  if (!query.ok()) return query.status();
  o.query = *query;
  if (o.query.find(":watermark") == std::string::npos) return c.Error("query", "must use :watermark (rows after it, in watermark order)");
  auto wm = c.GetRequired("watermark_column");
  if (!wm.ok()) return wm.status();
  o.watermark_column = *wm;
  o.initial_watermark = c.GetString("initial_watermark", "0");
  o.key_columns = gw::SplitList(c.GetString("key_columns", ""));
  o.payload_column = c.GetString("payload_column", "");
  o.type_column = c.GetString("type_column", "");
  o.event_type = c.GetString("event_type", "");
  if (o.type_column.empty() && o.event_type.empty()) return c.Error("event_type", "set event_type or type_column");
  o.id_prefix = c.GetString("id_prefix", ctx.name);
  auto batch = c.GetInt("batch_size", 1000, 1, 1000000);
  if (!batch.ok()) return batch.status();
  o.batch_size = static_cast<int>(*batch);
  auto poll = c.GetInt("poll_interval_ms", 1000, 10, 3600000);
  if (!poll.ok()) return poll.status();
  o.poll_interval = std::chrono::milliseconds(*poll);
  RegisterDatabaseConnectors();
  return std::unique_ptr<Source>(new SqlSource(ctx.name, std::move(o), ctx.gateway, ctx.logger));
}

SqlSource::SqlSource(std::string name, SqlSourceOptions options, const GatewayInfo& gw, Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), gw_(gw), logger_(logger) {}

SqlSource::~SqlSource() = default;

Status SqlSource::Start(const std::string& checkpoint) {
  watermark_ = checkpoint.empty() ? options_.initial_watermark : checkpoint;
  try {
    session_ = std::make_unique<Poco::Data::Session>(options_.db.connector, options_.db.connection);
  } catch (const Poco::Exception& e) {
    logger_.Warning("cannot connect to the database: " + e.displayText() + "; will keep trying");
  }
  logger_.Info("reading rows after watermark " + watermark_);
  return Status::Ok();
}

StatusOr<bool> SqlSource::Poll(SourceBatch* batch, std::chrono::milliseconds wait) {
  auto now = std::chrono::steady_clock::now();
  if (now < next_poll_) {
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(next_poll_ - now, wait));
    return false;
  }
  next_poll_ = now + options_.poll_interval;
  if (stopping_) return false;
  try {
    if (!session_) session_ = std::make_unique<Poco::Data::Session>(options_.db.connector, options_.db.connection);
    std::string sql = options_.query;
    sql.replace(sql.find(":watermark"), 10, Placeholder(options_.db.connector, 1));
    std::string mark = watermark_;
    Poco::Data::Statement select(*session_);
    select << sql, use(mark);
    select.execute();
    Poco::Data::RecordSet rs(select);
    const size_t cols = rs.columnCount();
    batch->events.clear();
    std::string last = watermark_;
    for (bool more = rs.moveFirst(); more && static_cast<int>(batch->events.size()) < options_.batch_size;
         more = rs.moveNext()) {
      auto text = [&](const std::string& col) -> std::string {
        if (rs.isNull(col)) return "";
        return rs.value(col).convert<std::string>();
      };
      Event e;
      std::string wm = text(options_.watermark_column);
      std::string key;
      for (const std::string& k : options_.key_columns) key += (key.empty() ? "" : ":") + text(k);
      e.id = options_.id_prefix + ":" + key + "@" + wm;
      e.type = options_.type_column.empty() ? options_.event_type : text(options_.type_column);
      e.sender = Party{gw_.participant_mpid, gw_.participant_role, gw_.dip_id};
      e.created_at = Iso(NowUnixMs());
      e.origin = name_ + ":" + options_.watermark_column + "=" + wm;
      if (!options_.payload_column.empty()) {
        e.payload = text(options_.payload_column);
        if (e.payload.empty() || (e.payload[0] != '{' && e.payload[0] != '[')) {
          logger_.Warning("row " + options_.watermark_column + "=" + wm + ": " + options_.payload_column +
                          " is not a JSON object; skipped");
          last = wm;
          continue;
        }
      } else {
        JsonWriter w(&e.payload);
        w.BeginObject();
        for (size_t c = 0; c < cols; ++c) {
          std::string name = rs.columnName(c);
          w.Key(name);
          if (rs.isNull(name)) w.Null(); else w.String(rs.value(c).convert<std::string>());
        }
        w.EndObject();
      }
      last = wm;
      batch->events.push_back(std::move(e));
    }
    if (last == watermark_) return false;
    pending_mark_ = last;
    batch->checkpoint = last;
    batch->unit = name_ + ": rows up to " + options_.watermark_column + " " + last;
    batch->last = true;
    // More rows may be waiting: poll again at once.
    if (static_cast<int>(batch->events.size()) >= options_.batch_size) next_poll_ = now;
    return true;
  } catch (const Poco::Exception& e) {
    session_.reset();
    return DbError("cannot read from the database", e);
  }
}

void SqlSource::Ack(const SourceBatch&, const Status& committed) {
  if (committed.ok()) watermark_ = pending_mark_;
  else next_poll_ = std::chrono::steady_clock::now();  // read the same rows again
}

void SqlSource::Stop() { stopping_ = true; }

// ---- sink ----

StatusOr<std::unique_ptr<Sink>> SqlSink::Create(const ConnectorContext& ctx) {
  const ConfigSection& c = ctx.config;
  SqlSinkOptions o;
  auto db = ReadConnection(c);
  if (!db.ok()) return db.status();
  o.db = *db;
  auto table = c.GetRequired("table");
  if (!table.ok()) return table.status();
  o.table = *table;
  for (char ch : o.table) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.') return c.Error("table", "letters, digits, '_' and '.' only");
  }
  auto create = c.GetBool("create_table", true);
  if (!create.ok()) return create.status();
  o.create_table = *create;
  RegisterDatabaseConnectors();
  return std::unique_ptr<Sink>(new SqlSink(ctx.name, std::move(o), ctx.logger));
}

SqlSink::SqlSink(std::string name, SqlSinkOptions options, Logger& logger)
    : name_(std::move(name)), options_(std::move(options)), logger_(logger) {}

SqlSink::~SqlSink() = default;

Status SqlSink::Connect() {
  if (session_) return Status::Ok();
  try {
    session_ = std::make_unique<Poco::Data::Session>(options_.db.connector, options_.db.connection);
    if (options_.create_table) {
      *session_ << "CREATE TABLE IF NOT EXISTS " + options_.table +
                       " (event_id VARCHAR(200) PRIMARY KEY, event_type VARCHAR(40) NOT NULL, sender_mpid VARCHAR(8) NOT NULL,"
                       " sender_role VARCHAR(8) NOT NULL, created_at VARCHAR(40) NOT NULL, correlation_id VARCHAR(100),"
                       " payload TEXT NOT NULL)",
          Poco::Data::Keywords::now;
    }
  } catch (const Poco::Exception& e) {
    session_.reset();
    return DbError("cannot open the database table " + options_.table, e);
  }
  return Status::Ok();
}

Status SqlSink::Start() {
  Status s = Connect();
  if (!s.ok()) logger_.Warning(s.message() + "; will keep trying");
  return Status::Ok();
}

std::vector<Status> SqlSink::Deliver(const std::vector<const Event*>& events) {
  std::vector<Status> results(events.size());
  Status s = Connect();
  if (!s.ok()) {
    for (Status& r : results) r = s;
    return results;
  }
  const std::string& k = options_.db.connector;
  std::string sql = "INSERT INTO " + options_.table +
                    " (event_id, event_type, sender_mpid, sender_role, created_at, correlation_id, payload) VALUES (";
  for (int i = 1; i <= 7; ++i) sql += (i > 1 ? ", " : "") + Placeholder(k, i);
  sql += ") ON CONFLICT (event_id) DO NOTHING";
  try {
    session_->begin();
    for (const Event* e : events) {
      std::string id = e->id, type = e->type, mpid = e->sender.mpid, role = e->sender.role, created = e->created_at,
                  corr = e->correlation_id, payload = e->payload;
      Poco::Data::Statement insert(*session_);
      insert << sql, use(id), use(type), use(mpid), use(role), use(created), use(corr), use(payload);
      insert.execute();
    }
    session_->commit();
  } catch (const Poco::Exception& e) {
    try {
      if (session_ && session_->isTransaction()) session_->rollback();
    } catch (const Poco::Exception&) {
    }
    session_.reset();
    Status err = DbError("cannot insert into " + options_.table, e);
    for (Status& r : results) r = err;
    return results;
  }
  return results;
}

}  // namespace gw::connectors::sql
