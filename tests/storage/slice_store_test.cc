// Conformance suite: every backend of SliceStore must pass all of these.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/buffer.h"
#include "common/checksum.h"
#include "storage/slice_store.h"
#include "../support/temp_dir.h"

namespace mydfs::storage {
namespace {

struct VolumeBackend {
  static constexpr Backend kind = Backend::VOLUME;
  static std::string store_path(const std::string& dir) { return dir + "/store.vol"; }
  // The file and offset holding byte `off` of slot `slot`.
  static std::pair<std::string, uint64_t> where(const std::string& dir, uint32_t slot, uint64_t off) {
    return {store_path(dir), uint64_t{slot} * kSlotSize + off};
  }
};

struct FilesBackend {
  static constexpr Backend kind = Backend::FILES;
  static std::string store_path(const std::string& dir) { return dir + "/store"; }
  static std::pair<std::string, uint64_t> where(const std::string& dir, uint32_t slot, uint64_t off) {
    if (slot == 0) return {store_path(dir) + "/superblock", off};
    return {fmt::format("{}/slots/{:08x}", store_path(dir), slot), off};
  }
};

template <typename B>
class SliceStoreTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kCap = 24;

  StoreOptions options(uint32_t cap = kCap) {
    StoreOptions o;
    o.backend = B::kind;
    o.path = B::store_path(dir_.path());
    o.capacity_slots = cap;
    o.cluster_id = 5;
    o.group_id = 3;
    o.node_id = 1;
    return o;
  }

  std::unique_ptr<SliceStore> open(uint32_t cap = kCap) {
    auto s = SliceStore::open(options(cap));
    EXPECT_TRUE(s.ok()) << s.error().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static AlignedBuffer pattern(size_t n, uint64_t seed) {
    AlignedBuffer b(n);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::byte>(rng());
    return b;
  }

  // Writes a LIVE slice with data into a freshly allocated slot, as the state machine would.
  SlotMeta write_live(SliceStore& s, const AlignedBuffer& data, uint64_t file_id = 9) {
    auto loc = s.allocate();
    EXPECT_TRUE(loc.ok());
    EXPECT_TRUE(s.write_payload(loc->slot, 0, data.span()).ok());
    SlotMeta m;
    m.loc = *loc;
    m.state = SlotState::LIVE;
    m.file_id = file_id;
    m.valid_len = static_cast<uint32_t>(data.size());
    m.payload_checksum = xxh64(data.span());
    m.applied_index = ++index_;
    EXPECT_TRUE(s.put_header(m, PayloadCheck::VERIFIED).ok());
    return m;
  }

  void flip_byte(uint32_t slot, uint64_t off) {
    auto [path, pos] = B::where(dir_.path(), slot, off);
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path;
    unsigned char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(pos)), 1);
    c ^= 0x10;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(pos)), 1);
    ::close(fd);
  }

  mydfs::testing::TempDir dir_;
  uint64_t index_ = 0;
};

using Backends = ::testing::Types<VolumeBackend, FilesBackend>;
TYPED_TEST_SUITE(SliceStoreTest, Backends);

TYPED_TEST(SliceStoreTest, fresh_allSlotsFree) {
  auto s = this->open();
  EXPECT_EQ(s->capacity(), this->kCap);
  EXPECT_EQ(s->free_slots(), this->kCap);
  EXPECT_EQ(s->used_slots(), 0u);
  EXPECT_EQ(s->high_water(), 1u);
  EXPECT_EQ(s->meta(0).code(), Code::NOT_FOUND);
  EXPECT_EQ(s->meta(this->kCap + 1).code(), Code::NOT_FOUND);
}

TYPED_TEST(SliceStoreTest, writtenSlice_survivesReopen) {
  auto data = this->pattern(kPayloadCapacity, 1);
  SlotMeta m;
  {
    auto s = this->open();
    m = this->write_live(*s, data);
    EXPECT_EQ(m.loc.slot, 1u);
    EXPECT_EQ(m.loc.gen, 1u);
    ASSERT_TRUE(s->sync().ok());
  }
  auto s = this->open();
  auto back = s->meta(m.loc.slot);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, m);
  EXPECT_TRUE(s->verify(m.loc.slot).ok());
  AlignedBuffer out(data.size());
  ASSERT_TRUE(s->read_payload(m.loc.slot, 0, out.span()).ok());
  EXPECT_EQ(std::memcmp(out.data(), data.data(), data.size()), 0);
  EXPECT_EQ(s->high_water(), 2u);
  EXPECT_EQ(s->used_slots(), 1u);
}

