// The journal's promise with the real daemon: a full disk, the quota, trace and replay.
#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

const char* kFiles[] = {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475657.uff",
                        "D0010_UDMS_BGAS_0000475658.uff"};

// A D0010 file with `mpans` MPANs, to make volume.
std::string BigD0010(int file_id, int mpans) {
  char id[16];
  std::snprintf(id, sizeof id, "%010d", file_id);
  std::string s = std::string("ZHV|") + id + "|D0010002|D|UDMS|X|MRCY|20260302153151||||OPER|\n";
  for (int i = 0; i < mpans; ++i) {
    char mpan[16];
    std::snprintf(mpan, sizeof mpan, "%013d", 1000000 + i);
    s += std::string("026|") + mpan + "|V|\n028|F75A 00802|D|\n030|S|20260222000000|56311.0|||T|N|\n";
  }
  s += std::string("ZPT|") + id + "|" + std::to_string(mpans * 3) + "||" + std::to_string(mpans) + "|20260302154650|\n";
  return s;
}

class JournalIntegrationTest : public GatewayTest {};

TEST_F(JournalIntegrationTest, FullDiskLosesNothingAndRecoversByItself) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs for the journal";
  std::string jdir = dir_ / "jfs";
  ASSERT_EQ(::mkdir(jdir.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", jdir.c_str(), "tmpfs", 0, "size=3m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string d;
    ~Unmount() { ::umount2(d.c_str(), MNT_DETACH); }
  } unmount{jdir};

  WriteConfig();
  std::string cfg = ReadFileOrEmpty(config_path_);
  cfg.replace(cfg.find(dir_ / "journal.db"), (dir_ / "journal.db").size(), jdir + "/journal.db");
  WriteFile(config_path_, cfg);
  Subscriber sub(broker_.uri(), "full-disk-sub");
  sub.Connect();
  StartGateway();
  DropText("first.uff", BigD0010(1, 50));
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 50; }, std::chrono::seconds(30)));

  // Fill the journal's file system to the last byte.
  std::string filler = jdir + "/filler";
  {
    FILE* f = std::fopen(filler.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string block(64 * 1024, 'f');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
    }
    std::fclose(f);
  }
  for (int i = 2; i <= 6; ++i) DropText("f" + std::to_string(i) + ".uff", BigD0010(i, 100));
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("not committed, will be offered again") != std::string::npos; },
                      std::chrono::seconds(30))) << GatewayLog();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_TRUE(gateway_.Running()) << "no crash on a full disk";
  EXPECT_EQ(FilesIn(dir_ / "archive").size(), 1u) << "nothing is acked that was not committed";

  // Space comes back: everything goes through without a restart.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 6; }, std::chrono::seconds(60))) << GatewayLog();
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 550; }, std::chrono::seconds(60))) << "received " << sub.Count();
  std::set<std::string> ids;
  for (const auto& m : sub.Messages()) ids.insert(m.second.substr(0, m.second.find("\",\"type\"")));
  EXPECT_EQ(ids.size(), 550u);
  EXPECT_EQ(StopGateway(), 0);
  std::string out;
  EXPECT_EQ(RunCommand({"/usr/bin/sqlite3", jdir + "/journal.db", "PRAGMA integrity_check"}, &out), 0);
  EXPECT_EQ(out, "ok\n");
}

