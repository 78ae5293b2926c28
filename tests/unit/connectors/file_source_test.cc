#include "connectors/file/file_source.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <stdio.h>

#include "gw/log.h"
#include "tests/support/test_support.h"

namespace gw::connectors::file {
namespace {

using gw::testing::FilesIn;
using gw::testing::ReadFileOrEmpty;
using gw::testing::WriteFile;

const char kValid[] =
    "ZHV|0000000001|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n"
    "026|1200023305967|V|\n"
    "028|F75A 00802|D|\n"
    "030|S|20160222000000|56311.0|||T|N|\n"
    "ZPT|0000000001|3||1|20160302154650|\n";

class FileSourceTest : public ::testing::Test {
 protected:
  std::unique_ptr<Source> Make(const std::string& extra = "", bool streaming = false) {
    section_ = ConfigSection("test.ini", "source.inbox", 1);
    section_.Add("directory", dir_ / "inbox", 2);
    section_.Add("archive", dir_ / "archive", 3);
    section_.Add("rejected", dir_ / "rejected", 4);
    section_.Add("settle_ms", "0", 5);
    section_.Add("poll_ms", "10", 6);
    if (!extra.empty()) section_.Add("incomplete_after_s", extra, 7);
    if (streaming) {
      section_.Add("stream_above_bytes", "1024", 8);
      section_.Add("batch_events", "7", 9);
    }
    info_.flow_dir = gw::testing::SourceDir() + "/config/flows";
    ConnectorContext ctx{"inbox", section_, info_, logger_};
    auto s = FileSource::Create(ctx);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_TRUE(section_.CheckAllUsed().ok());
    EXPECT_TRUE((*s)->Start("").ok());
    return std::move(s.value());
  }

  gw::testing::TempDir dir_;
  ConfigSection section_;
  GatewayInfo info_;
  StderrLogger logger_{"test"};
};

TEST_F(FileSourceTest, CompleteFileIsDecodedAndArchivedOnlyAfterAck) {
  auto src = Make();
  WriteFile(dir_ / "inbox/a.uff", kValid);
  SourceBatch b;
  auto r = src->Poll(&b, std::chrono::seconds(2));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ(b.unit, "a.uff");
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].id, "UDMS-0000000001-1");
  EXPECT_EQ(b.events[0].origin, "inbox:a.uff:2");
  EXPECT_TRUE(FilesIn(dir_ / "archive").empty()) << "archived before the journal commit";
  EXPECT_EQ(FilesIn(dir_ / "inbox/.claimed"), std::vector<std::string>{"a.uff"});
  src->Ack(b, Status::Ok());
  EXPECT_EQ(FilesIn(dir_ / "archive"), std::vector<std::string>{"a.uff"});
  EXPECT_TRUE(FilesIn(dir_ / "inbox").empty());
}

TEST_F(FileSourceTest, FailedCommitOffersTheSameFileAgain) {
  auto src = Make();
  WriteFile(dir_ / "inbox/a.uff", kValid);
  SourceBatch b;
  ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
  src->Ack(b, Unavailable("disk full"));
  EXPECT_TRUE(FilesIn(dir_ / "archive").empty());
  SourceBatch again;
  ASSERT_TRUE(*src->Poll(&again, std::chrono::seconds(2)));
  EXPECT_EQ(again.unit, "a.uff");
  ASSERT_EQ(again.events.size(), 1u);
  EXPECT_EQ(again.events[0].id, b.events[0].id);
}

TEST_F(FileSourceTest, InvalidFileIsRejectedWithItsErrors) {
  auto src = Make();
  std::string bad = kValid;
  bad.replace(bad.find("1200023305967"), 13, "1200");
  WriteFile(dir_ / "inbox/bad.uff", bad);
  SourceBatch b;
  auto r = src->Poll(&b, std::chrono::milliseconds(500));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r) << "a batch that carries the rejection for the audit";
  EXPECT_TRUE(b.events.empty());
  ASSERT_EQ(b.rejections.size(), 1u);
  EXPECT_EQ(b.rejections[0].unit, "bad.uff");
  EXPECT_EQ(b.rejections[0].reason, "bad.uff:2: 026 mpanCore: expected exactly 13 digits (1200)");
  src->Ack(b, Status::Ok());
  EXPECT_EQ(FilesIn(dir_ / "rejected"), (std::vector<std::string>{"bad.uff", "bad.uff.errors.txt"}));
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "rejected/bad.uff.errors.txt"), "bad.uff:2: 026 mpanCore: expected exactly 13 digits (1200)\n");
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "rejected/bad.uff"), bad) << "the original is kept as it was";
}

