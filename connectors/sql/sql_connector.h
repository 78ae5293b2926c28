// The `sql` connectors, on POCO Data (SQLite and PostgreSQL; ODBC when POCO's ODBC connector
// is present at build time).
//
// Source: polls `query`, which selects rows after a watermark (`:watermark` in the query) in
// watermark order; each row becomes an event and the last row's watermark is committed in the
// same journal transaction as the events, so a restart goes on from exactly there. A row maps
// either from a JSON payload column (`payload_column`: the transactional-outbox pattern) or
// column -> field (every selected column into a JSON object). Event id:
// "{id_prefix}:{key column values}@{watermark}", the same row always giving the same id.
//
// Sink: inserts each event as one row (event_id, event_type, sender_mpid, sender_role,
// created_at, correlation_id, payload) in one transaction per batch, idempotent on event_id
// (ON CONFLICT DO NOTHING), so a redelivery never adds a second row.
//
// Passwords come from `password_file`, never from the INI.
// Thread-safety: as Source and Sink.
#ifndef GW_CONNECTORS_SQL_SQL_CONNECTOR_H_
#define GW_CONNECTORS_SQL_SQL_CONNECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "mhhs/connector.h"

namespace Poco::Data {
class Session;
}

namespace gw::connectors::sql {

struct SqlConnection {
  std::string connector;   // "SQLite", "PostgreSQL", "ODBC"
  std::string connection;  // POCO connection string, password added from password_file
};

// Reads `connector`, `connection` and `password_file` from a section.
StatusOr<SqlConnection> ReadConnection(const ConfigSection& c);

struct SqlSourceOptions {
  SqlConnection db;
  std::string query;              // with :watermark
  std::string watermark_column;
  std::string initial_watermark = "0";
  std::vector<std::string> key_columns;
  std::string payload_column;     // "" : column -> field mapping
  std::string type_column;        // "" : event_type
  std::string event_type;
  std::string id_prefix;
  int batch_size = 1000;
  std::chrono::milliseconds poll_interval{1000};
};

class SqlSource : public Source {
 public:
  static StatusOr<std::unique_ptr<Source>> Create(const ConnectorContext& ctx);
  SqlSource(std::string name, SqlSourceOptions options, const GatewayInfo& gw, Logger& logger);
  ~SqlSource() override;

  Status Start(const std::string& checkpoint) override;
  StatusOr<bool> Poll(SourceBatch* batch, std::chrono::milliseconds wait) override;
  void Ack(const SourceBatch& batch, const Status& committed) override;
  void Stop() override;

 private:
  std::string name_;
  SqlSourceOptions options_;
  GatewayInfo gw_;
  Logger& logger_;
  std::unique_ptr<Poco::Data::Session> session_;
  std::string watermark_;      // committed
  std::string pending_mark_;   // of the batch handed out
  std::chrono::steady_clock::time_point next_poll_{};
  bool stopping_ = false;
};

struct SqlSinkOptions {
  SqlConnection db;
  std::string table;
  bool create_table = true;
};

class SqlSink : public Sink {
 public:
  static StatusOr<std::unique_ptr<Sink>> Create(const ConnectorContext& ctx);
  SqlSink(std::string name, SqlSinkOptions options, Logger& logger);
  ~SqlSink() override;

  Status Start() override;
  std::vector<Status> Deliver(const std::vector<const Event*>& events) override;
  bool Connected() const override { return session_ != nullptr; }
  void Stop() override {}

 private:
  Status Connect();

  std::string name_;
  SqlSinkOptions options_;
  Logger& logger_;
  std::unique_ptr<Poco::Data::Session> session_;
};

// Registers POCO's database connectors once per process.
void RegisterDatabaseConnectors();

}  // namespace gw::connectors::sql

#endif  // GW_CONNECTORS_SQL_SQL_CONNECTOR_H_