TYPED_TEST(SliceStoreTest, allocate_noSpaceExactlyAtCapacity) {
  auto s = this->open();
  std::set<uint32_t> seen;
  for (uint32_t i = 0; i < this->kCap; ++i) {
    auto l = s->allocate();
    ASSERT_TRUE(l.ok()) << "allocation " << i;
    EXPECT_TRUE(seen.insert(l->slot).second);
  }
  auto full = s->allocate();
  EXPECT_EQ(full.code(), Code::NO_SPACE);
  EXPECT_EQ(s->free_slots(), 0u);
  // Still healthy: giving one back makes it allocatable again.
  s->release(Location{3, 5, 1});
  auto again = s->allocate();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->slot, 5u);
}

TYPED_TEST(SliceStoreTest, concurrentAllocation_neverHandsOutASlotTwice) {
  auto s = this->open(256);
  constexpr int kThreads = 8;
  std::vector<std::vector<uint32_t>> got(kThreads);
  std::vector<int> no_space(kThreads, 0);
  std::vector<std::thread> ts;
  // Some threads also delete-and-reuse, so both the free table and the high-water mark race.
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (;;) {
        auto l = s->allocate();
        if (!l.ok()) {
          EXPECT_EQ(l.code(), Code::NO_SPACE);
          no_space[t]++;
          break;
        }
        got[t].push_back(l->slot);
      }
    });
  }
  for (auto& t : ts) t.join();
  std::vector<uint32_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a slot was handed out twice";
  EXPECT_EQ(all.size(), 256u);
  EXPECT_EQ(all.front(), 1u);
  EXPECT_EQ(all.back(), 256u);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(no_space[t], 1);
}

TYPED_TEST(SliceStoreTest, concurrentReuseOfDeletedSlots_unique) {
  auto s = this->open(64);
  auto data = this->pattern(100, 2);
  std::vector<SlotMeta> live;
  for (int i = 0; i < 64; ++i) live.push_back(this->write_live(*s, data));
  for (int i = 0; i < 64; i += 2) {
    SlotMeta d = live[i];
    d.state = SlotState::DELETED;
    d.applied_index = ++this->index_;
    ASSERT_TRUE(s->put_header(d, PayloadCheck::VERIFIED).ok());
  }
  EXPECT_EQ(s->free_slots(), 32u);
  std::vector<std::vector<Location>> got(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (auto l = s->allocate(); l.ok(); l = s->allocate()) got[t].push_back(*l);
    });
  for (auto& t : ts) t.join();
  std::set<uint32_t> slots;
  for (auto& g : got)
    for (auto& l : g) {
      EXPECT_TRUE(slots.insert(l.slot).second);
      EXPECT_EQ(l.slot % 2, 1u) << "only deleted (odd-numbered) slots were free";
      EXPECT_EQ(l.gen, 2u) << "reuse bumps the generation";
    }
  EXPECT_EQ(slots.size(), 32u);
}

TYPED_TEST(SliceStoreTest, deletedSlots_reusedFirstLowestFirst_withNewGen_evenAfterReopen) {
  auto data = this->pattern(10, 3);
  {
    auto s = this->open();
    std::vector<SlotMeta> ms;
    for (int i = 0; i < 4; ++i) ms.push_back(this->write_live(*s, data));
    for (int i : {2, 1}) {
      SlotMeta d = ms[i];
      d.state = SlotState::DELETED;
      d.applied_index = ++this->index_;
      ASSERT_TRUE(s->put_header(d, PayloadCheck::VERIFIED).ok());
    }
    ASSERT_TRUE(s->sync().ok());
  }
  auto s = this->open();
  EXPECT_EQ(s->free_slots(), this->kCap - 2);
  auto a = s->allocate();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (Location{3, 2, 2}));
  auto b = s->allocate();
  EXPECT_EQ(*b, (Location{3, 3, 2}));
  auto c = s->allocate();
  EXPECT_EQ(*c, (Location{3, 5, 1})) << "then the high-water mark";
}

TYPED_TEST(SliceStoreTest, redirectSlots_neverReused) {
  auto s = this->open(3);
  auto data = this->pattern(10, 4);
  SlotMeta m = this->write_live(*s, data);
  m.state = SlotState::REDIRECT;
  m.redirect = Location{3, 2, 1};
  m.applied_index = ++this->index_;
  ASSERT_TRUE(s->put_header(m, PayloadCheck::VERIFIED).ok());
  EXPECT_EQ(s->free_slots(), 2u);
  for (int i = 0; i < 2; ++i) {
    auto l = s->allocate();
    ASSERT_TRUE(l.ok());
    EXPECT_NE(l->slot, m.loc.slot);
  }
  EXPECT_EQ(s->allocate().code(), Code::NO_SPACE);
}

