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

TEST(SlotHeaderBlock, newerValidCopyWins) {
  std::vector<unsigned char> block(kHeaderBlock, 0);
  encode_header(sample(4), block.data() + kHeaderCopyOffset[0]);
  encode_header(sample(5), block.data() + kHeaderCopyOffset[1]);
  DiskHeader out;
  ASSERT_EQ(read_header_block(block.data(), 7, out), HeaderParse::OK);
  EXPECT_EQ(out.seq, 5u);
}

TEST(SlotHeaderBlock, tornNewerCopy_fallsBackToOlder) {
  std::vector<unsigned char> block(kHeaderBlock, 0);
  encode_header(sample(4), block.data() + kHeaderCopyOffset[0]);
  encode_header(sample(5), block.data() + kHeaderCopyOffset[1]);
  // A torn write: only the first half of the newer copy reached the disk.
  std::memset(block.data() + kHeaderCopyOffset[1] + 48, 0, 48);
  DiskHeader out;
  ASSERT_EQ(read_header_block(block.data(), 7, out), HeaderParse::OK);
  EXPECT_EQ(out.seq, 4u);
}

TEST(SlotHeaderBlock, bothCopiesBad_corrupt) {
  std::vector<unsigned char> block(kHeaderBlock, 0);
  encode_header(sample(4), block.data() + kHeaderCopyOffset[0]);
  block[kHeaderCopyOffset[0] + 20] ^= 1;
  DiskHeader out;
  EXPECT_EQ(read_header_block(block.data(), 7, out), HeaderParse::CORRUPT);
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

TEST(Geometry, payloadIsAlignedAndSized) {
  EXPECT_EQ(kSlotSize, 4u << 20);
  EXPECT_EQ(kPayloadCapacity, (4u << 20) - 4096);
  EXPECT_EQ(kHeaderBlock % 4096, 0u);
  EXPECT_LE(kHeaderCopyOffset[1] + kHeaderCopySize, kHeaderBlock);
}

}  // namespace
}  // namespace mydfs::storage
