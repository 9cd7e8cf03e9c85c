// The Raft log store: what a Ready persists comes back after a restart, a torn last record is
// cut, damage in the middle refuses the load, and compaction survives a crash at any point.
#include <fcntl.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "raft/log_store.h"
#include "../support/temp_dir.h"

namespace mydfs::raft {
namespace {

namespace fs = std::filesystem;

Entry entry(uint64_t term, uint64_t index, std::string data = "") {
  Entry e;
  e.term = term;
  e.index = index;
  e.data = data.empty() ? "cmd-" + std::to_string(index) : data;
  return e;
}

Ready ready_with(std::vector<Entry> es, std::optional<HardState> hs = std::nullopt) {
  Ready rd;
  rd.entries = std::move(es);
  rd.hard_state = hs;
  return rd;
}

std::vector<std::string> segments(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(LogStore, saveThenLoad_restoresEntriesAndHardState) {
  mydfs::testing::TempDir d;
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1), entry(1, 2)}, HardState{1, 3, 0})).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 3)}, HardState{1, 3, 2})).ok());
  }
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  Restored r = (*s)->take_restored(ConfState{{1, 2, 3}}, 0);
  EXPECT_EQ(r.hard_state, (HardState{1, 3, 2}));
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[2], entry(1, 3));
}

TEST(LogStore, entriesAtOrBelowTheLast_replaceTheSuffix) {
  mydfs::testing::TempDir d;
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1), entry(1, 2), entry(1, 3)})).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(2, 2, "new leader")})).ok());
  }
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok());
  Restored r = (*s)->take_restored({}, 0);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[1], entry(2, 2, "new leader"));
}

TEST(LogStore, gapInEntries_isRefusedAtSave) {
  mydfs::testing::TempDir d;
  auto s = LogStore::open(d.path());
  ASSERT_TRUE((*s)->save(ready_with({entry(1, 1)})).ok());
  EXPECT_EQ((*s)->save(ready_with({entry(1, 3)})).code(), Code::INTERNAL);
}

TEST(LogStore, tornLastRecord_isCut) {
  mydfs::testing::TempDir d;
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1)}, HardState{1, 1, 1})).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 2), entry(1, 3)})).ok());
  }
  auto seg = segments(d.path()).back();
  fs::resize_file(seg, fs::file_size(seg) - 5);  // the second save was cut short
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  Restored r = (*s)->take_restored({}, 0);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.hard_state, (HardState{1, 1, 1}));
  // And the store appends after what survived.
  ASSERT_TRUE((*s)->save(ready_with({entry(2, 2)})).ok());
  auto again = LogStore::open(d.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->last_index(), 2u);
}

TEST(LogStore, damageBeforeValidRecords_refusesTheLoad) {
  mydfs::testing::TempDir d;
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1)})).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 2)})).ok());
  }
  auto seg = segments(d.path()).back();
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);  // inside the first record's body
    f.put('\x7f');
  }
  auto s = LogStore::open(d.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::CORRUPT);
  EXPECT_NE(s.error().message.find("byte 0"), std::string::npos) << s.error().message;
}

TEST(LogStore, compact_keepsSnapshotAndRest_andDropsOldSegments) {
  mydfs::testing::TempDir d;
  SnapshotMeta snap{5, 2, ConfState{{1, 2, 3}}};
  {
    auto s = LogStore::open(d.path());
    std::vector<Entry> es;
    for (uint64_t i = 1; i <= 7; ++i) es.push_back(entry(i <= 3 ? 1 : 2, i));
    ASSERT_TRUE((*s)->save(ready_with(es, HardState{2, 1, 7})).ok());
    ASSERT_TRUE((*s)->compact(snap, "descriptor", HardState{2, 1, 7}, {entry(2, 6), entry(2, 7)}).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(2, 8)})).ok());
  }
  EXPECT_EQ(segments(d.path()).size(), 1u);
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ((*s)->snapshot(), snap);
  EXPECT_EQ((*s)->snapshot_data(), "descriptor");
  Restored r = (*s)->take_restored({}, 0);
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries.front().index, 6u);
  EXPECT_EQ(r.entries.back().index, 8u);
}

TEST(LogStore, crashDuringCompaction_oldAndNewSegmentsLoadTogether) {
  mydfs::testing::TempDir d;
  std::string keep = d.path() + "/old-copy";
  SnapshotMeta snap{2, 1, ConfState{{1}}};
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1), entry(1, 2), entry(1, 3)}, HardState{1, 1, 3})).ok());
    fs::copy_file(segments(d.path()).back(), keep);
    ASSERT_TRUE((*s)->compact(snap, "", HardState{1, 1, 3}, {entry(1, 3)}).ok());
  }
  // The old segment was not yet deleted when the node died.
  fs::copy_file(keep, d.path() + "/raft-0000000000000001.log");
  fs::remove(keep);
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ((*s)->snapshot().index, 2u);
  Restored r = (*s)->take_restored({}, 0);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].index, 3u);
}

TEST(LogStore, snapshotInReady_replacesTheLog) {
  mydfs::testing::TempDir d;
  {
    auto s = LogStore::open(d.path());
    ASSERT_TRUE((*s)->save(ready_with({entry(1, 1), entry(1, 2)})).ok());
    Ready rd;
    rd.snapshot = SnapshotMeta{10, 3, ConfState{{1, 2, 3}}};
    rd.snapshot_data = "from the leader";
    rd.hard_state = HardState{3, 0, 10};
    ASSERT_TRUE((*s)->save(rd).ok());
    ASSERT_TRUE((*s)->save(ready_with({entry(3, 11)})).ok());
  }
  auto s = LogStore::open(d.path());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ((*s)->snapshot().index, 10u);
  Restored r = (*s)->take_restored({}, 0);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].index, 11u);
  EXPECT_EQ(r.hard_state.commit, 10u);
}

}  // namespace
}  // namespace mydfs::raft