TYPED_TEST(SliceStoreTest, resolve_reportsStaleDeletedRedirectAndFree) {
  auto s = this->open();
  auto data = this->pattern(10, 5);
  SlotMeta live = this->write_live(*s, data);
  EXPECT_TRUE(s->resolve(live.loc).ok());
  Location stale = live.loc;
  stale.gen = 7;
  EXPECT_EQ(s->resolve(stale).code(), Code::STALE);
  Location other_group = live.loc;
  other_group.group = 4;
  EXPECT_EQ(s->resolve(other_group).code(), Code::NOT_FOUND);
  EXPECT_EQ(s->resolve(Location{3, 10, 1}).code(), Code::NOT_FOUND);

  SlotMeta moved = this->write_live(*s, data);
  moved.state = SlotState::REDIRECT;
  moved.redirect = Location{9, 9, 9};
  moved.applied_index = ++this->index_;
  ASSERT_TRUE(s->put_header(moved, PayloadCheck::VERIFIED).ok());
  auto r = s->resolve(moved.loc);
  EXPECT_EQ(r.code(), Code::REDIRECT);
  EXPECT_EQ(r.error().target, (Location{9, 9, 9}));

  SlotMeta gone = this->write_live(*s, data);
  gone.state = SlotState::DELETED;
  gone.applied_index = ++this->index_;
  ASSERT_TRUE(s->put_header(gone, PayloadCheck::VERIFIED).ok());
  EXPECT_EQ(s->resolve(gone.loc).code(), Code::DELETED);
}

TYPED_TEST(SliceStoreTest, corruptHeader_detectedAtOpen_neverServedNorReused) {
  auto data = this->pattern(1000, 6);
  SlotMeta m;
  {
    auto s = this->open(2);
    m = this->write_live(*s, data);
    ASSERT_TRUE(s->sync().ok());
  }
  this->flip_byte(table_of(m.loc.slot), header_offset(m.loc.slot, 1) + 30);  // the copy written (seq 1)
  auto s = this->open(2);
  EXPECT_EQ(s->meta(m.loc.slot).code(), Code::CHECKSUM_MISMATCH);
  EXPECT_EQ(s->resolve(m.loc).code(), Code::CHECKSUM_MISMATCH);
  EXPECT_EQ(s->corrupt_slots(), 1u);
  auto l = s->allocate();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->slot, 2u);
  EXPECT_EQ(s->allocate().code(), Code::NO_SPACE) << "the corrupt slot must not be handed out";
}

TYPED_TEST(SliceStoreTest, tornHeaderWrite_keepsPreviousHeader) {
  auto data = this->pattern(1000, 7);
  SlotMeta first;
  {
    auto s = this->open();
    first = this->write_live(*s, data);
    SlotMeta second = first;
    second.valid_len = 500;
    second.payload_checksum = xxh64(data.data(), 500);
    second.applied_index = ++this->index_;
    ASSERT_TRUE(s->put_header(second, PayloadCheck::VERIFIED).ok());  // seq 2 -> copy 0
    ASSERT_TRUE(s->sync().ok());
  }
  this->flip_byte(table_of(first.loc.slot), header_offset(first.loc.slot, 0) + 40);  // tear the newer copy
  auto s = this->open();
  auto m = s->meta(first.loc.slot);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, first);
}

TYPED_TEST(SliceStoreTest, flippedPayloadBit_checksumMismatch_neverServed) {
  auto data = this->pattern(100000, 8);
  SlotMeta m;
  {
    auto s = this->open();
    m = this->write_live(*s, data);
    ASSERT_TRUE(s->sync().ok());
  }
  this->flip_byte(m.loc.slot, 54321);
  auto s = this->open();
  ASSERT_TRUE(s->meta(m.loc.slot).ok()) << "the header itself is fine";
  EXPECT_EQ(s->verify(m.loc.slot).code(), Code::CHECKSUM_MISMATCH);
  EXPECT_EQ(s->resolve(m.loc).code(), Code::CHECKSUM_MISMATCH) << "once found, the slot stays unserved";
}

TYPED_TEST(SliceStoreTest, allocatedButNeverWritten_isFreeAfterReopen) {
  auto data = this->pattern(10, 9);
  {
    auto s = this->open();
    this->write_live(*s, data);
    ASSERT_TRUE(s->allocate().ok());  // slot 2: never persisted
    this->write_live(*s, data);       // slot 3
    ASSERT_TRUE(s->checkpoint(this->index_).ok());
  }
  auto s = this->open();
  EXPECT_EQ(s->free_slots(), this->kCap - 2);
  auto l = s->allocate();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (Location{3, 2, 1}));
}

TYPED_TEST(SliceStoreTest, superblock_keepsCheckpointAndIdentity) {
  {
    auto s = this->open();
    ASSERT_TRUE(s->checkpoint(4242).ok());
    ASSERT_TRUE(s->checkpoint(4243).ok());
  }
  auto s = this->open();
  EXPECT_EQ(s->superblock().checkpoint_index, 4243u);
  EXPECT_EQ(s->superblock().group_id, 3u);
  auto other = this->options();
  other.node_id = 2;
  auto wrong = SliceStore::open(other);
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("belongs to cluster 5 group 3 node 1"), std::string::npos)
      << wrong.error().message;
}

