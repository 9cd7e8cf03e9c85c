#include "seglog/segments.h"

#include <fcntl.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace mydfs::seglog {

namespace fs = std::filesystem;

Result<std::unique_ptr<SegmentDir>> SegmentDir::open(const std::string& dir, std::string prefix, std::string label) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot create {} directory '{}': {}", label, dir, ec.message()));
    auto parent = fs::path(dir).parent_path().string();
    MYDFS_TRY(sync_dir(parent.empty() ? "." : parent));
  }
  std::unique_ptr<SegmentDir> d(new SegmentDir(dir, std::move(prefix), std::move(label)));
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    uint64_t id = 0;
    if (d->parse_name(name, id)) {
      d->segments_.push_back({id, e.path().string()});
    } else if (name.rfind(d->prefix_ + "-", 0) == 0) {
      spdlog::warn("{}: ignoring unexpected file '{}'", d->label_, e.path().string());
    }
  }
  if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot list {} directory '{}': {}", d->label_, dir, ec.message()));
  std::sort(d->segments_.begin(), d->segments_.end(), [](const Segment& a, const Segment& b) { return a.id < b.id; });
  return d;
}

bool SegmentDir::parse_name(const std::string& name, uint64_t& id) const {
  size_t p = prefix_.size();
  if (name.size() != p + 21 || name.compare(0, p, prefix_) != 0 || name[p] != '-' || name.substr(p + 17) != ".log")
    return false;
  auto hex = name.substr(p + 1, 16);
  if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  id = std::stoull(hex, nullptr, 16);
  return true;
}

void SegmentDir::remove_oldest() {
  if (segments_.empty()) return;
  std::error_code ec;
  fs::remove(segments_.front().path, ec);
  segments_.erase(segments_.begin());
}

Status SegmentDir::replay(const RecordRules& rules, const Visitor& visit) {
  for (size_t si = 0; si < segments_.size(); ++si) MYDFS_TRY(replay_segment(si, rules, visit));
  return ok_status();
}

Status SegmentDir::replay_segment(size_t si, const RecordRules& rules, const Visitor& visit) {
  const auto& path = segments_[si].path;
  bool last = si + 1 == segments_.size();
  MYDFS_ASSIGN(auto f, File::open(path, O_RDONLY));
  MYDFS_ASSIGN(uint64_t size, f->size());
  std::string data(size, '\0');
  MYDFS_TRY(f->pread_all(0, std::as_writable_bytes(std::span(data.data(), data.size()))));
  size_t off = 0;
  while (off < data.size()) {
    uint32_t type = 0;
    std::string_view body;
    size_t n = parse_record(data, off, rules, type, body);
    if (n == 0) {
      if (!last || valid_record_after(data, off + 1, rules))
        return make_error(Code::CORRUPT, fmt::format("{} record at byte {} of '{}' is corrupt; refusing to start "
                                                     "(repair or remove the damaged data to go on)", label_, off, path));
      spdlog::warn("{}: cutting a torn record at byte {} of '{}' ({} bytes)", label_, off, path, data.size() - off);
      MYDFS_ASSIGN(auto wf, File::open(path, O_RDWR));
      MYDFS_TRY(wf->truncate(off));
      MYDFS_TRY(wf->sync());
      data.resize(off);
      break;
    }
    MYDFS_TRY(visit(si, type, body, off));
    off += n;
  }
  bytes_ += data.size();
  if (last) {
    MYDFS_ASSIGN(active_, File::open(path, O_RDWR));
    active_size_ = data.size();
  }
  return ok_status();
}

void SegmentDir::drop_empty_active() {
  if (!active_ || active_size_ != 0) return;
  active_.reset();
  std::error_code ec;
  fs::remove(segments_.back().path, ec);
  segments_.pop_back();
}

Status SegmentDir::start_segment(uint64_t id) {
  auto path = (fs::path(dir_) / fmt::format("{}-{:016x}.log", prefix_, id)).string();
  MYDFS_ASSIGN(active_, File::open(path, O_RDWR | O_CREAT | O_TRUNC));
  MYDFS_TRY(sync_dir(dir_));
  segments_.push_back({id, path});
  active_size_ = 0;
  return ok_status();
}

Status SegmentDir::append(std::string_view bytes) {
  MYDFS_TRY(active_->pwrite_all(active_size_, std::as_bytes(std::span(bytes.data(), bytes.size()))));
  active_size_ += bytes.size();
  bytes_ += bytes.size();
  return ok_status();
}

Status SegmentDir::datasync() { return active_->datasync(); }
Status SegmentDir::sync() { return active_->sync(); }

Status SegmentDir::remove_all_but_active() {
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    if (segments_[i].path == segments_.back().path) continue;  // restarted under the same name
    std::error_code ec;
    fs::remove(segments_[i].path, ec);
    if (ec) spdlog::warn("{}: cannot remove '{}': {}", label_, segments_[i].path, ec.message());
  }
  segments_.erase(segments_.begin(), segments_.end() - 1);
  MYDFS_TRY(sync_dir(dir_));
  bytes_ = active_size_;  // only now: a failed sync leaves the log looking due for another try
  return ok_status();
}

}  // namespace mydfs::seglog
