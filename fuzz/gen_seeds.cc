// Writes the seed corpora in fuzz/seeds/<target>/ with the project's own encoders, so every seed
// starts out valid and the fuzzers begin from deep inside the decoders. Not part of tools/fuzz;
// to regenerate (from the repository root):
//   clang++ -std=c++20 -include utility -Isrc -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB \
//     fuzz/gen_seeds.cc src/proto/frame.cc src/proto/messages.cc src/storage/slot_format.cc \
//     src/storage/command.cc src/seglog/segments.cc src/seglog/wal.cc src/common/record.cc \
//     src/common/file_io.cc \
//     -lspdlog -lfmt -lxxhash -pthread -o build-fuzz/gen_seeds && build-fuzz/gen_seeds fuzz/seeds
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "proto/frame.h"
#include "proto/messages.h"
#include "storage/command.h"
#include "storage/slot_format.h"
#include "seglog/wal.h"

using namespace mydfs;
using namespace mydfs::proto;
using namespace mydfs::storage;
using mydfs::seglog::Wal;
using mydfs::seglog::kWalRecordHeader;
namespace fs = std::filesystem;

static std::string g_root;

static void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root + "/" + target);
  std::ofstream(g_root + "/" + target + "/" + name, std::ios::binary) << bytes;
}

// Selector form of the frame target: u16 case number, then the payload.
static std::string sel(uint16_t c, const std::string& payload) {
  Writer w;
  w.u16(c);
  return w.take() + payload;
}

static std::string frame(Method m, bool response, const std::string& payload) {
  FrameHeader h;
  h.type = static_cast<uint16_t>(m);
  h.flags = response ? kFlagResponse : 0;
  h.request_id = 42;
  h.payload_len = static_cast<uint32_t>(payload.size());
  auto b = encode_frame(h);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size()) + payload;
}

static SlotMeta meta(uint32_t slot, SlotState st) {
  SlotMeta m;
  m.loc = {1, slot, 3};
  m.state = st;
  m.file_id = 1000 + slot;
  m.next = {1, slot + 1, 1};
  m.valid_len = 4096;
  m.payload_checksum = 0x0123456789abcdefull;
  m.applied_index = 77;
  return m;
}

static std::string ok_then(const std::string& msg) {
  Writer w;
  encode_ok(w);
  return w.take() + msg;
}

static std::string command_body(uint64_t index, const Command& c, const std::string& extra) {
  Writer w;
  w.u64(index);
  c.encode(w);
  w.u32(static_cast<uint32_t>(extra.size()));
  w.raw(extra.data(), extra.size());
  return w.take();
}

