// libFuzzer target for the on-disk decoders: storage/slot_format.h (decode_header via
// pick_header, decode_superblock) and storage/command.h (Command::decode).
//
// Input layout: bytes 0..4095 hold a slot's two header copies, copy A at 0 and copy B at 2048 (in
// a store they sit in a header table's two arrays; this layout keeps them in one input). Shorter
// inputs are padded with zeros, so a 96-byte input has only copy A written. Bytes 4096..4099, if
// present, are the store's group (default 1). The same bytes are also decoded as a superblock copy (offset 0) and
// as a state-machine command (from offset 0).
// Properties, besides "no crash, no sanitizer report":
//   * pick_header agrees with decode_header of the two copies: OK if either copy is OK (and
//     then the one with the higher seq, copy 0 on a tie), EMPTY only if both are all zero.
//   * a valid header has a valid state, valid_len <= kPayloadCapacity and the store's group;
//     encode_header of it gives back the copy's 96 bytes, which decode to an equal SlotMeta and seq.
//   * a valid superblock copy re-encodes to its 64 bytes and decodes to equal fields.
//   * a command that decodes re-encodes to the bytes it was read from, and round-trips again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "storage/command.h"
#include "storage/slot_format.h"

namespace mydfs::storage {
namespace {

using fuzz::hex;

constexpr size_t kInputBlock = 4096;                  // the two copies, as laid out in an input
constexpr size_t kCopyAt[2] = {0, 2048};

std::string_view sv(const unsigned char* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

std::string describe(const DiskHeader& h) {
  const auto& m = h.meta;
  return fmt::format("loc={}:{}@{} state={} file={} next={} len={} redirect={} txid={} sum={:x} applied={} seq={}",
                     m.loc.group, m.loc.slot, m.loc.gen, static_cast<unsigned>(m.state), m.file_id, m.next,
                     m.valid_len, m.redirect, m.txid, m.payload_checksum, m.applied_index, h.seq);
}

void check_header_block(const unsigned char* block, uint32_t group) {
  DiskHeader copy[2];
  HeaderParse p[2];
  for (int i = 0; i < 2; ++i) p[i] = decode_header(block + kCopyAt[i], group, copy[i]);

  DiskHeader out;
  HeaderParse res = pick_header(block + kCopyAt[0], block + kCopyAt[1], group, out);
  bool any_ok = p[0] == HeaderParse::OK || p[1] == HeaderParse::OK;
  bool both_empty = p[0] == HeaderParse::EMPTY && p[1] == HeaderParse::EMPTY;
  FUZZ_CHECK((res == HeaderParse::OK) == any_ok, "pick_header OK disagrees with the copies");
  FUZZ_CHECK((res == HeaderParse::EMPTY) == both_empty, "pick_header EMPTY disagrees with the copies");
  FUZZ_CHECK(res == HeaderParse::OK || res == HeaderParse::EMPTY || res == HeaderParse::CORRUPT,
             "pick_header returned an unknown HeaderParse");

  for (int i = 0; i < 2; ++i) {
    const unsigned char* in = block + kCopyAt[i];
    if (p[i] == HeaderParse::EMPTY)
      FUZZ_CHECK(std::all_of(in, in + kHeaderCopySize, [](unsigned char c) { return c == 0; }),
                 "EMPTY header copy is not all zero: " + hex(sv(in, kHeaderCopySize)));
    if (p[i] != HeaderParse::OK) continue;
    const DiskHeader& h = copy[i];
    FUZZ_CHECK(proto::valid_slot_state(static_cast<uint16_t>(h.meta.state)), "valid header, invalid state");
    FUZZ_CHECK(h.meta.valid_len <= kPayloadCapacity, "valid header, valid_len over capacity");
    FUZZ_CHECK(h.meta.loc.group == group, "valid header, wrong group");
    unsigned char enc[kHeaderCopySize];
    encode_header(h, enc);
    FUZZ_CHECK(std::memcmp(enc, in, kHeaderCopySize) == 0,
               "header copy does not re-encode to its bytes:\n  in  " + hex(sv(in, kHeaderCopySize)) +
                   "\n  out " + hex(sv(enc, kHeaderCopySize)));
    DiskHeader back;
    FUZZ_CHECK(decode_header(enc, group, back) == HeaderParse::OK, "re-encoded header does not decode");
    FUZZ_CHECK(back.meta == h.meta && back.seq == h.seq,
               "header round trip differs:\n  " + describe(h) + "\n  " + describe(back));
  }

  if (res == HeaderParse::OK) {
    const DiskHeader& want = p[0] == HeaderParse::OK && p[1] == HeaderParse::OK
                                 ? (copy[0].seq >= copy[1].seq ? copy[0] : copy[1])
                                 : (p[0] == HeaderParse::OK ? copy[0] : copy[1]);
    FUZZ_CHECK(out.meta == want.meta && out.seq == want.seq,
               "pick_header picked the wrong copy:\n  got  " + describe(out) + "\n  want " + describe(want));
    unsigned char enc[kHeaderCopySize];
    encode_header(out, enc);
    DiskHeader back;
    FUZZ_CHECK(decode_header(enc, group, back) == HeaderParse::OK, "re-encoded header does not decode");
    FUZZ_CHECK(back.meta == out.meta && back.seq == out.seq,
               "header round trip differs:\n  " + describe(out) + "\n  " + describe(back));
  }
}

bool same_superblock(const Superblock& a, const Superblock& b) {
  return a.backend == b.backend && a.cluster_id == b.cluster_id && a.group_id == b.group_id &&
         a.node_id == b.node_id && a.slot_size == b.slot_size && a.capacity_slots == b.capacity_slots &&
         a.high_water == b.high_water && a.checkpoint_index == b.checkpoint_index && a.seq == b.seq;
}

void check_superblock(const unsigned char* in) {
  Superblock s;
  HeaderParse p = decode_superblock(in, s);
  if (p == HeaderParse::EMPTY)
    FUZZ_CHECK(std::all_of(in, in + kSuperCopySize, [](unsigned char c) { return c == 0; }),
               "EMPTY superblock copy is not all zero: " + hex(sv(in, kSuperCopySize)));
  if (p != HeaderParse::OK) return;
  FUZZ_CHECK(s.slot_size == kSlotSize, "valid superblock with a foreign slot size");
  unsigned char enc[kSuperCopySize];
  encode_superblock(s, enc);
  FUZZ_CHECK(std::memcmp(enc, in, kSuperCopySize) == 0,
             "superblock copy does not re-encode to its bytes:\n  in  " + hex(sv(in, kSuperCopySize)) +
                 "\n  out " + hex(sv(enc, kSuperCopySize)));
  Superblock back;
  FUZZ_CHECK(decode_superblock(enc, back) == HeaderParse::OK, "re-encoded superblock does not decode");
  FUZZ_CHECK(same_superblock(s, back), "superblock round trip differs");
}

void check_command(std::string_view in) {
  Reader r(in);
  Command c;
  c.decode(r);
  if (!r.ok()) return;
  std::string_view used = in.substr(0, in.size() - r.remaining());
  FUZZ_CHECK(c.type >= CmdType::RESERVE && static_cast<uint8_t>(c.type) <= kMaxCmdType, "command with an unknown type decoded");
  FUZZ_CHECK(static_cast<uint8_t>(c.decision) <= 2 && (c.flags & ~3u) == 0, "command with an invalid decision or flags decoded");
  FUZZ_CHECK(cmd_name(c.type) != "unknown", "command type without a name");
  FUZZ_CHECK(proto::valid_slot_state(static_cast<uint16_t>(c.state)), "command with an invalid state decoded");
  Writer w;
  c.encode(w);
  FUZZ_CHECK(w.data() == used,
             "command does not re-encode to its bytes:\n  in  " + hex(used) + "\n  out " + hex(w.data()));
  Reader r2(w.data());
  Command c2;
  c2.decode(r2);
  FUZZ_CHECK(r2.done(), "re-encoded command does not decode exactly");
  Writer w2;
  c2.encode(w2);
  FUZZ_CHECK(w2.data() == w.data(), "second command round trip differs");
}

}  // namespace
}  // namespace mydfs::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mydfs::storage;
  std::vector<unsigned char> block(kInputBlock, 0);
  std::memcpy(block.data(), data, std::min<size_t>(size, kInputBlock));
  uint32_t group = 1;
  if (size >= kInputBlock + 4) std::memcpy(&group, data + kInputBlock, 4);  // host is little-endian
  check_header_block(block.data(), group);
  check_superblock(block.data());
  // The command decoder reads the input itself (not the padded block), so ASan sees overreads.
  check_command(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