TEST_F(FileSourceTest, FilesStillBeingWrittenAreLeftAlone) {
  auto src = Make();
  std::string partial = kValid;
  partial.erase(partial.find("ZPT|"));
  WriteFile(dir_ / "inbox/partial.uff", partial);
  WriteFile(dir_ / "inbox/b.uff.tmp", kValid);
  WriteFile(dir_ / "inbox/.hidden", kValid);
  SourceBatch b;
  auto r = src->Poll(&b, std::chrono::milliseconds(300));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(FilesIn(dir_ / "inbox"), (std::vector<std::string>{"b.uff.tmp", "partial.uff"}));
}

// Files are taken oldest first; one still without its trailer is passed over, not waited for,
// and taken once it is complete.
TEST_F(FileSourceTest, AnOlderFileStillBeingWrittenDoesNotHoldBackTheNextOne) {
  auto src = Make();
  std::string partial = kValid;
  partial.erase(partial.find("ZPT|"));
  WriteFile(dir_ / "inbox/older.uff", partial);
  struct timespec old_times[2] = {{1000000000, 0}, {1000000000, 0}};  // 2001: older than the other
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir_ / "inbox/older.uff").c_str(), old_times, 0), 0);
  std::string second = kValid;
  for (size_t at; (at = second.find("0000000001")) != std::string::npos;) second.replace(at, 10, "0000000002");
  WriteFile(dir_ / "inbox/newer.uff", second);
  SourceBatch b;
  auto r = src->Poll(&b, std::chrono::seconds(2));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_EQ(b.unit, "newer.uff");
  src->Ack(b, Status::Ok());
  EXPECT_EQ(FilesIn(dir_ / "inbox"), std::vector<std::string>{"older.uff"});
  WriteFile(dir_ / "inbox/older.uff", kValid);  // its writer finishes it
  SourceBatch c;
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    auto got = src->Poll(&c, std::chrono::milliseconds(100));
    return got.ok() && *got;
  }, std::chrono::seconds(5)));
  EXPECT_EQ(c.unit, "older.uff");
  ASSERT_EQ(c.events.size(), 1u);
}

TEST_F(FileSourceTest, FileWithoutTrailerIsRejectedOnceItStopsGrowing) {
  auto src = Make(/*incomplete_after_s=*/"1");
  std::string partial = kValid;
  partial.erase(partial.find("ZPT|"));
  WriteFile(dir_ / "inbox/partial.uff", partial);
  SourceBatch b;
  ASSERT_TRUE(gw::testing::WaitFor([&] {
    auto r = src->Poll(&b, std::chrono::milliseconds(100));
    return !FilesIn(dir_ / "rejected").empty();
  }, std::chrono::seconds(5)));
  EXPECT_NE(ReadFileOrEmpty(dir_ / "rejected/partial.uff.errors.txt").find("missing ZPT trailer"), std::string::npos);
}

TEST_F(FileSourceTest, FileClaimedBeforeACrashIsTakenFirst) {
  {
    auto src = Make();
    WriteFile(dir_ / "inbox/a.uff", kValid);
    SourceBatch b;
    ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
    // No Ack: the process "crashed" here.
  }
  auto src = Make();
  SourceBatch b;
  ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
  EXPECT_EQ(b.unit, "a.uff");
  src->Ack(b, Status::Ok());
  EXPECT_EQ(FilesIn(dir_ / "archive"), std::vector<std::string>{"a.uff"});
}

TEST_F(FileSourceTest, SameNameDroppedTwiceIsArchivedUnderANewName) {
  auto src = Make();
  for (int i = 0; i < 2; ++i) {
    WriteFile(dir_ / "inbox/a.uff", kValid);
    SourceBatch b;
    ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
    src->Ack(b, Status::Ok());
  }
  EXPECT_EQ(FilesIn(dir_ / "archive"), (std::vector<std::string>{"a.uff", "a.uff.1"}));
}

std::string ManyMpans(int n, bool broken_last = false) {
  std::string s = "ZHV|0000000009|D0010002|D|UDMS|X|MRCY|20160302153151||||OPER|\n";
  for (int i = 0; i < n; ++i) {
    char mpan[16];
    std::snprintf(mpan, sizeof mpan, "%013d", 7000000 + i);
    s += std::string("026|") + (broken_last && i == n - 1 ? "BAD" : mpan) + "|V|\n028|M1|D|\n030|S|20160222000000|1.0|||T|N|\n";
  }
  s += "ZPT|0000000009|" + std::to_string(3 * n) + "||" + std::to_string(n) + "|20160302154650|\n";
  return s;
}