TYPED_TEST(SliceStoreTest, tornSuperblockWrite_olderCopyUsed) {
  {
    auto s = this->open();
    ASSERT_TRUE(s->checkpoint(10).ok());  // seq 3 -> copy 1
    ASSERT_TRUE(s->checkpoint(11).ok());  // seq 4 -> copy 0
  }
  this->flip_byte(0, kSuperCopyOffset[0] + 41);
  auto s = this->open();
  EXPECT_EQ(s->superblock().checkpoint_index, 10u);
}

TYPED_TEST(SliceStoreTest, capacity_growsButNeverShrinks) {
  { this->open(4); }
  {
    auto s = this->open(8);
    EXPECT_EQ(s->capacity(), 8u);
    EXPECT_EQ(s->free_slots(), 8u);
  }
  auto s = this->open(2);
  EXPECT_EQ(s->capacity(), 8u);
}

TYPED_TEST(SliceStoreTest, payloadOutOfRange_rejected) {
  auto s = this->open();
  AlignedBuffer b(16);
  EXPECT_EQ(s->write_payload(1, kPayloadCapacity - 8, b.span()).code(), Code::BAD_REQUEST);
  EXPECT_EQ(s->read_payload(0, 0, b.span()).code(), Code::BAD_REQUEST);
  EXPECT_EQ(s->write_payload(this->kCap + 1, 0, b.span()).code(), Code::BAD_REQUEST);
}

TEST(SliceStoreOpen, badPathAndOptions_clearErrors) {
  StoreOptions o;
  o.path = "/nonexistent-dir/x/store.vol";
  auto r = SliceStore::open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not exist"), std::string::npos) << r.error().message;
  mydfs::testing::TempDir d;
  o.path = d / "store.vol";
  o.capacity_slots = 0;
  EXPECT_EQ(SliceStore::open(o).code(), Code::BAD_REQUEST);
  // A file that is not a store.
  {
    FILE* f = fopen((d / "junk.vol").c_str(), "w");
    fputs("hello, not a store", f);
    fclose(f);
  }
  o.path = d / "junk.vol";
  o.capacity_slots = 4;
  auto j = SliceStore::open(o);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.error().message.find("not a mydfs store"), std::string::npos) << j.error().message;
}

// The files backend keeps a bounded number of slot files open: a node holds far more slots than
// a process may have descriptors, and every slot must still read back (and sync) correctly.
TEST(FilesStoreDescriptors, moreSlotsThanOpenFiles_allReadBack_descriptorsBounded) {
  mydfs::testing::TempDir dir;
  constexpr uint32_t kSlots = 5000;
  StoreOptions o;
  o.backend = Backend::FILES;
  o.path = dir.path() + "/store";
  o.capacity_slots = kSlots + kSlots / kTableSpan;  // header tables take every 1024th position
  o.cluster_id = 5;
  o.group_id = 3;
  o.node_id = 1;
  auto opened = SliceStore::open(o);
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  auto& s = **opened;
  auto body = [](uint32_t i) { return fmt::format("slice number {} of the files backend", i); };
  std::vector<uint32_t> used;
  for (uint32_t i = 0; i < kSlots; ++i) {
    auto loc = s.allocate();
    ASSERT_TRUE(loc.ok()) << loc.error().to_string();
    std::string b = body(loc->slot);
    ASSERT_TRUE(s.write_payload(loc->slot, 0, std::as_bytes(std::span(b))).ok());
    SlotMeta m;
    m.loc = *loc;
    m.state = SlotState::LIVE;
    m.file_id = 9;
    m.valid_len = static_cast<uint32_t>(b.size());
    m.payload_checksum = xxh64(std::as_bytes(std::span(b)));
    m.applied_index = i + 1;
    ASSERT_TRUE(s.put_header(m, PayloadCheck::VERIFIED).ok());
    used.push_back(loc->slot);
  }
  EXPECT_EQ(s.allocate().code(), Code::NO_SPACE);
  ASSERT_TRUE(s.sync().ok());
  size_t fds = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++fds;
  EXPECT_LT(fds, 3000u) << "slot files stay open";
  for (uint32_t slot : used) {
    ASSERT_TRUE(s.verify(slot).ok()) << slot;
    std::string want = body(slot), got(want.size(), '\0');
    ASSERT_TRUE(s.read_payload(slot, 0, std::as_writable_bytes(std::span(got))).ok());
    ASSERT_EQ(got, want);
  }
}

}  // namespace
}  // namespace mydfs::storage