TEST_F(JournalIntegrationTest, QuotaPausesIntakeUntilDeliveriesFreeSpace) {
  WriteConfig();
  std::string cfg = ReadFileOrEmpty(config_path_);
  cfg.replace(cfg.find("[source.inbox]"), 14, "max_bytes = 1000000\nhigh_water_pct = 60\nlow_water_pct = 40\n[source.inbox]");
  WriteFile(config_path_, cfg);
  broker_.Stop();
  StartGateway();
  for (int i = 1; i <= 12; ++i) DropText("q" + std::to_string(i) + ".uff", BigD0010(i, 300));
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("paused: journal holds") != std::string::npos; },
                      std::chrono::seconds(60))) << GatewayLog();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  size_t archived = FilesIn(dir_ / "archive").size();
  EXPECT_LT(archived, 12u) << "intake must stop while above the high water mark";
  EXPECT_GT(FilesIn(dir_ / "inbox").size(), 0u) << "the rest waits in the inbox, untouched";

  broker_.Start();
  Subscriber sub(broker_.uri(), "quota-sub");
  sub.Connect();
  ASSERT_TRUE(WaitFor([&] { return FilesIn(dir_ / "archive").size() == 12; }, std::chrono::seconds(120))) << GatewayLog();
  EXPECT_NE(GatewayLog().find("resumed: the journal is below its low water mark"), std::string::npos);
  EXPECT_EQ(StopGateway(), 0);
  std::string out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "--json", "status"}, &out), 0) << out;
  EXPECT_NE(out.find(R"("pending":0)"), std::string::npos) << out;
}

TEST_F(JournalIntegrationTest, TraceShowsAnEventsLifeAndReplaySendsItAgain) {
  Subscriber sub(broker_.uri(), "trace-sub");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/" + kFiles[0]);
  ASSERT_TRUE(WaitFor([&] { return sub.Count() == 2; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] {
    std::string out;
    RunCommand({CtlPath(), "--config", config_path_, "trace", "UDMS-0000475656-2"}, &out);
    return out.find("delivered") != std::string::npos;
  }, std::chrono::seconds(10)));
  std::string out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "trace", "UDMS-0000475656-2"}, &out), 0);
  EXPECT_NE(out.find("event UDMS-0000475656-2 (seq 2): D0010002 from UDMS (D) to MRCY (X)"), std::string::npos) << out;
  EXPECT_NE(out.find("from source inbox, inbox:D0010_UDMS_MRCY_0000475656.uff:5"), std::string::npos) << out;
  EXPECT_NE(out.find("routed          backbone"), std::string::npos) << out;
  EXPECT_NE(out.find("confirmed by the far side after 1 attempt(s)"), std::string::npos) << out;
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "trace", "NOPE-1"}, &out), 1);

  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "replay", "--from", "2020-01-01", "--sink", "backbone"}, &out), 0)
      << out;
  EXPECT_NE(out.find("queued 2 event(s) again for sink backbone"), std::string::npos) << out;
  ASSERT_TRUE(WaitFor([&] { return sub.Count() == 4; }, std::chrono::seconds(30))) << sub.Count();
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "replay", "--from", "2020-01-01", "--sink", "nosuch"}, &out), 64);
  EXPECT_NE(out.find("no [sink.nosuch]"), std::string::npos) << out;
  EXPECT_EQ(StopGateway(), 0);
}

TEST_F(JournalIntegrationTest, OversizedMessageIsDeadLetteredAndCanBeDropped) {
  WriteConfig();
  std::string cfg = ReadFileOrEmpty(config_path_);
  cfg.replace(cfg.find("reconnect_max_ms"), 16, "max_message_bytes = 600\nreconnect_max_ms");
  WriteFile(config_path_, cfg);
  Subscriber sub(broker_.uri(), "dl-sub");
  sub.Connect();
  StartGateway();
  Drop(Samples() + "/" + kFiles[0]);  // its second event (690 bytes) is larger than 600
  ASSERT_TRUE(WaitFor([&] { return sub.Count() == 1; }, std::chrono::seconds(30)));
  std::string out;
  ASSERT_TRUE(WaitFor([&] {
    RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "list"}, &out);
    return out.find("1 dead letter(s)") != std::string::npos;
  }, std::chrono::seconds(10))) << out;
  EXPECT_NE(out.find("UDMS-0000475656-2"), std::string::npos) << out;
  EXPECT_NE(out.find("exceeds max_message_bytes 600"), std::string::npos) << out;
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "drop", "UDMS-0000475656-2"}, &out), 0) << out;
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "dead-letters", "drop", "UDMS-0000475656-2"}, &out), 1) << out;
  EXPECT_EQ(StopGateway(), 0);
}

}  // namespace
}  // namespace gw::testing