TEST_F(FileSourceTest, LargeFileIsStreamedInBatchesAndArchivedAfterTheLast) {
  auto src = Make("", /*streaming=*/true);
  WriteFile(dir_ / "inbox/big.uff", ManyMpans(50));
  std::vector<std::string> ids;
  int batches = 0;
  bool failed_once = false;
  for (;;) {
    SourceBatch b;
    auto r = src->Poll(&b, std::chrono::seconds(2));
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(*r) << "stream stalled after " << batches << " batches";
    EXPECT_LE(b.events.size(), 7u);
    if (batches == 3 && !failed_once) {
      // A failed commit in the middle: the same batch comes back.
      failed_once = true;
      std::string first = b.events.front().id;
      src->Ack(b, Unavailable("disk full"));
      SourceBatch again;
      ASSERT_TRUE(*src->Poll(&again, std::chrono::seconds(2)));
      EXPECT_EQ(again.events.front().id, first);
      b = std::move(again);
    }
    ++batches;
    for (const Event& e : b.events) ids.push_back(e.id);
    if (!b.last) {
      EXPECT_TRUE(FilesIn(dir_ / "archive").empty()) << "archived before the last batch";
    }
    src->Ack(b, Status::Ok());
    if (b.last) break;
  }
  EXPECT_EQ(batches, 8);
  ASSERT_EQ(ids.size(), 50u);
  EXPECT_EQ(ids.front(), "UDMS-0000000009-1");
  EXPECT_EQ(ids.back(), "UDMS-0000000009-50");
  EXPECT_EQ(FilesIn(dir_ / "archive"), std::vector<std::string>{"big.uff"});
}

TEST_F(FileSourceTest, TwoFilesInHandAreDistinctAndAFailedOneComesBack) {
  auto src = Make();
  EXPECT_EQ(dynamic_cast<PipelinedSource*>(src.get())->MaxBatchesInHand(), 3);
  WriteFile(dir_ / "inbox/a.uff", kValid);
  WriteFile(dir_ / "inbox/b.uff", kValid);
  SourceBatch a, b, none;
  ASSERT_TRUE(*src->Poll(&a, std::chrono::seconds(2)));
  ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
  EXPECT_NE(a.unit, b.unit) << "a claimed file in hand is not taken again";
  EXPECT_FALSE(*src->Poll(&none, std::chrono::milliseconds(50)));
  // The first fails to commit, so the core hands the second back too.
  src->Ack(a, Unavailable("disk full"));
  src->Ack(b, Unavailable("not committed: the batch before it failed to commit"));
  EXPECT_TRUE(FilesIn(dir_ / "archive").empty());
  std::set<std::string> again;
  for (int i = 0; i < 2; ++i) {
    SourceBatch x;
    ASSERT_TRUE(*src->Poll(&x, std::chrono::seconds(2)));
    again.insert(x.unit);
    src->Ack(x, Status::Ok());
  }
  EXPECT_EQ(again, (std::set<std::string>{"a.uff", "b.uff"}));
  EXPECT_EQ(FilesIn(dir_ / "archive"), (std::vector<std::string>{"a.uff", "b.uff"}));
}

TEST_F(FileSourceTest, AStreamWithTwoBatchesInHandEndsOnceAndRetriesInOrder) {
  auto src = Make("", /*streaming=*/true);
  WriteFile(dir_ / "inbox/big.uff", ManyMpans(30));  // batches of 7, 7, 7, 7 and 2
  SourceBatch first, second, none;
  ASSERT_TRUE(*src->Poll(&first, std::chrono::seconds(2)));
  ASSERT_TRUE(*src->Poll(&second, std::chrono::seconds(2)));
  ASSERT_EQ(first.events.size(), 7u);
  EXPECT_EQ(second.events.front().id, "UDMS-0000000009-8");
  src->Ack(first, Unavailable("disk full"));
  src->Ack(second, Unavailable("not committed: the batch before it failed to commit"));
  std::vector<std::string> ids;
  SourceBatch in_hand;
  for (int batches = 0;; ++batches) {
    ASSERT_LT(batches, 10);
    SourceBatch b;
    ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2))) << "after " << ids.size() << " events";
    if (batches == 0) {
      EXPECT_EQ(b.events.front().id, first.events.front().id) << "the failed ones come back in order";
    } else if (batches == 1) {
      EXPECT_EQ(b.events.front().id, second.events.front().id);
    }
    // The core acks one batch behind the poll.
    if (batches > 0) src->Ack(in_hand, Status::Ok());
    for (const Event& e : b.events) ids.push_back(e.id);
    in_hand = std::move(b);
    if (in_hand.last) break;
  }
  EXPECT_FALSE(*src->Poll(&none, std::chrono::milliseconds(50))) << "nothing beyond the last batch while it is in hand";
  EXPECT_TRUE(FilesIn(dir_ / "archive").empty());
  src->Ack(in_hand, Status::Ok());
  EXPECT_EQ(ids.size(), 30u);
  EXPECT_EQ(ids.back(), "UDMS-0000000009-30");
  EXPECT_EQ(FilesIn(dir_ / "archive"), std::vector<std::string>{"big.uff"});
  EXPECT_FALSE(*src->Poll(&none, std::chrono::milliseconds(50)));
}

