// A directory of append-only segment files, PREFIX-<id, 16 hex digits>.log, each a sequence of
// checksummed records (common/record.h). The storage node's write-ahead log and the tracker's edit
// log (seglog/wal.h) and the Raft log store (raft/log_store.h) are built on it; what a record
// means and how ids are chosen is theirs.
//
// replay() reads every segment in id order. In the last segment a record that is cut short or
// fails its checksum with nothing valid after it is a torn tail: it is cut (truncate + fsync) with
// a warning. A bad record with valid records after it, or any bad record in an older segment, is
// corruption: replay fails with the file and byte offset, and nothing is dropped.
//
// Not thread-safe: one owner.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_io.h"
#include "common/record.h"
#include "common/result.h"

namespace mydfs::seglog {

class SegmentDir {
 public:
  struct Segment {
    uint64_t id = 0;
    std::string path;
  };
  // A record found by replay(): its segment (index into segments()), type, body and byte offset.
  using Visitor = std::function<Status(size_t seg, uint32_t type, std::string_view body, size_t off)>;

  // Opens dir (created, and its parent synced, if missing) and lists its segments. label names
  // the log in messages ("log", "Raft log").
  static Result<std::unique_ptr<SegmentDir>> open(const std::string& dir, std::string prefix, std::string label);

  const std::string& dir() const { return dir_; }
  const std::vector<Segment>& segments() const { return segments_; }
  uint64_t bytes() const { return bytes_; }         // all segments, as read or written
  uint64_t active_size() const { return active_size_; }

  // Deletes the oldest segment (one a checkpoint covers) before replay.
  void remove_oldest();
  // Reads every record of every segment in order (see above), then opens the last segment for
  // appending (if there is one).
  Status replay(const RecordRules& rules, const Visitor& visit);
  // Creates segment id (empty) and appends there from now on; the directory is synced.
  Status start_segment(uint64_t id);
  // Removes the active segment if it holds nothing (a fresh one is started by the caller).
  void drop_empty_active();
  Status append(std::string_view bytes);
  Status datasync();
  Status sync();
  // Deletes every segment but the active one, then syncs the directory; bytes() becomes the
  // active segment's size.
  Status remove_all_but_active();

 private:
  SegmentDir(std::string dir, std::string prefix, std::string label)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), label_(std::move(label)) {}
  bool parse_name(const std::string& name, uint64_t& id) const;
  Status replay_segment(size_t si, const RecordRules& rules, const Visitor& visit);

  std::string dir_, prefix_, label_;
  std::vector<Segment> segments_;  // oldest first
  std::unique_ptr<File> active_;
  uint64_t active_size_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace mydfs::seglog
