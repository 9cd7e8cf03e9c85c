// Per-slice read counts, the hot-slice cache and the rate windows, without a daemon.
#include <fstream>

#include <gtest/gtest.h>

#include "common/file_io.h"
#include "common/metrics.h"
#include "storage/slice_stats.h"
#include "../support/temp_dir.h"

namespace mydfs::storage {
namespace {

proto::SlotMeta meta(uint32_t slot, uint32_t gen, uint32_t len, uint64_t applied = 1) {
  proto::SlotMeta m;
  m.loc = Location{1, slot, gen};
  m.state = proto::SlotState::LIVE;
  m.file_id = 100 + slot;
  m.valid_len = len;
  m.applied_index = applied;
  m.payload_checksum = slot * 1000 + applied;
  return m;
}

std::shared_ptr<const AlignedBuffer> buf(size_t n) { return std::make_shared<AlignedBuffer>(n); }

TEST(SliceStats, countsPerSlice_newGenerationStartsAgain) {
  Metrics m;
  SliceStats s({"", 3, 0}, &m);
  for (int i = 0; i < 4; ++i) s.record_read(meta(5, 1, 10));
  EXPECT_EQ(s.record_read(meta(6, 1, 10)), 1u);
  EXPECT_EQ(s.of(Location{0, 5, 1}).since_start, 4u);
  EXPECT_EQ(s.hot_slices(), 1u);
  EXPECT_FALSE(s.hot(2));
  EXPECT_TRUE(s.hot(3));
  // The slot is reused: the new slice has no history, and the old one no longer counts as hot.
  EXPECT_EQ(s.record_read(meta(5, 2, 10)), 1u);
  EXPECT_EQ(s.of(Location{0, 5, 2}).all_time, 1u);
  EXPECT_EQ(s.of(Location{0, 5, 1}).since_start, 0u);
  EXPECT_EQ(s.hot_slices(), 0u);
  s.record_read(meta(5, 2, 10));
  EXPECT_EQ(s.reads_total(), 7u);
  auto top = s.top(1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].file_id, 105u);
}

TEST(SliceStats, cacheAnswersOnlyTheExactHeader_andStaysWithinBudget) {
  Metrics m;
  SliceStats s({"", 1, 10000}, &m);
  s.insert(meta(1, 1, 4000), buf(4000));
  EXPECT_NE(s.lookup(meta(1, 1, 4000)), nullptr);
  EXPECT_EQ(s.lookup(meta(1, 1, 4000, 2)), nullptr);  // a later mutation: never the old bytes
  EXPECT_EQ(s.cache_entries(), 0u);                     // ... and the old copy is gone
  s.insert(meta(1, 1, 4000), buf(4000));
  s.insert(meta(2, 1, 4000), buf(4000));
  EXPECT_NE(s.lookup(meta(1, 1, 4000)), nullptr);  // 1 is now the most recently used
  s.insert(meta(3, 1, 4000), buf(4000));           // over budget: 2 goes
  EXPECT_EQ(s.cache_bytes_used(), 8000u);
  EXPECT_EQ(s.lookup(meta(2, 1, 4000)), nullptr);
  EXPECT_NE(s.lookup(meta(1, 1, 4000)), nullptr);
  s.insert(meta(4, 1, 20000), buf(20000));  // larger than the whole budget: not cached
  EXPECT_EQ(s.cache_entries(), 2u);
  s.invalidate(3);
  EXPECT_EQ(s.lookup(meta(3, 1, 4000)), nullptr);
  EXPECT_EQ(s.cache_hits(), 3u);
  EXPECT_EQ(s.cache_misses(), 3u);
  EXPECT_EQ(m.value("mydfs_hot_cache_invalidations_total"), 1);
  EXPECT_EQ(m.value("mydfs_hot_cache_evictions_total"), 1);
}

TEST(SliceStats, allTimeCountsSaveAndLoad_damagedFileRefused) {
  mydfs::testing::TempDir dir;
  std::string path = dir / "reads";
  {
    Metrics m;
    SliceStats s({path, 20, 0}, &m);
    ASSERT_TRUE(s.load().ok());  // no file yet: empty history
    for (int i = 0; i < 7; ++i) s.record_read(meta(9, 3, 10));
    ASSERT_TRUE(s.save().ok());
  }
  {
    Metrics m;
    SliceStats s({path, 20, 0}, &m);
    ASSERT_TRUE(s.load().ok());
    auto r = s.of(Location{0, 9, 3});
    EXPECT_EQ(r.all_time, 7u);
    EXPECT_EQ(r.since_start, 0u);
    EXPECT_EQ(r.file_id, 109u);
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(14);
    f.put('\x55');
  }
  Metrics m;
  SliceStats s({path, 20, 0}, &m);
  auto st = s.load();
  EXPECT_EQ(st.code(), Code::CORRUPT);
  EXPECT_EQ(s.of(Location{0, 9, 3}).all_time, 0u);
}

TEST(SliceStats, failedSave_reportsItAndKeepsTheLastSavedCounts) {
  mydfs::testing::TempDir dir;
  std::string path = dir / "reads";
  Metrics m;
  SliceStats s({path, 20, 0}, &m);
  for (int i = 0; i < 3; ++i) s.record_read(meta(4, 1, 10));
  ASSERT_TRUE(s.save().ok());
  s.record_read(meta(4, 1, 10));
  // The disk fails (full, or EIO) half way through the new file.
  set_write_fault([](const std::string& p, uint64_t, size_t len) -> long {
    return p.find("reads.tmp") != std::string::npos ? static_cast<long>(len / 2) : -1;
  });
  Status st = s.save();
  set_write_fault(nullptr);
  EXPECT_FALSE(st.ok());
  Metrics m2;
  SliceStats again({path, 20, 0}, &m2);
  ASSERT_TRUE(again.load().ok());
  EXPECT_EQ(again.of(Location{0, 4, 1}).all_time, 3u);
}

TEST(RateWindow, lastSecondAndLastMinute) {
  RateWindow w;
  w.add_at(100, 5);
  w.add_at(100, 5);
  w.add_at(101, 30);
  EXPECT_EQ(w.rate_at(101, 1), 10);   // the current second is not complete yet
  EXPECT_EQ(w.rate_at(102, 1), 30);
  EXPECT_EQ(w.rate_at(102, 60), 40.0 / 60);
  EXPECT_EQ(w.rate_at(161, 60), 30.0 / 60);  // second 100 left the minute
  EXPECT_EQ(w.rate_at(300, 60), 0);          // idle: buckets from long ago do not count
  w.add_at(164, 1);                          // same bucket as second 100, which it replaces
  EXPECT_EQ(w.rate_at(165, 1), 1);
  EXPECT_EQ(w.rate_at(165, 60), 1.0 / 60);
}

}  // namespace
}  // namespace mydfs::storage