TEST_F(FileSourceTest, AStreamedBatchThatFailsAgainComesBackBeforeTheOnesStillWaiting) {
  // Three batches in hand fail; the first is offered again and fails again while the other two
  // still wait to be offered. It must come back first: if it went behind them, the last batch
  // would commit (checkpoint "done", file archived) with the first one never stored.
  auto src = Make("", /*streaming=*/true);
  WriteFile(dir_ / "inbox/big.uff", ManyMpans(20));  // batches of 7, 7 and 6
  SourceBatch s1, s2, s3;
  ASSERT_TRUE(*src->Poll(&s1, std::chrono::seconds(2)));
  ASSERT_TRUE(*src->Poll(&s2, std::chrono::seconds(2)));
  ASSERT_TRUE(*src->Poll(&s3, std::chrono::seconds(2)));
  ASSERT_TRUE(s3.last);
  for (SourceBatch* b : {&s1, &s2, &s3}) src->Ack(*b, Unavailable("disk full"));
  SourceBatch again;
  ASSERT_TRUE(*src->Poll(&again, std::chrono::seconds(2)));
  EXPECT_EQ(again.events.front().id, s1.events.front().id);
  src->Ack(again, Unavailable("disk full again"));
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    SourceBatch b;
    ASSERT_TRUE(*src->Poll(&b, std::chrono::seconds(2)));
    order.push_back(b.events.front().id);
    src->Ack(b, Status::Ok());
  }
  EXPECT_EQ(order, (std::vector<std::string>{s1.events.front().id, s2.events.front().id, s3.events.front().id}));
  EXPECT_EQ(FilesIn(dir_ / "archive"), std::vector<std::string>{"big.uff"});
}

TEST_F(FileSourceTest, LargeInvalidFileIsRejectedBeforeAnythingIsEmitted) {
  auto src = Make("", /*streaming=*/true);
  WriteFile(dir_ / "inbox/big.uff", ManyMpans(50, /*broken_last=*/true));
  SourceBatch b;
  auto r = src->Poll(&b, std::chrono::milliseconds(500));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(*r);
  EXPECT_TRUE(b.events.empty()) << "no events of a file that turns out invalid";
  EXPECT_EQ(b.rejections.size(), 1u);
  EXPECT_EQ(FilesIn(dir_ / "rejected"), (std::vector<std::string>{"big.uff", "big.uff.errors.txt"}));
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "rejected/big.uff.errors.txt"), "big.uff:149: 026 mpanCore: expected exactly 13 digits (BAD)\n");
}

TEST(FileSourceInotifyTest, NewFileIsTakenWithoutWaitingForTheRescan) {
  gw::testing::TempDir dir;
  ConfigSection sec("test.ini", "source.inbox", 1);
  sec.Add("directory", dir / "inbox", 2);
  sec.Add("archive", dir / "archive", 3);
  sec.Add("rejected", dir / "rejected", 4);
  sec.Add("settle_ms", "0", 5);
  sec.Add("poll_ms", "600000", 6);  // the safety-net rescan would take ten minutes
  GatewayInfo info;
  info.flow_dir = gw::testing::SourceDir() + "/config/flows";
  StderrLogger log("test");
  auto src = FileSource::Create(ConnectorContext{"inbox", sec, info, log});
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start("").ok());
  SourceBatch b;
  ASSERT_FALSE(*(*src)->Poll(&b, std::chrono::milliseconds(200)));  // the first scan: empty inbox
  WriteFile(dir / "inbox/a.uff.tmp", kValid);
  ASSERT_EQ(::rename((dir / "inbox/a.uff.tmp").c_str(), (dir / "inbox/a.uff").c_str()), 0);
  bool got = false;
  for (int i = 0; i < 20 && !got; ++i) got = *(*src)->Poll(&b, std::chrono::milliseconds(250));
  ASSERT_TRUE(got) << "not taken within 5 s: inotify did not wake the source";
  EXPECT_EQ(b.unit, "a.uff");
}

