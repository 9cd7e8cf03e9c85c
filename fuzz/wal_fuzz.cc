// libFuzzer target for write-ahead-log recovery: seglog/wal.h (Wal::open reading a segment).
//
// Input: byte 0 is flags, the rest the bytes of the only segment, wal-0000000000000001.log, of a
// fresh directory under $MYDFS_FUZZ_TMPDIR (else $TMPDIR, else /tmp; tools/fuzz points it at a
// tmpfs when it can, as the torn-tail cut fsyncs); the directory is removed after every input.
//   bit 0: fix checksums. The segment is walked record by record (u32 len, u32 type, u64 sum,
//          body) and every record with type 1 and a zero sum field that fits gets its real
//          checksum, so the fuzzer gets past the checksum to the index logic; a non-zero sum field
//          is kept as it is (a corrupt record), and whatever does not fit is left raw (a torn tail).
//   bits 1-2: `after` for Wal::open (0..3).
//   bit 3: name the segment after its first record's index (bytes 16..23 of the segment, after
//          the checksum fix), as the log itself does, instead of wal-0000000000000001.log.
// Properties, besides "no crash, no hang, no sanitizer report":
//   * the visitor sees consecutive indexes (each one more than the last), each > after, and each
//     body starts with its own index; log entry bodies are decoded as the replicator does.
//   * on error the segment is left byte for byte as it was (nothing dropped).
//   * on success the segment is a prefix of the input, and only a torn tail is cut: no valid
//     record with a later index starts anywhere in the cut bytes (seglog/wal.h: "a bad record
//     with valid records after it ... is corruption: open fails"); bytes() is the segment's size,
//     last_index() the last visited index; opening again gives the same records and cuts nothing;
//     and (after == 0) a record appended after recovery is found by the next open.
// MYDFS_FUZZ_SKIP names (fuzz_check.h): wal-consecutive, wal-tail, wal-append.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_check.h"
#include "storage/command.h"
#include "seglog/wal.h"

namespace fs = std::filesystem;

