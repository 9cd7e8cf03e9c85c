// The durable Raft state of one node — hard state, snapshot and log entries — in segment files
//
//   DIR/raft-<sequence, 16 hex digits>.log
//
// (seglog/segments.h), each a sequence of records (common/record.h) of three types:
//   1 ENTRIES     u32 count, then the entries (types.h); the first one's index may be at or below
//                 the last index held: the log from there on is replaced (a new leader's suffix)
//   2 HARD_STATE  term, vote, commit
//   3 SNAPSHOT    snapshot meta, then the application's descriptor (str): everything up to the
//                 snapshot's index is dropped
// Loading replays every segment in sequence order. A new segment starts with a full copy of the
// state (SNAPSHOT, HARD_STATE, ENTRIES) — written and synced before the older segments are
// deleted — so a crash at any point leaves a loadable directory. In the last segment a record
// that is cut short or fails its checksum with nothing valid after it is a torn tail, cut with a
// warning (its Ready's messages were never sent, so nobody relies on it); any other bad record,
// or entries that do not continue the log, refuse the load.
//
// Not thread-safe: one owner (the group's Raft loop).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "raft/core.h"
#include "seglog/segments.h"

namespace mydfs::raft {

class LogStore {
 public:
  // Opens (creating if missing) and loads dir.
  static Result<std::unique_ptr<LogStore>> open(const std::string& dir);

  // What was loaded, as the core's start state (the entries are moved out).
  Restored take_restored(ConfState bootstrap, uint64_t applied);
  const HardState& hard_state() const { return hs_; }
  const SnapshotMeta& snapshot() const { return snap_; }
  const std::string& snapshot_data() const { return snap_data_; }
  uint64_t last_index() const { return last_index_; }
  uint64_t bytes() const { return segs_->bytes(); }

  // Persists what a Ready asks for (snapshot, entries, hard state) with one write and one
  // fdatasync: durable when this returns OK.
  Status save(const Ready& rd);
  // After Core::compact(): the state in a new segment (snapshot, hard state, the entries still in
  // the core's log), then the old segments go.
  Status compact(const SnapshotMeta& snap, std::string_view data, const HardState& hs, const std::vector<Entry>& rest);

 private:
  explicit LogStore(std::unique_ptr<seglog::SegmentDir> segs) : segs_(std::move(segs)) {}
  Status replay(uint32_t type, std::string_view body, const std::string& path, size_t off);
  static std::string entries_record(const std::vector<Entry>& entries, size_t from, size_t to);

  std::unique_ptr<seglog::SegmentDir> segs_;  // segment ids are a sequence number

  // The state as loaded, then as saved (entries only until take_restored()).
  HardState hs_;
  SnapshotMeta snap_;
  std::string snap_data_;
  std::vector<Entry> entries_;
  uint64_t last_index_ = 0;
};

}  // namespace mydfs::raft
