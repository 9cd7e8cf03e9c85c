#include "raft/log_store.h"

#include <fcntl.h>

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "proto/record.h"

namespace mydfs::raft {

namespace fs = std::filesystem;

namespace {

enum RecordType : uint32_t { ENTRIES = 1, HARD_STATE = 2, SNAPSHOT = 3 };
constexpr RecordRules kRules{3, 1, 64u << 20};
constexpr size_t kMaxRecordEntriesBytes = 16u << 20;  // an ENTRIES record is split beyond this

bool parse_segment_name(const std::string& name, uint64_t& seq) {
  if (name.size() != 25 || name.rfind("raft-", 0) != 0 || name.substr(21) != ".log") return false;
  auto hex = name.substr(5, 16);
  if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  seq = std::stoull(hex, nullptr, 16);
  return true;
}

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
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot create Raft log directory '{}': {}", dir, ec.message()));
    auto parent = fs::path(dir).parent_path().string();
    MYDFS_TRY(sync_dir(parent.empty() ? "." : parent));
  }
  std::unique_ptr<LogStore> s(new LogStore(dir));
  MYDFS_TRY(s->load());
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

Status LogStore::load() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    auto name = e.path().filename().string();
    uint64_t seq = 0;
    if (parse_segment_name(name, seq)) segments_.emplace_back(seq, e.path().string());
  }
  if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot list '{}': {}", dir_, ec.message()));
  std::sort(segments_.begin(), segments_.end());
  for (size_t si = 0; si < segments_.size(); ++si) {
    const auto& path = segments_[si].second;
    bool last = si + 1 == segments_.size();
    MYDFS_ASSIGN(auto f, File::open(path, O_RDONLY));
    MYDFS_ASSIGN(uint64_t size, f->size());
    std::string data(size, '\0');
    MYDFS_TRY(f->pread_all(0, std::as_writable_bytes(std::span(data.data(), data.size()))));
    size_t off = 0;
    while (off < data.size()) {
      uint32_t type = 0;
      std::string_view body;
      size_t n = parse_record(data, off, kRules, type, body);
      if (n == 0) {
        if (!last || valid_record_after(data, off + 1, kRules))
          return make_error(Code::CORRUPT, fmt::format("Raft log record at byte {} of '{}' is corrupt; refusing to "
                                                       "start (repair or remove the damaged data to go on)", off, path));
        spdlog::warn("raft log: cutting a torn record at byte {} of '{}' ({} bytes)", off, path, data.size() - off);
        MYDFS_ASSIGN(auto wf, File::open(path, O_RDWR));
        MYDFS_TRY(wf->truncate(off));
        MYDFS_TRY(wf->sync());
        data.resize(off);
        break;
      }
      MYDFS_TRY(replay(type, body, path, off));
      off += n;
    }
    bytes_ += data.size();
    if (last) {
      MYDFS_ASSIGN(active_, File::open(path, O_RDWR));
      active_size_ = data.size();
    }
  }
  if (!active_) MYDFS_TRY(start_segment(1));
  return ok_status();
}

Status LogStore::start_segment(uint64_t seq) {
  auto path = (fs::path(dir_) / fmt::format("raft-{:016x}.log", seq)).string();
  MYDFS_ASSIGN(active_, File::open(path, O_RDWR | O_CREAT | O_TRUNC));
  MYDFS_TRY(sync_dir(dir_));
  segments_.emplace_back(seq, path);
  active_size_ = 0;
  return ok_status();
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
  MYDFS_TRY(active_->pwrite_all(active_size_, std::as_bytes(std::span(buf.data(), buf.size()))));
  MYDFS_TRY(active_->datasync());
  active_size_ += buf.size();
  bytes_ += buf.size();
  return ok_status();
}

Status LogStore::compact(const SnapshotMeta& snap, std::string_view data, const HardState& hs,
                         const std::vector<Entry>& rest) {
  std::string buf = snapshot_record(snap, data) + hard_state_record(hs);
  if (!rest.empty()) buf += entries_record(rest, 0, rest.size());
  auto old = segments_;
  uint64_t seq = segments_.empty() ? 1 : segments_.back().first + 1;
  segments_.clear();
  MYDFS_TRY(start_segment(seq));
  MYDFS_TRY(active_->pwrite_all(0, std::as_bytes(std::span(buf.data(), buf.size()))));
  MYDFS_TRY(active_->sync());
  active_size_ = bytes_ = buf.size();
  snap_ = snap;
  snap_data_ = std::string(data);
  hs_ = hs;
  last_index_ = rest.empty() ? snap.index : rest.back().index;
  for (const auto& [s, path] : old) {
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) spdlog::warn("raft log: cannot remove '{}': {}", path, ec.message());
  }
  return sync_dir(dir_);
}

}  // namespace mydfs::raft
