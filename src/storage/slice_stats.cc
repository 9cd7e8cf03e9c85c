#include "storage/slice_stats.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "common/checksum.h"
#include "common/file_io.h"
#include "common/codec.h"

namespace mydfs::storage {

namespace {
constexpr std::string_view kMagic = "MYDFSRD1";  // file format: magic, count, records, xxh64
constexpr size_t kRecordBytes = 4 + 4 + 8 + 8;    // slot, gen, file_id, all-time reads
}  // namespace

SliceStats::SliceStats(SliceStatsOptions opt, Metrics* m) : opt_(std::move(opt)) {
  reads_ = m->counter("mydfs_storage_slice_reads_total", "", "Slice reads served (each counted per slice)");
  hits_ = m->counter("mydfs_hot_cache_hits_total", "", "Reads of hot slices answered from memory");
  misses_ = m->counter("mydfs_hot_cache_misses_total", "", "Reads of hot slices not found in memory");
  evictions_ = m->counter("mydfs_hot_cache_evictions_total", "", "Hot slices evicted to stay within the budget");
  invalidations_ = m->counter("mydfs_hot_cache_invalidations_total", "", "Cached hot slices dropped because the slot changed");
  m->gauge_fn("mydfs_hot_cache_bytes", "Bytes of hot slices in memory", [this] { return static_cast<double>(cache_bytes_used()); });
  m->gauge_fn("mydfs_hot_cache_entries", "Hot slices in memory", [this] { return static_cast<double>(cache_entries()); });
  m->gauge_fn("mydfs_hot_cache_budget_bytes", "Memory the hot-slice cache may use",
              [this] { return static_cast<double>(opt_.cache_bytes); });
  m->gauge_fn("mydfs_storage_hot_slices", "Slices read at least the hot threshold since start",
              [this] { return static_cast<double>(hot_slices()); });
  m->gauge_fn("mydfs_storage_slices_read", "Slices with a read count (since start or all time)", [this] {
    std::lock_guard g(count_mu_);
    return static_cast<double>(counts_.size());
  });
}

Status SliceStats::load() {
  if (opt_.path.empty()) return ok_status();
  std::ifstream f(opt_.path, std::ios::binary);
  if (!f) return ok_status();  // no history yet
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto bad = [&](std::string_view why) {
    return make_error(Code::CORRUPT, fmt::format("slice read counts in {} are damaged ({}); starting from zero",
                                                  opt_.path, why));
  };
  if (data.size() < kMagic.size() + 4 + 8 || std::string_view(data).substr(0, kMagic.size()) != kMagic)
    return bad("bad header");
  uint64_t sum = xxh64(data.data(), data.size() - 8);
  Reader r(std::string_view(data).substr(kMagic.size()));
  uint32_t n = r.u32();
  if (!r.ok() || (data.size() - kMagic.size() - 4 - 8) != uint64_t{n} * kRecordBytes) return bad("bad length");
  std::unordered_map<uint32_t, Count> loaded;
  loaded.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t slot = r.u32();
    Count c;
    c.gen = r.u32();
    c.file_id = r.u64();
    c.all_time = r.u64();
    loaded[slot] = c;
  }
  if (r.u64() != sum || !r.done()) return bad("checksum mismatch");
  std::lock_guard g(count_mu_);
  counts_ = std::move(loaded);
  return ok_status();
}

Status SliceStats::save() const {
  if (opt_.path.empty()) return ok_status();
  Writer w;
  {
    std::lock_guard g(count_mu_);
    w.u32(static_cast<uint32_t>(counts_.size()));
    for (const auto& [slot, c] : counts_) {
      w.u32(slot);
      w.u32(c.gen);
      w.u64(c.file_id);
      w.u64(c.all_time);
    }
  }
  std::string out(kMagic);
  out += w.take();
  uint64_t sum = xxh64(out.data(), out.size());
  Writer t;
  t.u64(sum);
  out += t.take();
  return write_file_atomic(opt_.path, as_bytes(out));
}

