// libFuzzer target for what a storage node reads from the network and from disk for Raft:
// raft::Message (the body of a RAFT_MESSAGE call) and the Raft log store's segments.
//
// Input: byte 0 picks the mode, the rest is the data.
//   even: a Message. Properties: a decode that consumes the whole input re-encodes to the same
//         bytes, and decodes again to the same encoding; a decoded snapshot configuration is
//         sorted, unique and free of node 0; entry types are 1..3.
//   odd:  the bytes of the only segment (raft-0000000000000001.log) of a fresh directory under
//         $MYDFS_FUZZ_TMPDIR (else /tmp). If bit 1 is set, every record whose checksum field is
//         zero gets its real checksum first, so the fuzzer reaches the replay logic. Properties:
//         a load either fails with an error or yields entries that continue the snapshot without
//         a gap; a second load of what the first left gives the same state and cuts nothing.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "fuzz_check.h"
#include "common/record.h"
#include "raft/log_store.h"

namespace fs = std::filesystem;

namespace mydfs::raft {
namespace {

std::string g_base;

void check_message(std::string_view in) {
  Reader r(in);
  Message m;
  m.decode(r);
  if (!r.done()) return;
  Writer w;
  m.encode(w);
  FUZZ_CHECK(w.data() == in, "message does not re-encode to its bytes: " + fuzz::hex(in));
  Reader r2(w.data());
  Message m2;
  m2.decode(r2);
  FUZZ_CHECK(r2.done(), "re-encoded message does not decode");
  Writer w2;
  m2.encode(w2);
  FUZZ_CHECK(w2.data() == w.data(), "second round trip differs");
  const auto& v = m.snapshot.conf.voters;
  for (size_t i = 0; i < v.size(); ++i) {
    FUZZ_CHECK(v[i] != 0, "node 0 in a configuration");
    FUZZ_CHECK(i == 0 || v[i - 1] < v[i], "configuration not sorted and unique");
  }
  for (const auto& e : m.entries)
    FUZZ_CHECK(static_cast<uint8_t>(e.type) >= 1 && static_cast<uint8_t>(e.type) <= 3, "entry type out of range");
}

// Gives records with a zero checksum field their real checksum, where they fit.
std::string fix_checksums(std::string s) {
  size_t off = 0;
  while (off + kRecordHeader <= s.size()) {
    Reader r(s.data() + off, kRecordHeader);
    uint32_t len = r.u32();
    uint32_t type = r.u32();
    uint64_t sum = r.u64();
    if (len > s.size() - off - kRecordHeader) break;
    if (sum == 0) {
      std::string rec = encode_record(type, std::string_view(s).substr(off + kRecordHeader, len));
      s.replace(off, rec.size(), rec);
    }
    off += kRecordHeader + len;
  }
  return s;
}

void check_store(uint8_t flags, std::string_view data) {
  if (g_base.empty()) {
    const char* t = std::getenv("MYDFS_FUZZ_TMPDIR");
    g_base = fmt::format("{}/raft-fuzz-{}", t ? t : "/tmp", ::getpid());
  }
  std::error_code ec;
  fs::remove_all(g_base, ec);
  fs::create_directories(g_base);
  std::string seg = g_base + "/raft-0000000000000001.log";
  std::string bytes(data);
  if (flags & 2) bytes = fix_checksums(bytes);
  { std::ofstream(seg, std::ios::binary) << bytes; }
  auto s = LogStore::open(g_base);
  if (!s.ok()) {
    fs::remove_all(g_base, ec);
    return;
  }
  SnapshotMeta snap = (*s)->snapshot();
  HardState hs = (*s)->hard_state();
  uint64_t last = (*s)->last_index();
  Restored r = (*s)->take_restored({}, 0);
  uint64_t expect = snap.index + 1;
  for (const auto& e : r.entries) {
    FUZZ_CHECK(e.index == expect, fmt::format("entry {} where {} was due", e.index, expect));
    ++expect;
  }
  FUZZ_CHECK(last == expect - 1, fmt::format("last_index {} but entries end at {}", last, expect - 1));
  s->reset();
  uint64_t size_after = fs::file_size(seg, ec);
  auto again = LogStore::open(g_base);
  FUZZ_CHECK(again.ok(), "a store that loaded once does not load again");
  FUZZ_CHECK((*again)->last_index() == last && (*again)->hard_state() == hs && (*again)->snapshot() == snap,
             "a second load differs");
  FUZZ_CHECK(fs::file_size(seg, ec) == size_after, "the second load cut something");
  fs::remove_all(g_base, ec);
}

}  // namespace
}  // namespace mydfs::raft

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) mydfs::raft::check_message(in);
  else mydfs::raft::check_store(data[0], in);
  return 0;
}