namespace gw::testing {
namespace {

TEST_F(JournalIntegrationTest, AuditChainVerifiesAndNamesTheFirstTamperedEntry) {
  Subscriber sub(broker_.uri(), "audit-sub");
  sub.Connect();
  StartGateway();
  for (const char* f : {"D0010_UDMS_MRCY_0000475656.uff", "D0010_UDMS_MRCY_0000475657.uff", "D0010_UDMS_MRCY_0000475659_broken.uff"}) {
    Drop(Samples() + "/" + f);
  }
  ASSERT_TRUE(WaitFor([&] { return sub.Count() >= 5; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] {
    std::string out;
    RunCommand({CtlPath(), "--config", config_path_, "status"}, &out);
    return out.find("backbone                      0            5") != std::string::npos;
  }, std::chrono::seconds(10)));
  EXPECT_EQ(StopGateway(), 0);
  std::string out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "audit", "verify"}, &out), 0) << out;
  EXPECT_NE(out.find("audit chain intact: "), std::string::npos) << out;
  ASSERT_EQ(RunCommand({CtlPath(), "--config", config_path_, "audit", "export", "--from", "2020-01-01"}, &out), 0);
  EXPECT_NE(out.find(R"("what":"rejected","eventId":null,"subject":"inbox","detail":"D0010_UDMS_MRCY_0000475659_broken.uff: )"),
            std::string::npos) << out;
  // Each event is in one accepted and one delivered entry: its own, or its batch's (the ids
  // then in the entry's detail). A file is one batch; how the deliveries group depends on timing.
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1) lines.push_back(out.substr(at, nl - at));
  ASSERT_GE(lines.size(), 4u) << "two files accepted, one rejected, at least one delivered batch";
  for (const char* id : {"UDMS-0000475656-1", "UDMS-0000475656-2", "UDMS-0000475657-1", "UDMS-0000475657-2", "UDMS-0000475657-3"}) {
    for (const char* what : {"accepted", "delivered"}) {
      const std::string as_own = std::string("\"eventId\":\"") + id + "\"", in_batch = std::string("\\\"") + id + "\\\"";
      int n = 0;
      for (const std::string& l : lines) {
        if (l.find(std::string("\"what\":\"") + what + "\"") == std::string::npos) continue;
        n += l.find(as_own) != std::string::npos || l.find(in_batch) != std::string::npos;
      }
      EXPECT_EQ(n, 1) << id << " " << what << "\n" << out;
    }
  }

  std::string journal = dir_ / "journal.db";
  auto tamper = [&](const std::string& sql) {
    std::string copy = dir_ / "tampered.db";
    std::string o;
    RunCommand({"/bin/cp", journal, copy}, &o);
    EXPECT_EQ(RunCommand({"/usr/bin/sqlite3", copy, sql}, &o), 0) << o;
    WriteFile(dir_ / "tampered.ini", "[gateway]\nparticipant_mpid = UDMS\nparticipant_role = D\nenvironment = SIT\n[journal]\npath = " + copy + "\n");
    std::string result;
    int rc = RunCommand({CtlPath(), "--config", dir_ / "tampered.ini", "audit", "verify"}, &result);
    EXPECT_EQ(rc, 1) << result;
    return result;
  };
  EXPECT_NE(tamper("UPDATE audit SET detail = 'nothing to see' WHERE id = 3").find(
                "audit chain broken at entry 3: its content does not match its hash (edited)"), std::string::npos);
  EXPECT_NE(tamper("DELETE FROM audit WHERE id = 2").find("audit chain broken at entry 2: missing"), std::string::npos);
  EXPECT_NE(tamper("UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 4; UPDATE audit SET id = 4 WHERE id = 100")
                .find("audit chain broken at entry 2: it does not follow the entry before it (removed or reordered)"),
            std::string::npos);
}

}  // namespace
}  // namespace gw::testing
