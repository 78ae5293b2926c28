// The file-system helpers the file source relies on for durable moves.
#include "gw/fs.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace gw {
namespace {

constexpr auto kWait = std::chrono::seconds(5);

TEST(DirSyncerTest, MarkedDirectoriesAreSyncedInTheBackgroundOncePerMark) {
  testing::TempDir dir;
  std::atomic<int> errors{0};
  DirSyncer sync("dirsync.test", std::chrono::milliseconds(10), [&](const Status&) { ++errors; });
  sync.Mark(dir.path());
  sync.Mark(dir.path());  // twice before a round: one fsync
  ASSERT_TRUE(testing::WaitFor([&] { return sync.synced() == 1; }, kWait));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(sync.synced(), 1);  // nothing marked since: nothing more
  EXPECT_EQ(errors.load(), 0);
}

TEST(DirSyncerTest, AFailedSyncIsReportedOnceAndTriedAgainUntilItWorks) {
  testing::TempDir dir;
  const std::string later = dir / "later";
  std::atomic<int> errors{0};
  DirSyncer sync("dirsync.test", std::chrono::milliseconds(10), [&](const Status&) { ++errors; });
  sync.Mark(later);  // does not exist yet: the fsync fails
  ASSERT_TRUE(testing::WaitFor([&] { return errors.load() == 1; }, kWait));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(errors.load(), 1);  // a run of failures is reported once
  EXPECT_EQ(sync.synced(), 0);
  ASSERT_EQ(::mkdir(later.c_str(), 0750), 0);
  EXPECT_TRUE(testing::WaitFor([&] { return sync.synced() == 1; }, kWait));  // still marked: tried again
}

TEST(DirSyncerTest, WhatIsStillMarkedIsSyncedWhenItStops) {
  testing::TempDir dir;
  int errors = 0;
  {
    // No round comes within the test: only the destructor can try the marked directory (one
    // that does not exist, so that the attempt shows).
    DirSyncer sync("dirsync.test", std::chrono::hours(1), [&](const Status&) { ++errors; });
    sync.Mark(dir / "missing");
    EXPECT_EQ(errors, 0);
  }
  EXPECT_EQ(errors, 1);
}

TEST(MoveIntoTest, NeverOverwritesAndNamesTheCopy) {
  testing::TempDir dir;
  ASSERT_EQ(::mkdir((dir / "a").c_str(), 0750), 0);
  ASSERT_EQ(::mkdir((dir / "b").c_str(), 0750), 0);
  testing::WriteFile(dir / "a/f", "one");
  testing::WriteFile(dir / "b/f", "already there");
  auto moved = MoveInto(dir / "a/f", dir / "b", "f", /*fsync_dirs=*/false);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, dir / "b/f.1");
  EXPECT_EQ(*ReadFile(dir / "b/f"), "already there");
  EXPECT_EQ(*ReadFile(dir / "b/f.1"), "one");
}

}  // namespace
}  // namespace gw
