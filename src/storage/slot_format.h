// On-disk layout of a slice store. docs/ON-DISK.md is the reference; all integers little-endian.
//
// A store is a sequence of 4 MiB positions, each the payload of one slot, held sparse: a slice
// takes only the 4 KiB blocks its data needs. Every 1024th position (0, 1024, 2048, ...) is a
// header table instead, for the 1023 slots after it; position 0 also holds the superblock. A
// table keeps two copies of each slot header in two separate arrays (so in different sectors);
// each write goes to the copy the previous write did not use, with a higher seq, so a torn
// header write leaves the older copy intact. The superblock keeps two copies the same way (at 0
// and 4096).
#pragma once
#include <cstdint>
#include <optional>

#include "proto/messages.h"

namespace mydfs::storage {

using proto::kSlotSize;                                  // bytes per position
using proto::kPayloadCapacity;                           // 4 MiB: a slot's payload is its position
constexpr uint64_t kSuperCopyOffset[2] = {0, 4096};      // the superblock's two copies, position 0
constexpr uint64_t kBlock = 4096;                        // unit of allocation and of accounting

// Header tables.
constexpr uint32_t kTableSpan = 1024;                    // a table every kTableSpan positions
constexpr uint64_t kHeaderStride = 128;                  // bytes per header in a table array
constexpr uint64_t kTableCopyOffset[2] = {64u << 10, 192u << 10};  // the two arrays of a table
constexpr uint64_t kTableEnd = kTableCopyOffset[1] + kTableSpan * kHeaderStride;  // 320 KiB
constexpr bool is_table_position(uint32_t p) { return p % kTableSpan == 0; }
constexpr uint32_t table_of(uint32_t slot) { return slot - slot % kTableSpan; }
constexpr uint64_t header_offset(uint32_t slot, int copy) {
  return kTableCopyOffset[copy] + uint64_t{slot % kTableSpan} * kHeaderStride;
}
// Slots (not tables) among positions 1..positions.
constexpr uint32_t slots_in(uint32_t positions) { return positions - positions / kTableSpan; }
constexpr uint64_t round_block(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

constexpr uint32_t kSlotMagic = 0x4C53444D;   // "MDSL"
constexpr uint32_t kSuperMagic = 0x4253444D;  // "MDSB"
constexpr uint16_t kFormatVersion = 2;    // 1: a 4 KiB header block in front of every payload

// Slot header copy: 96 bytes.
//   0 u32 magic           kSlotMagic
//   4 u16 version         kFormatVersion
//   6 u16 state           proto::SlotState (0/100/200/301/404)
//   8 u32 gen             generation of the slot (bumped on every reuse)
//  12 u32 slot            this slot's number (catches misdirected writes)
//  16 u64 file_id        inode of the owning file
//  24 12B next            {group, slot, gen} of the next slice; slot 0 = none
//  36 u32 valid_len       payload bytes that belong to the file
//  40 12B redirect        REDIRECT target
//  52 u32 tx_primary      group whose primary participant decides the transaction (txid != 0)
//  56 u64 txid            transaction owning a PREPARED slot, or locking a LIVE one
//  64 u64 payload_checksum xxHash64 of the valid_len payload bytes
//  72 u64 applied_index   log index of the last command applied (makes replay idempotent)
//  80 u64 seq             write sequence; of two valid copies the higher seq wins
//  88 u64 checksum        xxHash64 of bytes 0..87
constexpr size_t kHeaderCopySize = 96;

struct DiskHeader {
  proto::SlotMeta meta;  // meta.loc.group is not stored (the store's group)
  uint64_t seq = 0;
};

void encode_header(const DiskHeader& h, unsigned char out[kHeaderCopySize]);

enum class HeaderParse { OK, EMPTY, CORRUPT };
// EMPTY: all zero (never written). CORRUPT: anything else that fails a check.
HeaderParse decode_header(const unsigned char in[kHeaderCopySize], uint32_t group, DiskHeader& out);

// Picks the valid one of a slot's two header copies, the higher seq if both are.
// Returns EMPTY if both are empty, CORRUPT if neither is valid and one is not empty.
HeaderParse pick_header(const unsigned char* a, const unsigned char* b, uint32_t group, DiskHeader& out);

// Superblock copy: 64 bytes.
//   0 u32 magic            kSuperMagic
//   4 u16 version          kFormatVersion
//   6 u16 backend          1 = volume, 2 = files
//   8 u64 cluster_id
//  16 u32 group_id
//  20 u32 node_id
//  24 u32 slot_size        kSlotSize
//  28 u32 capacity_slots   positions 1..capacity_slots may be used (tables among them)
//  32 u32 high_water       first never-used position ("startIndex")
//  36 u32 reserved
//  40 u64 checkpoint_index every log entry <= this is durable in the slots
//  48 u64 seq              write sequence (higher valid copy wins)
//  56 u64 checksum         xxHash64 of bytes 0..55
constexpr size_t kSuperCopySize = 64;

struct Superblock {
  uint16_t backend = 1;
  uint64_t cluster_id = 0;
  uint32_t group_id = 0;
  uint32_t node_id = 0;
  uint32_t slot_size = kSlotSize;
  uint32_t capacity_slots = 0;
  uint32_t high_water = 1;
  uint64_t checkpoint_index = 0;
  uint64_t seq = 0;
};

void encode_superblock(const Superblock& s, unsigned char out[kSuperCopySize]);
HeaderParse decode_superblock(const unsigned char in[kSuperCopySize], Superblock& out);

}  // namespace mydfs::storage
