// Write-ahead log of the single-node replicator: a directory of segment files named
// wal-<first index, 16 hex digits>.log. Each record (docs/ON-DISK.md):
//   u32 body_len | u32 type (1 = entry) | u64 xxHash64(body_len, type, body) | body
// and a body starts with its u64 log index (consecutive across segments).
//
// Recovery (open + replay) reads every segment in order. In the last segment a record that is cut
// short or fails its checksum with nothing valid after it is a torn tail: it is cut with a warning.
// A bad record with valid records after it, a bad record in an older segment, or a gap in the
// indices is corruption: open fails with the file and byte offset, and nothing is dropped.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/file_io.h"

namespace mydfs::storage {

constexpr size_t kWalRecordHeader = 16;  // proto/record.h
constexpr uint32_t kWalMaxBody = 8u << 20;
// Log indexes run from 1 to kWalMaxIndex; a larger one can only be damage (at a million
// commands a second the range lasts 146,000 years).
constexpr uint64_t kWalMaxIndex = uint64_t{1} << 62;

class Wal {
 public:
  using Visitor = std::function<Status(uint64_t index, std::string_view body)>;

  // Opens dir (created if missing), reads every record and calls visit(index, body) for those
  // with index > after, in order. After this the log appends after its last valid record.
  static Result<std::unique_ptr<Wal>> open(const std::string& dir, uint64_t after, const Visitor& visit);

  uint64_t last_index() const { return last_index_; }
  uint64_t bytes() const { return bytes_; }  // total size of all segments

  // Appends records (bodies must start with their index, consecutive after last_index()) with
  // one write; durable only after sync().
  Status append(const std::vector<std::string>& bodies, uint64_t first_index);
  Status sync();
  // Starts a new segment for indexes > index and deletes the segments that hold only <= index.
  Status truncate_through(uint64_t index);

  static std::string encode_record(std::string_view body);

 private:
  Wal(std::string dir) : dir_(std::move(dir)) {}
  Status start_segment(uint64_t first_index);

  std::string dir_;
  std::vector<std::pair<uint64_t, std::string>> segments_;  // first index, path; oldest first
  std::unique_ptr<File> active_;
  uint64_t active_size_ = 0;
  uint64_t last_index_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mydfs::storage