int main(int argc, char** argv) {
  g_root = argc > 1 ? argv[1] : "fuzz/seeds";

  // ---- frame: cases are requests 0..11, responses 12..17, status 18, envelopes 19..24.
  WriteSlotReq ws;
  ws.loc = {1, 5, 2};
  ws.file_id = 9;
  ws.checksum = 0xfeedull;
  put("frame", "frame-write-slot-req", frame(Method::WRITE_SLOT, false, encode_message(ws)));
  ReadResp rr;
  rr.meta = meta(5, SlotState::LIVE);
  rr.whole = true;
  put("frame", "frame-read-resp-ok", frame(Method::READ, true, ok_then(encode_message(rr))));
  {
    Writer w;
    Error e = make_error(Code::NOT_LEADER, "not the leader");
    e.hint = "10.0.0.2:7000";
    encode_error(w, e);
    put("frame", "frame-walk-resp-not-leader", frame(Method::WALK, true, w.take()));
  }
  WalkResp wr;
  wr.slices = {meta(5, SlotState::LIVE), meta(6, SlotState::REDIRECT)};
  wr.slices[1].redirect = {2, 8, 1};
  wr.leaves = {2, 8, 1};
  wr.end_code = Code::STALE;
  wr.end_at = {2, 8, 0};
  put("frame", "sel-walk-resp", sel(16, encode_message(wr)));
  ReserveResp rs;
  rs.slots = {{1, 7, 1}, {1, 8, 1}, {1, 9, 4}};
  put("frame", "sel-reserve-resp", sel(14, encode_message(rs)));
  SetValidLenReq sv;
  sv.loc = {1, 5, 2};
  sv.valid_len = 100;
  sv.clear_next = true;
  put("frame", "sel-set-valid-len-req", sel(5, encode_message(sv)));
  {
    Writer w;
    Error e = make_error(Code::REDIRECT, "moved");
    e.target = {3, 4, 5};
    encode_error(w, e);
    put("frame", "sel-status-redirect", sel(18, w.take()));
  }
  put("frame", "sel-envelope-slot-resp", sel(20, ok_then(encode_message(SlotResp{meta(9, SlotState::PREPARED)}))));

  // ---- slot_header: bytes 0..4095 hold header copy A at 0 and copy B at 2048 (zero padded),
  // 4096..4099 the group (slot_header_fuzz.cc).
  {
    DiskHeader h;
    h.meta = meta(5, SlotState::LIVE);
    h.seq = 1;
    unsigned char c0[kHeaderCopySize];
    encode_header(h, c0);
    put("slot_header", "header-copy0-live", std::string(reinterpret_cast<char*>(c0), kHeaderCopySize));

    std::string block(2048 + kHeaderCopySize, '\0');
    std::memcpy(block.data(), c0, kHeaderCopySize);
    DiskHeader h2 = h;
    h2.meta.state = SlotState::PREPARED;
    h2.meta.txid = 555;
    h2.seq = 2;
    unsigned char c1[kHeaderCopySize];
    encode_header(h2, c1);
    std::memcpy(block.data() + 2048, c1, kHeaderCopySize);
    put("slot_header", "header-both-copies", block);
    std::string torn = block;
    torn[2048 + 40] ^= 0x5a;  // copy 1 fails its checksum: copy 0 wins
    put("slot_header", "header-copy1-torn", torn);
  }
  {
    Superblock s;
    s.cluster_id = 0xc1u;
    s.group_id = 1;
    s.node_id = 2;
    s.capacity_slots = 64;
    s.high_water = 9;
    s.checkpoint_index = 1234;
    s.seq = 7;
    unsigned char b[kSuperCopySize];
    encode_superblock(s, b);
    put("slot_header", "superblock", std::string(reinterpret_cast<char*>(b), kSuperCopySize));
  }
  Command wcmd;
  wcmd.type = CmdType::WRITE_SLOT;
  wcmd.loc = {1, 5, 2};
  wcmd.file_id = 9;
  wcmd.next = {1, 6, 1};
  wcmd.len = 4096;
  wcmd.checksum = 0xabcdull;
  {
    Writer w;
    wcmd.encode(w);
    put("slot_header", "command-write-slot", w.take());
  }

  // ---- wal: a flags byte (bit 0 = fix zero checksums, bits 1-2 = after), then a segment's bytes.
  Command patch;
  patch.type = CmdType::PATCH;
  patch.loc = {1, 5, 2};
  patch.offset = 10;
  patch.len = 3;
  Command del;
  del.type = CmdType::DELETE;
  del.loc = {1, 6, 1};
  std::string three = Wal::encode_record(command_body(1, wcmd, "")) +
                      Wal::encode_record(command_body(2, patch, "abc")) +
                      Wal::encode_record(command_body(3, del, ""));
  put("wal", "three-records", std::string(1, '\0') + three);
  std::string rec4 = Wal::encode_record(command_body(4, del, ""));
  put("wal", "torn-tail", std::string(1, '\0') + three + rec4.substr(0, rec4.size() / 2));
  std::string bad = three;
  bad[kWalRecordHeader + 12] ^= 1;  // damage in the first record, valid ones after it
  put("wal", "corrupt-middle", std::string(1, '\0') + bad);
  // Checksums left zero for the harness to fill in, after = 1.
  std::string unsummed;
  for (uint64_t i = 1; i <= 3; ++i) {
    std::string rec = Wal::encode_record(command_body(i, i == 2 ? patch : del, i == 2 ? "abc" : ""));
    std::memset(rec.data() + 8, 0, 8);
    unsummed += rec;
  }
  put("wal", "fix-checksums-after-1", std::string(1, '\3') + unsummed);
  std::printf("seeds written to %s\n", g_root.c_str());
  return 0;
}
