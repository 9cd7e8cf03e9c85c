#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/codec.h"
#include "seglog/wal.h"
#include "../support/temp_dir.h"

namespace mydfs::seglog {
namespace {

namespace fs = std::filesystem;

std::string body(uint64_t idx, const std::string& text) {
  Writer w;
  w.u64(idx);
  w.str(text);
  return w.take();
}

std::string text_of(std::string_view b) {
  Reader r(b);
  r.u64();
  return r.str();
}

class WalTest : public ::testing::Test {
 protected:
  std::string log_dir() const { return dir_ / "wal"; }

  // Opens the log and collects what replay visits.
  Result<std::unique_ptr<Wal>> open(uint64_t after = 0) {
    seen_.clear();
    return Wal::open(log_dir(), after, [this](uint64_t idx, std::string_view b) {
      seen_.emplace_back(idx, text_of(b));
      return ok_status();
    });
  }

  void append_n(Wal& w, int n) {
    std::vector<std::string> batch;
    uint64_t first = w.last_index() + 1;
    for (int i = 0; i < n; ++i) batch.push_back(body(first + i, "record " + std::to_string(first + i)));
    ASSERT_TRUE(w.append(batch, first).ok());
    ASSERT_TRUE(w.sync().ok());
  }

  std::string only_segment() const {
    std::vector<std::string> segs;
    for (auto& e : fs::directory_iterator(log_dir())) segs.push_back(e.path().string());
    EXPECT_EQ(segs.size(), 1u);
    return segs.empty() ? "" : segs[0];
  }

  static void append_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << bytes;
  }

  mydfs::testing::TempDir dir_;
  std::vector<std::pair<uint64_t, std::string>> seen_;
};

TEST_F(WalTest, appendThenReplay_inOrder) {
  {
    auto w = open();
    ASSERT_TRUE(w.ok());
    append_n(**w, 3);
    append_n(**w, 7);
  }
  auto w = open();
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  ASSERT_EQ(seen_.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(seen_[i].first, i + 1);
    EXPECT_EQ(seen_[i].second, "record " + std::to_string(i + 1));
  }
  EXPECT_EQ((*w)->last_index(), 10u);
}

TEST_F(WalTest, replay_skipsEntriesAtOrBeforeCheckpoint) {
  {
    auto w = open();
    append_n(**w, 10);
  }
  auto w = open(6);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(seen_.size(), 4u);
  EXPECT_EQ(seen_.front().first, 7u);
}

TEST_F(WalTest, tornLastRecord_cutAndAppendContinues) {
  {
    auto w = open();
    append_n(**w, 5);
  }
  std::string rec = Wal::encode_record(body(6, "half written"));
  append_bytes(only_segment(), rec.substr(0, rec.size() - 5));
  {
    auto w = open();
    ASSERT_TRUE(w.ok()) << w.error().to_string();
    EXPECT_EQ(seen_.size(), 5u);
    EXPECT_EQ((*w)->last_index(), 5u);
    append_n(**w, 1);
  }
  auto w = open();
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(seen_.size(), 6u);
  EXPECT_EQ(seen_.back().second, "record 6");
}

TEST_F(WalTest, tornHeaderOnly_cut) {
  {
    auto w = open();
    append_n(**w, 2);
  }
  append_bytes(only_segment(), std::string("\x20\x00\x00", 3));
  auto w = open();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(seen_.size(), 2u);
}

TEST_F(WalTest, zeroFilledTail_cut) {
  {
    auto w = open();
    append_n(**w, 2);
  }
  append_bytes(only_segment(), std::string(4096, '\0'));
  auto w = open();
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  EXPECT_EQ(seen_.size(), 2u);
}

TEST_F(WalTest, lastRecordChecksumBad_cut) {
  {
    auto w = open();
    append_n(**w, 4);
  }
  auto seg = only_segment();
  auto size = fs::file_size(seg);
  int fd = ::open(seg.c_str(), O_RDWR);
  char c = 'Z';
  ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(size - 2)), 1);
  ::close(fd);
  auto w = open();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(seen_.size(), 3u);
}

