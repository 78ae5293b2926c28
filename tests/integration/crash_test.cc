// The crash harness (CTest label `crash`): rounds of ingesting files while SIGKILL hits the
// daemon at a random moment, then a final run; every event must reach the broker at least
// once, and the journal must pass integrity_check.
#include <signal.h>

#include <random>

#include "tests/integration/gateway_fixture.h"

namespace gw::testing {
namespace {

constexpr int kRounds = 20;
constexpr int kFilesPerRound = 10;
constexpr int kMpansPerFile = 100;

std::string D0010(int file_id, int mpans) {
  char id[16];
  std::snprintf(id, sizeof id, "%010d", file_id);
  std::string s = std::string("ZHV|") + id + "|D0010002|D|UDMS|X|MRCY|20260302153151||||OPER|\n";
  for (int i = 0; i < mpans; ++i) {
    char mpan[16];
    std::snprintf(mpan, sizeof mpan, "%013d", file_id * 1000 + i);
    s += std::string("026|") + mpan + "|V|\n028|F75A 00802|D|\n030|S|20260222000000|" + std::to_string(i) + ".0|||T|N|\n";
  }
  s += std::string("ZPT|") + id + "|" + std::to_string(mpans * 3) + "||" + std::to_string(mpans) + "|20260302154650|\n";
  return s;
}

std::string IdOf(const std::string& envelope) {
  size_t b = envelope.find("\"id\":\"");
  if (b == std::string::npos) return "";
  b += 6;
  return envelope.substr(b, envelope.find('"', b) - b);
}

class CrashTest : public GatewayTest {};

TEST_F(CrashTest, SigkillAtRandomMomentsLosesNothing) {
  std::mt19937 rng(std::random_device{}());
  Subscriber sub(broker_.uri(), "crash-sub");
  sub.Connect();
  WriteConfig();
  int file_id = 1;
  int kills_during_ingest = 0;
  for (int round = 0; round < kRounds; ++round) {
    StartGateway();
    for (int i = 0; i < kFilesPerRound; ++i, ++file_id) {
      DropText("crash_" + std::to_string(file_id) + ".uff", D0010(file_id, kMpansPerFile));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 700)(rng)));
    if (!FilesIn(dir_ / "inbox").empty() || !FilesIn(dir_ / "inbox/.claimed").empty()) ++kills_during_ingest;
    KillGateway();
  }
  const size_t expected = static_cast<size_t>(kRounds) * kFilesPerRound * kMpansPerFile;
  StartGateway();
  ASSERT_TRUE(WaitFor([&] {
    std::set<std::string> ids;
    for (const auto& m : sub.Messages()) ids.insert(IdOf(m.second));
    return ids.size() >= expected;
  }, std::chrono::minutes(5)));
  EXPECT_EQ(StopGateway(), 0);

  std::set<std::string> ids;
  auto messages = sub.Messages();
  for (const auto& m : messages) ids.insert(IdOf(m.second));
  std::set<std::string> want;
  for (int f = 1; f < file_id; ++f) {
    char id[16];
    std::snprintf(id, sizeof id, "%010d", f);
    for (int n = 1; n <= kMpansPerFile; ++n) want.insert(std::string("UDMS-") + id + "-" + std::to_string(n));
  }
  std::vector<std::string> missing;
  std::set_difference(want.begin(), want.end(), ids.begin(), ids.end(), std::back_inserter(missing));
  size_t duplicates = messages.size() - ids.size();
  std::printf("crash: %d rounds, %d files, %zu events; kills during ingest %d; received %zu unique, lost %zu, duplicates %zu\n",
              kRounds, file_id - 1, expected, kills_during_ingest, ids.size(), missing.size(), duplicates);
  EXPECT_TRUE(missing.empty()) << missing.size() << " missing, first " << missing.front();
  EXPECT_EQ(ids, want);
  EXPECT_EQ(FilesIn(dir_ / "archive").size(), static_cast<size_t>(file_id - 1));
  EXPECT_TRUE(FilesIn(dir_ / "rejected").empty());
  std::string out;
  EXPECT_EQ(RunCommand({"/usr/bin/sqlite3", dir_ / "journal.db", "PRAGMA integrity_check"}, &out), 0);
  EXPECT_EQ(out, "ok\n");
  // The audit chain survives every kill intact.
  EXPECT_EQ(RunCommand({CtlPath(), "--config", config_path_, "audit", "verify"}, &out), 0) << out;
  EXPECT_NE(out.find("audit chain intact"), std::string::npos) << out;
}

}  // namespace
}  // namespace gw::testing