namespace mydfs::storage {
using seglog::Wal;
using seglog::kWalRecordHeader;
using seglog::kWalMaxBody;
namespace {

using fuzz::hex;

std::string g_base;  // this process's scratch directory

void remove_base() {
  std::error_code ec;
  if (!g_base.empty()) fs::remove_all(g_base, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

struct Replay {
  std::vector<uint64_t> indexes;
  Wal::Visitor visitor(uint64_t after) {
    return [this, after](uint64_t index, std::string_view body) -> Status {
      FUZZ_CHECK(index > after, fmt::format("visited index {} <= after {}", index, after));
      FUZZ_CHECK(body.size() >= 8, "visited body shorter than its index");
      Reader r(body);
      uint64_t own = r.u64();
      FUZZ_CHECK(own == index, fmt::format("visited index {} but the body says {}", index, own));
      if (!indexes.empty() && !fuzz::skipped("wal-consecutive"))
        FUZZ_CHECK(index == indexes.back() + 1,
                   fmt::format("log indexes not consecutive: {} after {}", index, indexes.back()));
      indexes.push_back(index);
      // A log entry body as local_replicator.cc reads it: u64 index, command, u32 n, n bytes.
      Command cmd;
      cmd.decode(r);
      uint32_t n = r.u32();
      (void)n;
      return ok_status();
    };
  }
};

// Flag bit 0: give every record whose sum field is zero its real checksum.
std::string fix_checksums(std::string_view in) {
  std::string out;
  size_t off = 0;
  while (in.size() - off >= kWalRecordHeader) {
    Reader r(in.data() + off, kWalRecordHeader);
    uint32_t len = r.u32();
    uint32_t type = r.u32();
    uint64_t sum = r.u64();
    if (len > in.size() - off - kWalRecordHeader) break;
    std::string_view body = in.substr(off + kWalRecordHeader, len);
    if (type == 1 && sum == 0)
      out += Wal::encode_record(body);
    else
      out += in.substr(off, kWalRecordHeader + len);
    off += kWalRecordHeader + len;
  }
  out += in.substr(off);
  return out;
}

// Offset of the first complete record at or after `from` that has a valid checksum and an index
// > after_index, or npos.
size_t valid_record_after(std::string_view in, size_t from, uint64_t after_index) {
  for (size_t off = from; off + kWalRecordHeader + 8 <= in.size(); ++off) {
    Reader r(in.data() + off, kWalRecordHeader);
    uint32_t len = r.u32();
    uint32_t type = r.u32();
    if (type != 1 || len < 8 || len > kWalMaxBody || len > in.size() - off - kWalRecordHeader) continue;
    std::string_view body = in.substr(off + kWalRecordHeader, len);
    if (Wal::encode_record(body) != in.substr(off, kWalRecordHeader + len)) continue;
    Reader b(body);
    if (b.u64() > after_index) return off;
  }
  return std::string::npos;
}

void one_input(uint8_t flags, std::string_view raw) {
  const std::string input = (flags & 1) ? fix_checksums(raw) : std::string(raw);
  const uint64_t after = (flags >> 1) & 3;
  const std::string dir = g_base + "/log";
  uint64_t first_index = 1;
  if ((flags & 8) && input.size() >= kWalRecordHeader + 8) {
    Reader r(input.data() + kWalRecordHeader, 8);
    first_index = r.u64();
  }
  const std::string seg = dir + fmt::format("/wal-{:016x}.log", first_index);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  FUZZ_CHECK(!ec, "cannot create " + dir + ": " + ec.message());
  {
    int fd = ::open(seg.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0, "cannot create " + seg);
    size_t done = 0;
    while (done < input.size()) {
      ssize_t n = ::write(fd, input.data() + done, input.size() - done);
      FUZZ_CHECK(n > 0, "cannot write " + seg);
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }

  Replay first;
  uint64_t last = 0;
  {
    auto wal = Wal::open(dir, after, first.visitor(after));
    std::string now = read_file(seg);
    if (!wal.ok()) {
      FUZZ_CHECK(wal.code() == Code::CORRUPT,
                 "Wal::open failed with an unexpected code: " + wal.error().to_string());
      FUZZ_CHECK(now == input, "Wal::open failed but changed the segment (" + std::to_string(input.size()) +
                                   " -> " + std::to_string(now.size()) + " bytes)");
      fs::remove_all(dir, ec);
      return;
    }
    FUZZ_CHECK(now.size() <= input.size() && input.substr(0, now.size()) == now,
               "recovered segment is not a prefix of the input");
    FUZZ_CHECK((*wal)->bytes() == now.size(),
               fmt::format("bytes() {} but the segment holds {}", (*wal)->bytes(), now.size()));
    last = (*wal)->last_index();
    // Only a torn tail may be cut: no complete, checksum-valid record that continues the log
    // (index > last_index()) may start anywhere in the bytes that were cut.
    if (now.size() < input.size() && !fuzz::skipped("wal-tail")) {
      size_t at = valid_record_after(input, now.size() + 1, last);
      FUZZ_CHECK(at == std::string::npos,
                 fmt::format("open cut the segment at byte {} of {} although a valid record with a later index "
                             "starts at byte {}: acknowledged records dropped as a 'torn tail'",
                             now.size(), input.size(), at));
    }
    FUZZ_CHECK(last >= after, "last_index() < after");
    if (!first.indexes.empty())
      FUZZ_CHECK(last == first.indexes.back(),
                 fmt::format("last_index() {} but the last record visited is {}", last, first.indexes.back()));
  }

  // Recovery is idempotent: a second open sees the same records and cuts nothing.
  std::string recovered = read_file(seg);
  {
    Replay again;
    auto wal = Wal::open(dir, after, again.visitor(after));
    FUZZ_CHECK(wal.ok(), "second open after a successful recovery failed: " + wal.error().to_string());
    FUZZ_CHECK(again.indexes == first.indexes, "second open visited different records");
    FUZZ_CHECK((*wal)->last_index() == last, "second open has another last_index()");
    FUZZ_CHECK(read_file(seg) == recovered, "second open changed the segment");
    // With after > 0 and older records only, last_index() is `after` and the replicator cuts the
    // log (truncate_through) before appending; only after == 0 is checked for appends here.
    if (after != 0 || fuzz::skipped("wal-append")) {
      fs::remove_all(dir, ec);
      return;
    }

    // The log is appendable right after recovery, and the next open finds the new record.
    std::string body(16, '\0');
    uint64_t next = last + 1;
    for (int i = 0; i < 8; ++i) body[i] = static_cast<char>(next >> (8 * i));
    auto st = (*wal)->append({body}, next);
    FUZZ_CHECK(st.ok(), "append after recovery failed: " + st.error().to_string());
  }
  {
    Replay third;
    auto wal = Wal::open(dir, after, third.visitor(after));
    FUZZ_CHECK(wal.ok(), fmt::format("open after appending record {} to a recovered log failed: {}", last + 1,
                                     wal.error().to_string()));
    FUZZ_CHECK((*wal)->last_index() == last + 1,
               fmt::format("appended record {} not found: last_index() is {}", last + 1, (*wal)->last_index()));
  }
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace mydfs::storage

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  const char* t = std::getenv("MYDFS_FUZZ_TMPDIR");
  if (!t || !*t) t = std::getenv("TMPDIR");
  if (!t || !*t) t = "/tmp";
  std::string tmpl = std::string(t) + "/mydfs-wal-fuzz-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    std::perror(("mkdtemp " + tmpl).c_str());
    std::abort();
  }
  mydfs::storage::g_base = tmpl;
  std::atexit(mydfs::storage::remove_base);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  mydfs::storage::one_input(data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