TEST_F(WalTest, corruptMiddleRecord_refusesToOpen) {
  {
    auto w = open();
    append_n(**w, 10);
  }
  auto seg = only_segment();
  // Record 5 starts after 4 records; flip a byte of its body.
  size_t rec = Wal::encode_record(body(1, "record 1")).size();  // records 1..9 have this size
  size_t total = 9 * rec + Wal::encode_record(body(10, "record 10")).size();
  int fd = ::open(seg.c_str(), O_RDWR);
  off_t off = static_cast<off_t>(4 * rec + kWalRecordHeader + 9);
  char c;
  ASSERT_EQ(pread(fd, &c, 1, off), 1);
  c ^= 1;
  ASSERT_EQ(pwrite(fd, &c, 1, off), 1);
  ::close(fd);
  auto w = open();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.code(), Code::CORRUPT);
  EXPECT_NE(w.error().message.find(fmt::format("at byte {}", 4 * rec)), std::string::npos) << w.error().message;
  // Nothing was cut: the file still holds all ten records.
  EXPECT_EQ(fs::file_size(seg), total);
}

TEST_F(WalTest, indexGap_refused) {
  {
    auto w = open();
    append_n(**w, 2);
  }
  append_bytes(only_segment(), Wal::encode_record(body(9, "out of order")));
  auto w = open();
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message.find("gap"), std::string::npos);
}

TEST_F(WalTest, truncateThrough_dropsOldSegmentsKeepsIndex) {
  {
    auto w = open();
    append_n(**w, 5);
    ASSERT_TRUE((*w)->truncate_through(5).ok());
    append_n(**w, 3);
    EXPECT_EQ((*w)->last_index(), 8u);
  }
  size_t segs = 0;
  for (auto& e : fs::directory_iterator(log_dir())) {
    (void)e;
    ++segs;
  }
  EXPECT_EQ(segs, 1u);
  auto w = open(5);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(seen_.size(), 3u);
  EXPECT_EQ(seen_.front().first, 6u);
}

// A checkpoint with nothing logged since the last one starts the segment it already has again
// (same name): the log must keep that file, not delete it as an old segment.
TEST_F(WalTest, truncateThroughTwice_keepsTheActiveSegment) {
  {
    auto w = open();
    append_n(**w, 4);
    ASSERT_TRUE((*w)->truncate_through(4).ok());
    ASSERT_TRUE((*w)->truncate_through(4).ok());
    append_n(**w, 2);
    EXPECT_EQ((*w)->bytes(), 2 * Wal::encode_record(body(5, "record 5")).size());
  }
  EXPECT_EQ(fs::path(only_segment()).filename().string(), "wal-0000000000000005.log");
  auto w = open(4);
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  ASSERT_EQ(seen_.size(), 2u);
  EXPECT_EQ(seen_.front(), std::make_pair(uint64_t{5}, std::string("record 5")));
  EXPECT_EQ((*w)->last_index(), 6u);
}

// A log that crashed right after starting a new segment (empty) opens, and appends there.
TEST_F(WalTest, emptyLastSegment_isReplacedAndAppendsContinue) {
  {
    auto w = open();
    append_n(**w, 3);
  }
  append_bytes(log_dir() + "/wal-0000000000000004.log", "");
  {
    auto w = open();
    ASSERT_TRUE(w.ok()) << w.error().to_string();
    EXPECT_EQ(seen_.size(), 3u);
    append_n(**w, 1);
  }
  auto w = open();
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  ASSERT_EQ(seen_.size(), 4u);
  EXPECT_EQ(seen_.back().first, 4u);
}

TEST_F(WalTest, corruptionInOlderSegment_refused) {
  {
    auto w = open();
    append_n(**w, 3);
  }
  auto first = only_segment();
  {
    // A second segment after the first, as a rotation would leave it.
    auto w = open();
    std::vector<std::string> b = {body(4, "record 4")};
    ASSERT_TRUE((*w)->append(b, 4).ok());
  }
  std::string second = log_dir() + "/wal-0000000000000005.log";
  append_bytes(second, Wal::encode_record(body(5, "record 5")));
  // Tear the end of the *first* segment: that is not a tail any more.
  append_bytes(first, std::string("\x40\x00\x00\x00\x01", 5));
  auto w = open();
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.code(), Code::CORRUPT);
}

}  // namespace
}  // namespace mydfs::seglog
