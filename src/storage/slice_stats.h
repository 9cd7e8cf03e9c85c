// Per-slice read counts and the hot-slice cache of a storage node.
//
// Every READ of a slice is counted twice: since this process started, and all time (persisted in
// DATA/slice-reads now and then and at shutdown, loaded at start). A slice is identified by its
// slot and generation; when a slot is reused (new generation) its counts start again.
//
// A slice read `hot_after` times since start is hot: its whole payload is kept in memory, in a
// cache bounded by `cache_bytes` with least-recently-used eviction, and later reads are answered
// from memory. An entry is valid only for the exact header it was loaded with (generation, applied
// index, length, checksum): any mutation of the slot changes the header and the store's change hook
// drops the entry, so a stale copy is never served. Hits and misses are counted (a miss is a read
// of a hot slice that was not in the cache).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/buffer.h"
#include "common/metrics.h"
#include "common/result.h"
#include "proto/messages.h"

namespace mydfs::storage {

struct SliceStatsOptions {
  std::string path;             // where all-time counts persist ("" = not persisted)
  uint64_t hot_after = 20;      // reads since start that make a slice hot (0 = no hot slices)
  uint64_t cache_bytes = 256ull << 20;  // memory for hot slices (0 = no cache)
};

struct SliceReads {
  Location loc;
  uint64_t file_id = 0;
  uint64_t since_start = 0;
  uint64_t all_time = 0;
  bool cached = false;
};

class SliceStats {
 public:
  SliceStats(SliceStatsOptions opt, Metrics* metrics);

  // Loads the all-time counts. A missing file is an empty history; a damaged one is reported
  // (the caller logs it) and ignored.
  Status load();
  // Writes the all-time counts atomically (temporary file, fsync, rename).
  Status save() const;

  // Counts one read of the slice m describes; returns its reads since start.
  uint64_t record_read(const proto::SlotMeta& m);
  bool hot(uint64_t since_start) const { return opt_.hot_after > 0 && since_start >= opt_.hot_after; }
  // A slice of this many bytes may be cached: there is a cache, and the slice is not larger than
  // all of it (it would be loaded on every read).
  bool fits(uint64_t bytes) const { return opt_.cache_bytes > 0 && bytes <= opt_.cache_bytes; }

  // The cached payload of exactly this header, or null (counted as a hit or a miss).
  std::shared_ptr<const AlignedBuffer> lookup(const proto::SlotMeta& m);
  // Caches a hot slice's payload (bytes must be its valid_len bytes and match its checksum).
  // Older entries are evicted to stay within the budget; a slice larger than it is not cached.
  void insert(const proto::SlotMeta& m, std::shared_ptr<const AlignedBuffer> bytes);
  // The slot changed: drops its cached copy.
  void invalidate(uint32_t slot);

  // Slices by reads since start, most read first (ties: all-time), at most n.
  std::vector<SliceReads> top(size_t n) const;
  // Counts of one slot (zeros if it was never read in this generation).
  SliceReads of(Location loc) const;

  uint64_t reads_total() const { return reads_->get(); }
  uint64_t cache_hits() const { return hits_->get(); }
  uint64_t cache_misses() const { return misses_->get(); }
  uint64_t cache_bytes_used() const;
  size_t cache_entries() const;
  size_t hot_slices() const;

 private:
  struct Count {
    uint32_t gen = 0;
    uint64_t file_id = 0;
    uint64_t since_start = 0;
    uint64_t all_time = 0;
  };
  struct Cached {
    proto::SlotMeta meta;
    std::shared_ptr<const AlignedBuffer> bytes;
    std::list<uint32_t>::iterator lru;
  };
  void drop_locked(std::unordered_map<uint32_t, Cached>::iterator it);

  SliceStatsOptions opt_;
  Counter* reads_;
  Counter* hits_;
  Counter* misses_;
  Counter* evictions_;
  Counter* invalidations_;

  mutable std::mutex count_mu_;
  std::unordered_map<uint32_t, Count> counts_;  // by slot
  size_t hot_ = 0;                              // slices at or past hot_after since start

  mutable std::mutex cache_mu_;
  std::unordered_map<uint32_t, Cached> cache_;  // by slot
  std::list<uint32_t> lru_;                     // most recently used first
  uint64_t cache_used_ = 0;
};

}  // namespace mydfs::storage
