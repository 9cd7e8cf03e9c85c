#include <cstring>

#include <gtest/gtest.h>

#include "storage/slot_format.h"

namespace mydfs::storage {
namespace {

using proto::SlotState;

DiskHeader sample(uint64_t seq) {
  DiskHeader h;
  h.meta.loc = Location{7, 42, 3};
  h.meta.state = SlotState::LIVE;
  h.meta.file_id = 1001;
  h.meta.next = Location{8, 5, 2};
  h.meta.valid_len = 12345;
  h.meta.redirect = Location{};
  h.meta.txid = 0;
  h.meta.payload_checksum = 0x0123456789abcdefull;
  h.meta.applied_index = 77;
  h.seq = seq;
  return h;
}

TEST(SlotHeader, encodeDecode_roundTrip) {
  unsigned char b[kHeaderCopySize];
  encode_header(sample(5), b);
  DiskHeader out;
  ASSERT_EQ(decode_header(b, 7, out), HeaderParse::OK);
  EXPECT_EQ(out.meta, sample(5).meta);
  EXPECT_EQ(out.seq, 5u);
}

TEST(SlotHeader, everyFlippedBit_detected) {
  unsigned char b[kHeaderCopySize];
  encode_header(sample(5), b);
  for (size_t bit = 0; bit < kHeaderCopySize * 8; ++bit) {
    unsigned char c[kHeaderCopySize];
    std::memcpy(c, b, sizeof c);
    c[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    DiskHeader out;
    EXPECT_EQ(decode_header(c, 7, out), HeaderParse::CORRUPT) << "bit " << bit;
  }
}

TEST(SlotHeader, zeros_areEmpty) {
  unsigned char z[kHeaderCopySize] = {};
  DiskHeader out;
  EXPECT_EQ(decode_header(z, 1, out), HeaderParse::EMPTY);
}

// A slot's two copies live in a table's two arrays; pick_header chooses between them.
struct Copies {
  unsigned char a[kHeaderCopySize] = {}, b[kHeaderCopySize] = {};
};

TEST(SlotHeaderCopies, newerValidCopyWins) {
  Copies c;
  encode_header(sample(4), c.a);
  encode_header(sample(5), c.b);
  DiskHeader out;
  ASSERT_EQ(pick_header(c.a, c.b, 7, out), HeaderParse::OK);
  EXPECT_EQ(out.seq, 5u);
  ASSERT_EQ(pick_header(c.b, c.a, 7, out), HeaderParse::OK);
  EXPECT_EQ(out.seq, 5u);
}

TEST(SlotHeaderCopies, tornNewerCopy_fallsBackToOlder) {
  Copies c;
  encode_header(sample(4), c.a);
  encode_header(sample(5), c.b);
  // A torn write: only the first half of the newer copy reached the disk.
  std::memset(c.b + 48, 0, 48);
  DiskHeader out;
  ASSERT_EQ(pick_header(c.a, c.b, 7, out), HeaderParse::OK);
  EXPECT_EQ(out.seq, 4u);
}

TEST(SlotHeaderCopies, bothCopiesBad_corrupt_bothEmpty_empty) {
  Copies c;
  DiskHeader out;
  EXPECT_EQ(pick_header(c.a, c.b, 7, out), HeaderParse::EMPTY);
  encode_header(sample(4), c.a);
  c.a[20] ^= 1;
  EXPECT_EQ(pick_header(c.a, c.b, 7, out), HeaderParse::CORRUPT);
}

TEST(Superblock, roundTripAndBitFlips) {
  Superblock s;
  s.cluster_id = 9;
  s.group_id = 2;
  s.node_id = 3;
  s.capacity_slots = 1000;
  s.high_water = 17;
  s.checkpoint_index = 555;
  s.seq = 8;
  unsigned char b[kSuperCopySize];
  encode_superblock(s, b);
  Superblock out;
  ASSERT_EQ(decode_superblock(b, out), HeaderParse::OK);
  EXPECT_EQ(out.capacity_slots, 1000u);
  EXPECT_EQ(out.high_water, 17u);
  EXPECT_EQ(out.checkpoint_index, 555u);
  for (size_t bit = 0; bit < kSuperCopySize * 8; ++bit) {
    unsigned char c[kSuperCopySize];
    std::memcpy(c, b, sizeof c);
    c[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    EXPECT_EQ(decode_superblock(c, out), HeaderParse::CORRUPT) << "bit " << bit;
  }
}

TEST(Geometry, tablesHoldEveryHeaderApartFromPayloadsAndSuperblock) {
  EXPECT_EQ(kSlotSize, 4u << 20);
  EXPECT_EQ(kPayloadCapacity, 4u << 20) << "a slice fills its whole position";
  EXPECT_GE(kHeaderStride, kHeaderCopySize);
  // The two arrays of a table do not overlap each other, the superblock copies, or the table's end.
  EXPECT_GE(kTableCopyOffset[0], kSuperCopyOffset[1] + kSuperCopySize);
  EXPECT_GE(kTableCopyOffset[1], kTableCopyOffset[0] + kTableSpan * kHeaderStride);
  EXPECT_LE(kTableCopyOffset[1] + kTableSpan * kHeaderStride, kTableEnd);
  EXPECT_LE(kTableEnd, kSlotSize);
  // Copies of one slot are in different 4 KiB pages; slots 1..1023 belong to table 0.
  for (uint32_t s : {1u, 2u, 1023u, 1025u, 4097u}) {
    EXPECT_FALSE(is_table_position(s));
    EXPECT_EQ(table_of(s), s / kTableSpan * kTableSpan);
    EXPECT_NE(header_offset(s, 0) / 4096, header_offset(s, 1) / 4096);
  }
  EXPECT_TRUE(is_table_position(0));
  EXPECT_TRUE(is_table_position(2048));
  EXPECT_EQ(slots_in(1023), 1023u);
  EXPECT_EQ(slots_in(1024), 1023u);
  EXPECT_EQ(slots_in(2049), 2047u);
  EXPECT_EQ(round_block(0), 0u);
  EXPECT_EQ(round_block(1), 4096u);
  EXPECT_EQ(round_block(4096), 4096u);
}

}  // namespace
}  // namespace mydfs::storage