uint64_t SliceStats::record_read(const proto::SlotMeta& m) {
  reads_->inc();
  std::lock_guard g(count_mu_);
  Count& c = counts_[m.loc.slot];
  if (c.gen != m.loc.gen) {  // the slot holds a new slice: its history starts now
    if (hot(c.since_start)) --hot_;
    c = Count{m.loc.gen, m.file_id, 0, 0};
  }
  c.file_id = m.file_id;
  ++c.all_time;
  if (++c.since_start == opt_.hot_after) ++hot_;
  return c.since_start;
}

std::shared_ptr<const AlignedBuffer> SliceStats::lookup(const proto::SlotMeta& m) {
  std::lock_guard g(cache_mu_);
  auto it = cache_.find(m.loc.slot);
  if (it == cache_.end() || !(it->second.meta == m)) {
    if (it != cache_.end()) drop_locked(it);  // an older header of the slot: never served
    misses_->inc();
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  hits_->inc();
  return it->second.bytes;
}

void SliceStats::insert(const proto::SlotMeta& m, std::shared_ptr<const AlignedBuffer> bytes) {
  uint64_t size = bytes->size();
  if (size > opt_.cache_bytes) return;
  std::lock_guard g(cache_mu_);
  if (auto it = cache_.find(m.loc.slot); it != cache_.end()) drop_locked(it);
  while (cache_used_ + size > opt_.cache_bytes && !lru_.empty()) {
    drop_locked(cache_.find(lru_.back()));
    evictions_->inc();
  }
  lru_.push_front(m.loc.slot);
  cache_[m.loc.slot] = Cached{m, std::move(bytes), lru_.begin()};
  cache_used_ += size;
}

void SliceStats::invalidate(uint32_t slot) {
  std::lock_guard g(cache_mu_);
  auto it = cache_.find(slot);
  if (it == cache_.end()) return;
  drop_locked(it);
  invalidations_->inc();
}

void SliceStats::drop_locked(std::unordered_map<uint32_t, Cached>::iterator it) {
  cache_used_ -= it->second.bytes->size();
  lru_.erase(it->second.lru);
  cache_.erase(it);
}

std::vector<SliceReads> SliceStats::top(size_t n) const {
  std::vector<SliceReads> v;
  {
    std::lock_guard g(count_mu_);
    v.reserve(counts_.size());
    for (const auto& [slot, c] : counts_)
      v.push_back(SliceReads{Location{0, slot, c.gen}, c.file_id, c.since_start, c.all_time, false});
  }
  auto order = [](const SliceReads& a, const SliceReads& b) {
    return a.since_start != b.since_start ? a.since_start > b.since_start : a.all_time > b.all_time;
  };
  if (v.size() > n) {
    std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), order);
    v.resize(n);
  } else {
    std::sort(v.begin(), v.end(), order);
  }
  std::lock_guard g(cache_mu_);
  for (auto& s : v) {
    auto it = cache_.find(s.loc.slot);
    s.cached = it != cache_.end() && it->second.meta.loc.gen == s.loc.gen;
  }
  return v;
}

SliceReads SliceStats::of(Location loc) const {
  SliceReads r;
  r.loc = loc;
  {
    std::lock_guard g(count_mu_);
    auto it = counts_.find(loc.slot);
    if (it != counts_.end() && it->second.gen == loc.gen) {
      r.file_id = it->second.file_id;
      r.since_start = it->second.since_start;
      r.all_time = it->second.all_time;
    }
  }
  std::lock_guard g(cache_mu_);
  auto it = cache_.find(loc.slot);
  r.cached = it != cache_.end() && it->second.meta.loc.gen == loc.gen;
  return r;
}

uint64_t SliceStats::cache_bytes_used() const {
  std::lock_guard g(cache_mu_);
  return cache_used_;
}

size_t SliceStats::cache_entries() const {
  std::lock_guard g(cache_mu_);
  return cache_.size();
}

size_t SliceStats::hot_slices() const {
  std::lock_guard g(count_mu_);
  return hot_;
}

}  // namespace mydfs::storage
