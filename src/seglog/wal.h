// An index-ordered write-ahead log: the single-node replicator's command log on a storage node and
// the tracker's edit log. A directory of segment files named wal-<first index, 16 hex digits>.log
// (seglog/segments.h). Each record (docs/ON-DISK.md):
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
#include "seglog/segments.h"

namespace mydfs::seglog {

constexpr size_t kWalRecordHeader = kRecordHeader;
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
  uint64_t bytes() const { return segs_->bytes(); }  // total size of all segments

  // Appends records (bodies must start with their index, consecutive after last_index()) with
  // one write; durable only after sync().
  Status append(const std::vector<std::string>& bodies, uint64_t first_index);
  Status sync();
  // Starts a new segment for indexes > index and deletes the segments that hold only <= index.
  Status truncate_through(uint64_t index);

  static std::string encode_record(std::string_view body);

 private:
  explicit Wal(std::unique_ptr<SegmentDir> segs) : segs_(std::move(segs)) {}
  Status replay(uint64_t after, const Visitor& visit);

  std::unique_ptr<SegmentDir> segs_;  // segment ids are the first index each holds
  uint64_t last_index_ = 0;
};

}  // namespace mydfs::seglog
