#include "storage/wal.h"

#include <fcntl.h>

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/buffer.h"
#include "common/checksum.h"
#include "proto/codec.h"
#include "proto/record.h"

namespace mydfs::storage {

namespace fs = std::filesystem;

namespace {

constexpr RecordRules kWalRules{1, 8, kWalMaxBody};

size_t parse_record(std::string_view data, size_t off, std::string_view& body) {
  uint32_t type;
  return mydfs::parse_record(data, off, kWalRules, type, body);
}

bool valid_record_after(std::string_view data, size_t from) { return mydfs::valid_record_after(data, from, kWalRules); }

bool parse_segment_name(const std::string& name, uint64_t& first) {
  if (name.size() != 24 || name.rfind("wal-", 0) != 0 || name.substr(20) != ".log") return false;
  auto hex = name.substr(4, 16);
  if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  first = std::stoull(hex, nullptr, 16);
  return true;
}

uint64_t body_index(std::string_view body) {
  Reader r(body);
  return r.u64();
}

}  // namespace

std::string Wal::encode_record(std::string_view body) { return mydfs::encode_record(1, body); }

Result<std::unique_ptr<Wal>> Wal::open(const std::string& dir, uint64_t after, const Visitor& visit) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot create log directory '{}': {}", dir, ec.message()));
    auto parent = fs::path(dir).parent_path().string();
    MYDFS_TRY(sync_dir(parent.empty() ? "." : parent));
  }
  std::unique_ptr<Wal> wal(new Wal(dir));
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    uint64_t first = 0;
    if (!parse_segment_name(name, first)) {
      if (name.rfind("wal-", 0) == 0) spdlog::warn("log: ignoring unexpected file '{}'", e.path().string());
      continue;
    }
    wal->segments_.emplace_back(first, e.path().string());
  }
  if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot list log directory '{}': {}", dir, ec.message()));
  std::sort(wal->segments_.begin(), wal->segments_.end());
  // Segments wholly covered by the checkpoint (a deletion that failed after an earlier
  // checkpoint) are removed now.
  while (wal->segments_.size() > 1 && wal->segments_[1].first <= after + 1) {
    spdlog::info("log: removing '{}', covered by checkpoint {}", wal->segments_[0].second, after);
    fs::remove(wal->segments_[0].second, ec);
    wal->segments_.erase(wal->segments_.begin());
  }

  uint64_t expect = 0;  // next index expected; 0 = take the first record's
  for (size_t si = 0; si < wal->segments_.size(); ++si) {
    const auto& path = wal->segments_[si].second;
    bool last = si + 1 == wal->segments_.size();
    MYDFS_ASSIGN(auto f, File::open(path, O_RDONLY));
    MYDFS_ASSIGN(uint64_t size, f->size());
    std::string data(size, '\0');
    MYDFS_TRY(f->pread_all(0, std::as_writable_bytes(std::span(data.data(), data.size()))));
    size_t off = 0;
    while (off < data.size()) {
      std::string_view body;
      size_t n = parse_record(data, off, body);
      if (n == 0) {
        if (!last || valid_record_after(data, off + 1))
          return make_error(Code::CORRUPT, fmt::format("log record at byte {} of '{}' is corrupt; refusing to "
                                                       "start (repair or remove the damaged data to go on)", off, path));
        spdlog::warn("log: cutting a torn record at byte {} of '{}' ({} bytes)", off, path, data.size() - off);
        MYDFS_ASSIGN(auto wf, File::open(path, O_RDWR));
        MYDFS_TRY(wf->truncate(off));
        MYDFS_TRY(wf->sync());
        data.resize(off);
        break;
      }
      uint64_t idx = body_index(body);
      if (idx == 0 || idx > kWalMaxIndex)
        return make_error(Code::CORRUPT, fmt::format("log record at byte {} of '{}' has impossible index {}", off, path, idx));
      if (off == 0 && idx != wal->segments_[si].first)
        return make_error(Code::CORRUPT, fmt::format("log segment '{}' starts at entry {}, not the {} its name says",
                                                     path, idx, wal->segments_[si].first));
      if (expect == 0 && idx > after + 1)
        return make_error(Code::CORRUPT, fmt::format("log entries {}..{} are missing (the checkpoint is {}); "
                                                     "refusing to start", after + 1, idx - 1, after));
      if (expect != 0 && idx != expect)
        return make_error(Code::CORRUPT, fmt::format("log index gap at byte {} of '{}': found {}, expected {}",
                                                     off, path, idx, expect));
      expect = idx + 1;
      wal->last_index_ = idx;
      if (idx > after) MYDFS_TRY(visit(idx, body));
      off += n;
    }
    wal->bytes_ += data.size();
    if (last && !data.empty()) {
      MYDFS_ASSIGN(wal->active_, File::open(path, O_RDWR));
      wal->active_size_ = data.size();
    } else if (last) {
      // An empty last segment (or one that held only a torn record): its name may not match the
      // next index, so it is replaced by a fresh segment below.
      fs::remove(path, ec);
      wal->segments_.pop_back();
    }
  }
  if (wal->last_index_ < after) wal->last_index_ = after;
  if (!wal->active_) MYDFS_TRY(wal->start_segment(wal->last_index_ + 1));
  return wal;
}

Status Wal::start_segment(uint64_t first_index) {
  auto path = (fs::path(dir_) / fmt::format("wal-{:016x}.log", first_index)).string();
  MYDFS_ASSIGN(active_, File::open(path, O_RDWR | O_CREAT | O_TRUNC));
  MYDFS_TRY(sync_dir(dir_));
  segments_.emplace_back(first_index, path);
  active_size_ = 0;
  return ok_status();
}

Status Wal::append(const std::vector<std::string>& bodies, uint64_t first_index) {
  if (first_index != last_index_ + 1)
    return make_error(Code::INTERNAL, fmt::format("log append at {} after {}", first_index, last_index_));
  if (bodies.size() > kWalMaxIndex - last_index_)
    return make_error(Code::INTERNAL, "log index space exhausted");
  std::string buf;
  for (const auto& b : bodies) buf += encode_record(b);
  MYDFS_TRY(active_->pwrite_all(active_size_, as_bytes(buf)));
  active_size_ += buf.size();
  bytes_ += buf.size();
  last_index_ += bodies.size();
  return ok_status();
}

Status Wal::sync() { return active_->datasync(); }

Status Wal::truncate_through(uint64_t index) {
  if (index < last_index_) return make_error(Code::INTERNAL, "truncate_through before the last index");
  auto old = segments_;
  segments_.clear();
  MYDFS_TRY(start_segment(index + 1));
  for (const auto& [first, path] : old) {
    if (path == segments_.back().second) continue;
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) spdlog::warn("log: cannot remove '{}': {}", path, ec.message());
  }
  MYDFS_TRY(sync_dir(dir_));
  bytes_ = 0;
  return ok_status();
}

}  // namespace mydfs::storage
