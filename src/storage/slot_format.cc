#include "storage/slot_format.h"

#include <algorithm>
#include <cstring>

#include "common/checksum.h"
#include "common/codec.h"

namespace mydfs::storage {

using proto::SlotState;

static bool all_zero(const unsigned char* p, size_t n) {
  return std::all_of(p, p + n, [](unsigned char c) { return c == 0; });
}

void encode_header(const DiskHeader& h, unsigned char out[kHeaderCopySize]) {
  Writer w;
  const auto& m = h.meta;
  w.u32(kSlotMagic);
  w.u16(kFormatVersion);
  w.u16(static_cast<uint16_t>(m.state));
  w.u32(m.loc.gen);
  w.u32(m.loc.slot);
  w.u64(m.file_id);
  w.loc(m.next);
  w.u32(m.valid_len);
  w.loc(m.redirect);
  w.u32(m.tx_primary);
  w.u64(m.txid);
  w.u64(m.payload_checksum);
  w.u64(m.applied_index);
  w.u64(h.seq);
  w.u64(xxh64(w.data().data(), w.size()));
  std::memcpy(out, w.data().data(), kHeaderCopySize);
}

HeaderParse decode_header(const unsigned char in[kHeaderCopySize], uint32_t group, DiskHeader& out) {
  if (all_zero(in, kHeaderCopySize)) return HeaderParse::EMPTY;
  Reader r(in, kHeaderCopySize);
  auto& m = out.meta;
  uint32_t magic = r.u32();
  uint16_t version = r.u16();
  uint16_t state = r.u16();
  m.loc.group = group;
  m.loc.gen = r.u32();
  m.loc.slot = r.u32();
  m.file_id = r.u64();
  m.next = r.loc();
  m.valid_len = r.u32();
  m.redirect = r.loc();
  m.tx_primary = r.u32();
  m.txid = r.u64();
  m.payload_checksum = r.u64();
  m.applied_index = r.u64();
  out.seq = r.u64();
  uint64_t sum = r.u64();
  if (!r.done() || magic != kSlotMagic || version != kFormatVersion ||
      !proto::valid_slot_state(state) || m.valid_len > kPayloadCapacity ||
      sum != xxh64(in, kHeaderCopySize - 8))
    return HeaderParse::CORRUPT;
  m.state = static_cast<SlotState>(state);
  return HeaderParse::OK;
}

HeaderParse pick_header(const unsigned char* a, const unsigned char* b, uint32_t group, DiskHeader& out) {
  DiskHeader h[2];
  HeaderParse p[2] = {decode_header(a, group, h[0]), decode_header(b, group, h[1])};
  if (p[0] == HeaderParse::OK && p[1] == HeaderParse::OK) {
    out = h[0].seq >= h[1].seq ? h[0] : h[1];
    return HeaderParse::OK;
  }
  for (int i = 0; i < 2; ++i)
    if (p[i] == HeaderParse::OK) { out = h[i]; return HeaderParse::OK; }
  if (p[0] == HeaderParse::EMPTY && p[1] == HeaderParse::EMPTY) return HeaderParse::EMPTY;
  return HeaderParse::CORRUPT;
}

void encode_superblock(const Superblock& s, unsigned char out[kSuperCopySize]) {
  Writer w;
  w.u32(kSuperMagic);
  w.u16(kFormatVersion);
  w.u16(s.backend);
  w.u64(s.cluster_id);
  w.u32(s.group_id);
  w.u32(s.node_id);
  w.u32(s.slot_size);
  w.u32(s.capacity_slots);
  w.u32(s.high_water);
  w.u32(0);
  w.u64(s.checkpoint_index);
  w.u64(s.seq);
  w.u64(xxh64(w.data().data(), w.size()));
  std::memcpy(out, w.data().data(), kSuperCopySize);
}

HeaderParse decode_superblock(const unsigned char in[kSuperCopySize], Superblock& s) {
  if (all_zero(in, kSuperCopySize)) return HeaderParse::EMPTY;
  Reader r(in, kSuperCopySize);
  uint32_t magic = r.u32();
  uint16_t version = r.u16();
  s.backend = r.u16();
  s.cluster_id = r.u64();
  s.group_id = r.u32();
  s.node_id = r.u32();
  s.slot_size = r.u32();
  s.capacity_slots = r.u32();
  s.high_water = r.u32();
  uint32_t reserved = r.u32();
  s.checkpoint_index = r.u64();
  s.seq = r.u64();
  uint64_t sum = r.u64();
  if (!r.done() || magic != kSuperMagic || version != kFormatVersion || reserved != 0 ||
      s.slot_size != kSlotSize || sum != xxh64(in, kSuperCopySize - 8))
    return HeaderParse::CORRUPT;
  return HeaderParse::OK;
}

}  // namespace mydfs::storage
