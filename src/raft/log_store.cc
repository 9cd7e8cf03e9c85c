#include "raft/log_store.h"


#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/record.h"

namespace mydfs::raft {


namespace {

enum RecordType : uint32_t { ENTRIES = 1, HARD_STATE = 2, SNAPSHOT = 3 };
constexpr RecordRules kRules{3, 1, 64u << 20};
constexpr size_t kMaxRecordEntriesBytes = 16u << 20;  // an ENTRIES record is split beyond this

std::string hard_state_record(const HardState& hs) {
  Writer w;
  hs.encode(w);
  return encode_record(HARD_STATE, w.data());
}

std::string snapshot_record(const SnapshotMeta& s, std::string_view data) {
  Writer w;
  s.encode(w);
  w.str(data);
  return encode_record(SNAPSHOT, w.data());
}

}  // namespace

std::string LogStore::entries_record(const std::vector<Entry>& entries, size_t from, size_t to) {
  Writer w;
  w.u32(static_cast<uint32_t>(to - from));
  for (size_t i = from; i < to; ++i) entries[i].encode(w);
  return encode_record(ENTRIES, w.data());
}

Result<std::unique_ptr<LogStore>> LogStore::open(const std::string& dir) {
  MYDFS_ASSIGN(auto segs, seglog::SegmentDir::open(dir, "raft", "Raft log"));
  std::unique_ptr<LogStore> s(new LogStore(std::move(segs)));
  auto& d = *s->segs_;
  MYDFS_TRY(d.replay(kRules, [&](size_t si, uint32_t type, std::string_view body, size_t off) {
    return s->replay(type, body, d.segments()[si].path, off);
  }));
  if (d.segments().empty()) MYDFS_TRY(d.start_segment(1));
  return s;
}

Status LogStore::replay(uint32_t type, std::string_view body, const std::string& path, size_t off) {
  Reader r(body);
  auto bad = [&](std::string_view why) {
    return make_error(Code::CORRUPT, fmt::format("Raft log record at byte {} of '{}' {}; refusing to start", off, path, why));
  };
  switch (type) {
    case HARD_STATE:
      hs_.decode(r);
      if (!r.done()) return bad("does not decode");
      return ok_status();
    case SNAPSHOT: {
      SnapshotMeta m;
      m.decode(r);
      std::string data = r.str(64u << 20);
      if (!r.done()) return bad("does not decode");
      snap_ = m;
      snap_data_ = std::move(data);
      // Entries that continue the snapshot stay; anything else is covered by it.
      std::erase_if(entries_, [&](const Entry& e) { return e.index <= m.index; });
      if (!entries_.empty() && entries_.front().index != m.index + 1) entries_.clear();
      last_index_ = entries_.empty() ? m.index : entries_.back().index;
      return ok_status();
    }
    case ENTRIES: {
      uint32_t n = r.count(21, 1u << 24);
      std::vector<Entry> es;
      es.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        Entry e;
        e.decode(r);
        es.push_back(std::move(e));
      }
      if (!r.done()) return bad("does not decode");
      if (es.empty()) return ok_status();
      for (size_t i = 1; i < es.size(); ++i)
        if (es[i].index != es[i - 1].index + 1) return bad("holds entries out of order");
      uint64_t first = es.front().index;
      if (first > last_index_ + 1) return bad(fmt::format("leaves a gap: entry {} after {}", first, last_index_));
      if (first <= snap_.index) return bad(fmt::format("rewrites entry {}, covered by the snapshot at {}", first, snap_.index));
      std::erase_if(entries_, [&](const Entry& e) { return e.index >= first; });
      for (auto& e : es) entries_.push_back(std::move(e));
      last_index_ = entries_.back().index;
      return ok_status();
    }
  }
  return bad("has an unknown type");
}

Restored LogStore::take_restored(ConfState bootstrap, uint64_t applied) {
  Restored r;
  r.hard_state = hs_;
  r.snapshot = snap_;
  r.entries = std::move(entries_);
  entries_.clear();
  r.bootstrap = std::move(bootstrap);
  r.applied = applied;
  return r;
}

Status LogStore::save(const Ready& rd) {
  std::string buf;
  if (rd.snapshot) {
    buf += snapshot_record(*rd.snapshot, rd.snapshot_data);
    snap_ = *rd.snapshot;
    snap_data_ = rd.snapshot_data;
    last_index_ = std::max(last_index_, snap_.index);
    if (rd.entries.empty() || rd.entries.front().index != snap_.index + 1) last_index_ = snap_.index;
  }
  if (!rd.entries.empty()) {
    if (rd.entries.front().index > last_index_ + 1)
      return make_error(Code::INTERNAL, fmt::format("Raft log append at {} after {}", rd.entries.front().index, last_index_));
    size_t from = 0, bytes = 0;
    for (size_t i = 0; i < rd.entries.size(); ++i) {
      bytes += rd.entries[i].data.size() + 32;
      if (bytes > kMaxRecordEntriesBytes && i > from) {
        buf += entries_record(rd.entries, from, i);
        from = i;
        bytes = rd.entries[i].data.size() + 32;
      }
    }
    buf += entries_record(rd.entries, from, rd.entries.size());
    last_index_ = rd.entries.back().index;
  }
  if (rd.hard_state) {
    buf += hard_state_record(*rd.hard_state);
    hs_ = *rd.hard_state;
  }
  if (buf.empty()) return ok_status();
  MYDFS_TRY(segs_->append(buf));
  return segs_->datasync();
}

Status LogStore::compact(const SnapshotMeta& snap, std::string_view data, const HardState& hs,
                         const std::vector<Entry>& rest) {
  std::string buf = snapshot_record(snap, data) + hard_state_record(hs);
  if (!rest.empty()) buf += entries_record(rest, 0, rest.size());
  uint64_t seq = segs_->segments().empty() ? 1 : segs_->segments().back().id + 1;
  MYDFS_TRY(segs_->start_segment(seq));
  MYDFS_TRY(segs_->append(buf));
  MYDFS_TRY(segs_->sync());
  snap_ = snap;
  snap_data_ = std::string(data);
  hs_ = hs;
  last_index_ = rest.empty() ? snap.index : rest.back().index;
  return segs_->remove_all_but_active();
}

}  // namespace mydfs::raft
