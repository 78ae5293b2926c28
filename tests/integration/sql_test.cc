// The `sql` connectors against a real SQLite file and a real PostgreSQL server: rows in ->
// events on the broker (watermark committed with the events), events from the broker -> rows
// out, exactly once per event id.
#include <signal.h>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

class SqlTest : public GatewayTest {
 protected:
  std::string Sqlite(const std::string& db, const std::string& sql) {
    std::string out;
    EXPECT_EQ(RunCommand({"/usr/bin/sqlite3", db, sql}, &out), 0) << out;
    return out;
  }
  // Source: rows of an outbox table -> backbone. Sink: backbone IF-021 -> table `received`.
  void WriteSqlConfig(const std::string& connector, const std::string& connection, const std::string& cast) {
    config_path_ = dir_ / "sql.ini";
    WriteFile(config_path_,
              "[gateway]\nadmin_listen = off\nparticipant_mpid = UDMS\nparticipant_role = D\nenvironment = SIT\nlog_level = debug\nflow_dir = " +
              SourceDir() + "/config/flows\n[journal]\npath = " + dir_ / "journal.db" + "\n"
              "[source.rows]\ntype = sql\nconnector = " + connector + "\nconnection = " + connection + "\n"
              "query = SELECT id, mpan, reading, kind FROM readings WHERE id > " + cast + " ORDER BY id LIMIT 500\n"
              "watermark_column = id\nkey_columns = mpan\ntype_column = kind\npoll_interval_ms = 100\n"
              "[source.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = UDMS-gw-in\ntopics = mhhs/SIT/IF-021/#\n"
              "[sink.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = UDMS-gw-out\nretry_base_ms = 100\n"
              "[sink.table]\ntype = sql\nconnector = " + connector + "\nconnection = " + connection + "\ntable = received\n"
              "[route.out]\nfrom = rows\nto = backbone\n[route.in]\nfrom = backbone\nto = table\n");
  }
  std::vector<std::string> Envelopes(int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(R"({"v":1,"id":"UDMS-IN-)" + std::to_string(i) +
                    R"(","type":"IF-021","sender":{"mpid":"UDMS","role":"SDS"},"recipients":[],"createdAt":"2026-07-16T06:00:00+01:00","correlationId":null,"payload":{"n":)" +
                    std::to_string(i) + "}}");
    }
    return out;
  }
  void RunBothWays(const std::function<void(const std::string&)>& exec, const std::function<std::string(const std::string&)>& query) {
    exec("CREATE TABLE readings (id INTEGER PRIMARY KEY, mpan VARCHAR(13), reading VARCHAR(20), kind VARCHAR(20))");
    std::string rows = "INSERT INTO readings VALUES ";
    for (int i = 1; i <= 30; ++i) rows += (i > 1 ? "," : "") + std::string("(") + std::to_string(i) + ",'10000000000" +
                                          (i < 10 ? "0" : "") + std::to_string(i) + "','" + std::to_string(i) + ".5','METER-READING')";
    exec(rows);
    Subscriber sub(broker_.uri(), "sql-sub", "mhhs/SIT/METER-READING/#");
    sub.Connect();
    StartGateway();
    ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 30; }, std::chrono::seconds(30))) << sub.Count();
    // A restart goes on from the committed watermark: old rows are not read again.
    EXPECT_EQ(StopGateway(), 0);
    exec("INSERT INTO readings VALUES (31,'1000000000031','31.5','METER-READING')");
    StartGateway();
    ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 31; }, std::chrono::seconds(30)));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(sub.Count(), 31u) << "each row once";
    auto msgs = sub.Messages();
    EXPECT_NE(msgs[0].second.find(R"("id":"rows:1000000000001@1")"), std::string::npos) << msgs[0].second;
    EXPECT_NE(msgs[0].second.find(R"("payload":{"id":"1","mpan":"1000000000001","reading":"1.5","kind":"METER-READING"})"),
              std::string::npos) << msgs[0].second;
    // Inbound: duplicates on the wire give one row each.
    auto env = Envelopes(10);
    PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", env);
    PublishAll(broker_.uri(), "mhhs/SIT/IF-021/SDS/UDMS", {env[0], env[5]});
    ASSERT_TRUE(WaitFor([&] { return query("SELECT count(*) FROM received") == "10\n"; }, std::chrono::seconds(30)))
        << query("SELECT count(*) FROM received");
    EXPECT_EQ(query("SELECT payload FROM received WHERE event_id = 'UDMS-IN-7'"), "{\"n\":7}\n");
    EXPECT_EQ(StopGateway(), 0);
  }
};

TEST_F(SqlTest, SqliteRowsInAndEventsOutExactlyOnce) {
  std::string db = dir_ / "legacy.db";
  WriteSqlConfig("sqlite", db, ":watermark");
  RunBothWays([&](const std::string& sql) { Sqlite(db, sql); }, [&](const std::string& sql) { return Sqlite(db, sql); });
}

TEST_F(SqlTest, PostgresqlRowsInAndEventsOutExactlyOnce) {
  Postgres pg(dir_ / "pg");
  pg.Start();
  WriteSqlConfig("postgresql", pg.Connection(), "CAST(:watermark AS INTEGER)");
  RunBothWays([&](const std::string& sql) { pg.Sql(sql); }, [&](const std::string& sql) { return pg.Sql(sql); });
}

TEST_F(SqlTest, PasswordInTheConnectionStringIsRefused) {
  WriteSqlConfig("postgresql", "host=127.0.0.1 user=x password=secret", ":watermark");
  std::string out;
  EXPECT_EQ(RunCommand({DaemonPath(), "--config", config_path_, "--check-config"}, &out), 78);
  EXPECT_NE(out.find("] connection: holds a password: put it in password_file"), std::string::npos) << out;
  EXPECT_EQ(out.find("secret"), std::string::npos) << "the secret itself never reaches a log line";
}

}  // namespace
}  // namespace gw::testing