TEST(FileSourceDeleteTest, DeleteAfterCommitRemovesTheFileOnlyAfterAck) {
  gw::testing::TempDir dir;
  ConfigSection sec("test.ini", "source.inbox", 1);
  sec.Add("directory", dir / "inbox", 2);
  sec.Add("rejected", dir / "rejected", 3);
  sec.Add("delete_after_commit", "true", 4);
  sec.Add("settle_ms", "0", 5);
  GatewayInfo info;
  info.flow_dir = gw::testing::SourceDir() + "/config/flows";
  StderrLogger log("test");
  auto src = FileSource::Create(ConnectorContext{"inbox", sec, info, log});
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ASSERT_TRUE((*src)->Start("").ok());
  WriteFile(dir / "inbox/a.uff", kValid);
  SourceBatch b;
  ASSERT_TRUE(*(*src)->Poll(&b, std::chrono::seconds(2)));
  EXPECT_EQ(FilesIn(dir / "inbox/.claimed"), std::vector<std::string>{"a.uff"});
  (*src)->Ack(b, Status::Ok());
  EXPECT_TRUE(FilesIn(dir / "inbox/.claimed").empty());
  EXPECT_TRUE(FilesIn(dir / "inbox").empty());
  ConfigSection both("test.ini", "source.x", 1);
  both.Add("directory", dir / "in2", 2);
  both.Add("archive", dir / "arch", 3);
  both.Add("rejected", dir / "rej", 4);
  both.Add("delete_after_commit", "true", 5);
  auto bad = FileSource::Create(ConnectorContext{"x", both, info, log});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "test.ini:3: [source.x] archive: cannot go with delete_after_commit = true");
}

// Regression: a claimed file that could not be moved to rejected/ was claimed and decoded
// again at once, for ever, blocking every other file.
TEST(FileSourceStuckTest, FileThatCannotBeMovedIsSetAsideAndTheOthersFlow) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs (a second file system)";
  gw::testing::TempDir dir;
  std::string rejected = dir / "rejected";
  ASSERT_EQ(::mkdir(rejected.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", rejected.c_str(), "tmpfs", 0, "size=1m"), 0);
  struct Unmount {
    std::string d;
    ~Unmount() { ::umount2(d.c_str(), MNT_DETACH); }
  } unmount{rejected};
  ConfigSection sec("test.ini", "source.inbox", 1);
  sec.Add("directory", dir / "inbox", 2);
  sec.Add("archive", dir / "archive", 3);
  sec.Add("rejected", rejected, 4);
  sec.Add("settle_ms", "0", 5);
  GatewayInfo info;
  info.flow_dir = gw::testing::SourceDir() + "/config/flows";
  StderrLogger log("test");
  auto src = FileSource::Create(ConnectorContext{"inbox", sec, info, log});
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE((*src)->Start("").ok());
  std::string bad = kValid;
  bad.replace(bad.find("1200023305967"), 13, "1200");
  WriteFile(dir / "inbox/a_bad.uff", bad);
  WriteFile(dir / "inbox/b_good.uff", kValid);
  std::vector<std::string> units;
  for (int i = 0; i < 10 && units.size() < 2; ++i) {
    SourceBatch b;
    auto r = (*src)->Poll(&b, std::chrono::milliseconds(300));
    ASSERT_TRUE(r.ok());
    if (!*r) continue;
    units.push_back(b.events.empty() ? "rejections" : b.unit);
    (*src)->Ack(b, Status::Ok());
  }
  EXPECT_NE(std::find(units.begin(), units.end(), "b_good.uff"), units.end()) << "the good file must not wait behind the stuck one";
  EXPECT_EQ(FilesIn(dir / "archive"), std::vector<std::string>{"b_good.uff"});
  EXPECT_EQ(FilesIn(dir / "inbox/.claimed"), std::vector<std::string>{"a_bad.uff"});
}

TEST(FileSourceConfigTest, MissingDirectoryKeyIsNamed) {
  ConfigSection s("gw.ini", "source.inbox", 9);
  s.Add("type", "file", 10);
  GatewayInfo info;
  StderrLogger log("t");
  auto src = FileSource::Create(ConnectorContext{"inbox", s, info, log});
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().message(), "gw.ini:9: [source.inbox] directory: is required");
}

}  // namespace
}  // namespace gw::connectors::file
