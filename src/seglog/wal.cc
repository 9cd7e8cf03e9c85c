#include "seglog/wal.h"

#include <spdlog/spdlog.h>

#include "common/codec.h"

namespace mydfs::seglog {

namespace {

constexpr RecordRules kWalRules{1, 8, kWalMaxBody};

uint64_t body_index(std::string_view body) {
  Reader r(body);
  return r.u64();
}

}  // namespace

std::string Wal::encode_record(std::string_view body) { return mydfs::encode_record(1, body); }

Result<std::unique_ptr<Wal>> Wal::open(const std::string& dir, uint64_t after, const Visitor& visit) {
  MYDFS_ASSIGN(auto segs, SegmentDir::open(dir, "wal", "log"));
  std::unique_ptr<Wal> wal(new Wal(std::move(segs)));
  // Segments wholly covered by the checkpoint (a deletion that failed after an earlier
  // checkpoint) are removed now.
  auto& s = *wal->segs_;
  while (s.segments().size() > 1 && s.segments()[1].id <= after + 1) {
    spdlog::info("log: removing '{}', covered by checkpoint {}", s.segments()[0].path, after);
    s.remove_oldest();
  }
  MYDFS_TRY(wal->replay(after, visit));
  if (wal->last_index_ < after) wal->last_index_ = after;
  // An empty last segment (or one that held only a torn record) may not be named for the next
  // index, so it is replaced by a fresh one.
  s.drop_empty_active();
  if (s.segments().empty() || s.active_size() == 0) MYDFS_TRY(s.start_segment(wal->last_index_ + 1));
  return wal;
}

Status Wal::replay(uint64_t after, const Visitor& visit) {
  uint64_t expect = 0;  // next index expected; 0 = take the first record's
  return segs_->replay(kWalRules, [&](size_t si, uint32_t, std::string_view body, size_t off) -> Status {
    const auto& seg = segs_->segments()[si];
    uint64_t idx = body_index(body);
    if (idx == 0 || idx > kWalMaxIndex)
      return make_error(Code::CORRUPT, fmt::format("log record at byte {} of '{}' has impossible index {}", off, seg.path, idx));
    if (off == 0 && idx != seg.id)
      return make_error(Code::CORRUPT, fmt::format("log segment '{}' starts at entry {}, not the {} its name says",
                                                   seg.path, idx, seg.id));
    if (expect == 0 && idx > after + 1)
      return make_error(Code::CORRUPT, fmt::format("log entries {}..{} are missing (the checkpoint is {}); "
                                                   "refusing to start", after + 1, idx - 1, after));
    if (expect != 0 && idx != expect)
      return make_error(Code::CORRUPT, fmt::format("log index gap at byte {} of '{}': found {}, expected {}",
                                                   off, seg.path, idx, expect));
    expect = idx + 1;
    last_index_ = idx;
    if (idx > after) MYDFS_TRY(visit(idx, body));
    return ok_status();
  });
}

Status Wal::append(const std::vector<std::string>& bodies, uint64_t first_index) {
  if (first_index != last_index_ + 1)
    return make_error(Code::INTERNAL, fmt::format("log append at {} after {}", first_index, last_index_));
  if (bodies.size() > kWalMaxIndex - last_index_)
    return make_error(Code::INTERNAL, "log index space exhausted");
  std::string buf;
  for (const auto& b : bodies) buf += encode_record(b);
  MYDFS_TRY(segs_->append(buf));
  last_index_ += bodies.size();
  return ok_status();
}

Status Wal::sync() { return segs_->datasync(); }

Status Wal::truncate_through(uint64_t index) {
  if (index < last_index_) return make_error(Code::INTERNAL, "truncate_through before the last index");
  MYDFS_TRY(segs_->start_segment(index + 1));
  return segs_->remove_all_but_active();
}

}  // namespace mydfs::seglog
