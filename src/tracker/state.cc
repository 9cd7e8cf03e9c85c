#include "tracker/state.h"

#include <fcntl.h>
#include <time.h>

#include <filesystem>
#include <future>

#include <spdlog/spdlog.h>

#include "common/buffer.h"
#include "common/checksum.h"
#include "common/file_io.h"

namespace mydfs::tracker {

namespace fs = std::filesystem;
using mydfs::File;

namespace {

// Format 2 adds the inodes' `blocks`; an image of format 1 is still read (its files count their
// size rounded up to 4 KiB until their next edit).
constexpr char kImageMagic[8] = {'M', 'D', 'F', 'S', 'I', 'M', 'G', '2'};
constexpr char kImageMagic1[8] = {'M', 'D', 'F', 'S', 'I', 'M', 'G', '1'};
enum RecordKind : uint8_t { kNsOp = 1, kAddGroup = 2, kReplaceMember = 3 };

std::string image_name(uint64_t index) { return fmt::format("fsimage-{:016x}", index); }

// Images in the directory, newest first.
std::vector<std::pair<uint64_t, std::string>> list_images(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto n = e.path().filename().string();
    if (n.size() != 24 || n.rfind("fsimage-", 0) != 0) continue;
    auto hex = n.substr(8);
    if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
    out.emplace_back(std::stoull(hex, nullptr, 16), e.path().string());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

}  // namespace

TrackerState::TrackerState(StateOptions opt, Metrics* m) : opt_(std::move(opt)), groups_(opt_.groups) {
  ops_logged_ = m->counter("mydfs_tracker_edits_total", "", "Mutations written to the edit log");
  syncs_ = m->counter("mydfs_tracker_edit_syncs_total", "", "Edit log fsyncs");
  images_ = m->counter("mydfs_tracker_checkpoints_total", "", "fsimages written");
}

TrackerState::~TrackerState() { stop(); }

Timespec TrackerState::wall_now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return Timespec{t.tv_sec, static_cast<uint32_t>(t.tv_nsec)};
}

Result<std::unique_ptr<TrackerState>> TrackerState::open(StateOptions opt, Metrics* metrics) {
  std::unique_ptr<TrackerState> s(new TrackerState(std::move(opt), metrics));
  MYDFS_TRY(s->load());
  s->thread_ = std::thread([p = s.get()] { p->committer(); });
  return s;
}

Status TrackerState::load() {
  std::error_code ec;
  fs::create_directories(opt_.dir, ec);
  if (ec) return make_error(Code::BAD_REQUEST, fmt::format("cannot create '{}': {}", opt_.dir, ec.message()));
  // The newest image that passes its checksum; an image cut short by a crash is skipped with a
  // warning and the older one (kept for this) is used.
  uint64_t index = 0;
  auto images = list_images(opt_.dir);
  bool loaded = false;
  for (const auto& e : fs::directory_iterator(opt_.dir, ec)) {
    auto n = e.path().filename().string();
    if (n.rfind("fsimage-", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".tmp") {
      spdlog::info("tracker: removing '{}', an image a crash interrupted", e.path().string());
      fs::remove(e.path(), ec);
    }
  }
  for (const auto& [idx, path] : images) {
    auto f = File::open(path, O_RDONLY);
    if (!f.ok()) return f.take_error();
    MYDFS_ASSIGN(uint64_t size, (*f)->size());
    std::string data(size, '\0');
    MYDFS_TRY((*f)->pread_all(0, std::as_writable_bytes(std::span(data.data(), data.size()))));
    bool v2 = size >= 24 && std::memcmp(data.data(), kImageMagic, 8) == 0;
    bool ok = v2 || (size >= 24 && std::memcmp(data.data(), kImageMagic1, 8) == 0);
    if (ok) {
      Reader tail(data.data() + size - 8, 8);
      ok = tail.u64() == xxh64(data.data(), size - 8);
    }
    Namespace ns;
    GroupRegistry groups(opt_.groups);
    if (ok) {
      Reader r(data.data() + 8, size - 16);
      ok = r.u64() == idx && ns.decode(r, v2) && groups.decode(r) && r.done();
    }
    if (!ok) {
      spdlog::warn("tracker: image '{}' is damaged or incomplete; trying an older one", path);
      continue;
    }
    ns_ = std::move(ns);
    groups_ = std::move(groups);
    index = idx;
    loaded = true;
    std::error_code ec;
    auto written = fs::last_write_time(path, ec);
    if (!ec)
      image_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::file_clock::to_sys(written).time_since_epoch()).count();
    spdlog::info("tracker: loaded image '{}' ({} inodes)", path, ns_.inode_count());
    break;
  }
  if (!images.empty() && !loaded)
    return make_error(Code::CORRUPT, fmt::format("no fsimage in '{}' passes its checks ({} found); refusing to start "
                                                 "with an empty namespace", opt_.dir, images.size()));
  uint64_t replayed = 0;
  MYDFS_ASSIGN(log_, seglog::Wal::open(opt_.dir + "/edits", index, [&](uint64_t i, std::string_view b) {
    ++replayed;
    return replay(i, b);
  }));
  applied_ = log_->last_index();
  image_index_ = index;
  log_bytes_ = log_->bytes();
  image_time_ = std::chrono::steady_clock::now();
  spdlog::info("tracker: replayed {} edit(s) after image {}; {} inodes", replayed, index, ns_.inode_count());
  return ok_status();
}

Status TrackerState::replay(uint64_t index, std::string_view body) {
  Reader r(body);
  r.u64();
  uint8_t kind = r.u8();
  if (kind == kNsOp) {
    NsOp op;
    op.decode(r, /*from_log=*/true);
    if (!r.done()) return make_error(Code::CORRUPT, fmt::format("edit {} does not decode", index));
    // Logged ops succeeded when they were first applied; on the same state they do again.
    if (int e = ns_.apply(op, nullptr))
      return make_error(Code::CORRUPT, fmt::format("edit {} fails on replay with errno {}", index, e));
    return ok_status();
  }
  if (kind == kAddGroup) {
    uint32_t id = r.u32();
    uint32_t n = r.count(4, 64);
    std::vector<std::string> addrs;
    for (uint32_t i = 0; i < n; ++i) addrs.push_back(r.str(512));
    if (!r.done()) return make_error(Code::CORRUPT, fmt::format("edit {} does not decode", index));
    return groups_.add_group(id, std::move(addrs));
  }
  if (kind == kReplaceMember) {
    uint32_t id = r.u32();
    std::string from = r.str(512), to = r.str(512);
    if (!r.done()) return make_error(Code::CORRUPT, fmt::format("edit {} does not decode", index));
    return groups_.replace_member(id, from, to);
  }
  return make_error(Code::CORRUPT, fmt::format("edit {} has unknown kind {}", index, kind));
}

void TrackerState::submit(NsOp op, Done done) {
  {
    std::lock_guard g(queue_mu_);
    if (!stopping_) {
      Item it;
      it.op = std::move(op);
      it.done = std::move(done);
      queue_.push_back(std::move(it));
      queue_cv_.notify_one();
      return;
    }
  }
  done(ESHUTDOWN, {});
}

void TrackerState::replace_member(uint32_t id, std::string old_address, std::string new_address,
                                  std::function<void(Status)> done) {
  enqueue_group_change(Item::REPLACE_MEMBER, id, {std::move(old_address), std::move(new_address)}, std::move(done));
}

void TrackerState::add_group(uint32_t id, std::vector<std::string> addresses, std::function<void(Status)> done) {
  enqueue_group_change(Item::ADD_GROUP, id, std::move(addresses), std::move(done));
}

void TrackerState::enqueue_group_change(Item::Kind kind, uint32_t id, std::vector<std::string> addresses,
                                        std::function<void(Status)> done) {
  {
    std::lock_guard g(queue_mu_);
    if (!stopping_) {
      Item it;
      it.kind = kind;
      it.group = id;
      it.addresses = std::move(addresses);
      it.status_done = std::move(done);
      queue_.push_back(std::move(it));
      queue_cv_.notify_one();
      return;
    }
  }
  done(make_error(Code::UNAVAILABLE, "tracker is stopping"));
}

Status TrackerState::checkpoint() {
  std::promise<Status> p;
  auto f = p.get_future();
  {
    std::lock_guard g(queue_mu_);
    if (stopping_) return make_error(Code::UNAVAILABLE, "tracker is stopping");
    Item it;
    it.kind = Item::CHECKPOINT;
    it.status_done = [&p](Status s) { p.set_value(std::move(s)); };
    queue_.push_back(std::move(it));
    queue_cv_.notify_one();
  }
  return f.get();
}

void TrackerState::stop() {
  {
    std::lock_guard g(queue_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (log_ && applied_.load() != image_index_.load()) {
    Status st = write_image();
    if (!st.ok()) spdlog::error("tracker: final image failed: {}", st.error().to_string());
  }
}

Status TrackerState::write_image() {
  uint64_t idx = applied_.load();
  Writer w;
  w.raw(kImageMagic, 8);
  w.u64(idx);
  {
    std::shared_lock lock(mu_);
    ns_.encode(w);
    groups_.encode(w);
  }
  w.u64(xxh64(w.data().data(), w.size()));
  std::string final_path = opt_.dir + "/" + image_name(idx);
  std::string tmp = final_path + ".tmp";
  {
    MYDFS_ASSIGN(auto f, File::open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    MYDFS_TRY(f->pwrite_all(0, as_bytes(w.data())));
    MYDFS_TRY(f->sync());
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    return make_error(Code::IO_ERROR, fmt::format("cannot rename '{}': {}", tmp, std::strerror(errno)));
  MYDFS_TRY(sync_dir(opt_.dir));
  // The image is durable under its final name: the log up to it and older images are no longer
  // needed (an image is complete before it is renamed; one damaged later on disk stops the start
  // with a clear message rather than falling back to an image the log no longer continues).
  auto images = list_images(opt_.dir);
  for (size_t i = 1; i < images.size(); ++i) fs::remove(images[i].second);
  MYDFS_TRY(log_->truncate_through(idx));
  image_index_ = idx;
  image_time_ = std::chrono::steady_clock::now();
  image_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  log_bytes_ = log_->bytes();
  images_->inc();
  {
    std::unique_lock lock(mu_);
    groups_.note(image_time_, fmt::format("checkpoint: fsimage at index {} written ({} bytes)", idx, w.size()));
  }
  spdlog::info("tracker: wrote image {} ({} bytes)", final_path, w.size());
  return ok_status();
}

void TrackerState::sync_log() {
  Status st = log_->sync();
  if (!st.ok()) {
    // What callers were told is not on disk and cannot be made so: stop, and let recovery
    // rebuild from what is durable.
    spdlog::critical("tracker: edit log sync failed: {}; exiting", st.error().to_string());
    std::_Exit(3);
  }
  syncs_->inc();
  unsynced_ = false;
}

void TrackerState::sync(std::function<void(Status)> done) {
  {
    std::lock_guard g(queue_mu_);
    if (!stopping_) {
      Item it;
      it.kind = Item::SYNC;
      it.status_done = std::move(done);
      queue_.push_back(std::move(it));
      queue_cv_.notify_one();
      return;
    }
  }
  done(make_error(Code::UNAVAILABLE, "tracker is stopping"));
}

void TrackerState::committer() {
  const bool delayed = opt_.sync_delay.count() > 0;
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock lk(queue_mu_);
      // Asleep until work comes, or until the unsynced part of the log is due.
      auto wake = unsynced_ ? unsynced_since_ + opt_.sync_delay : std::chrono::steady_clock::now() + std::chrono::seconds(1);
      queue_cv_.wait_until(lk, wake, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) {
        lk.unlock();
        if (unsynced_) sync_log();
        return;
      }
      while (!queue_.empty() && batch.size() < opt_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (batch.back().kind == Item::CHECKPOINT) break;  // a checkpoint ends its batch
      }
    }
    if (batch.empty()) {  // woken for the background sync
      if (unsynced_ && std::chrono::steady_clock::now() >= unsynced_since_ + opt_.sync_delay) sync_log();
      continue;
    }
    std::vector<std::pair<int, OpResult>> results(batch.size());
    std::vector<Status> statuses(batch.size(), ok_status());
    bool checkpoint_requested = false, sync_requested = false;
    {
      // Exclusive from the first apply until the log is written (with sync_delay 0: until it is
      // durable, so no reader sees an undurable change).
      std::unique_lock lock(mu_);
      std::vector<std::string> bodies;
      uint64_t first = log_->last_index() + 1;
      for (size_t i = 0; i < batch.size(); ++i) {
        Item& it = batch[i];
        Writer w;
        w.u64(first + bodies.size());
        if (it.kind == Item::CHECKPOINT) {
          checkpoint_requested = true;
          continue;
        }
        if (it.kind == Item::SYNC) {
          sync_requested = true;
          continue;
        }
        if (it.kind == Item::ADD_GROUP) {
          statuses[i] = groups_.add_group(it.group, it.addresses);
          if (!statuses[i].ok()) continue;
          w.u8(kAddGroup);
          w.u32(it.group);
          w.u32(static_cast<uint32_t>(it.addresses.size()));
          for (auto& a : it.addresses) w.str(a);
        } else if (it.kind == Item::REPLACE_MEMBER) {
          statuses[i] = groups_.replace_member(it.group, it.addresses[0], it.addresses[1]);
          if (!statuses[i].ok()) continue;
          w.u8(kReplaceMember);
          w.u32(it.group);
          w.str(it.addresses[0]);
          w.str(it.addresses[1]);
        } else {
          it.op.now = wall_now();
          it.op.new_ino = ns_.next_ino();
          results[i].first = ns_.apply(it.op, &results[i].second);
          if (results[i].first != 0) continue;
          if (it.op.type == OpType::CREATE && !results[i].second.created) continue;  // opened, no change
          w.u8(kNsOp);
          it.op.encode(w);
        }
        bodies.push_back(w.take());
      }
      if (!bodies.empty()) {
        Status st = log_->append(bodies, first);
        if (!st.ok()) {
          // Memory is now ahead of the disk and cannot be rolled back: stop, and let recovery
          // rebuild from what is durable. Nobody was told of these changes.
          spdlog::critical("tracker: edit log write failed: {}; exiting", st.error().to_string());
          std::_Exit(3);
        }
        if (!unsynced_) unsynced_since_ = std::chrono::steady_clock::now();
        unsynced_ = true;
        if (!delayed) sync_log();
        ops_logged_->inc(bodies.size());
        applied_ = log_->last_index();
        log_bytes_ = log_->bytes();
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& it = batch[i];
      if (it.kind == Item::NS) it.done(results[i].first, std::move(results[i].second));
      else if (it.kind == Item::ADD_GROUP || it.kind == Item::REPLACE_MEMBER) it.status_done(std::move(statuses[i]));
    }
    // After the answers: a sync asked for (it covers this batch too), or the background sync,
    // due sync_delay after the first unsynced change (also checked when the queue is idle).
    if (unsynced_ && (sync_requested || std::chrono::steady_clock::now() >= unsynced_since_ + opt_.sync_delay))
      sync_log();
    for (auto& it : batch)
      if (it.kind == Item::SYNC) it.status_done(ok_status());
    bool due = applied_.load() - image_index_.load() >= opt_.checkpoint_ops ||
               (applied_.load() != image_index_.load() &&
                std::chrono::steady_clock::now() - image_time_ >= opt_.checkpoint_age);
    if (checkpoint_requested || due) {
      Status st = write_image();
      if (!st.ok()) spdlog::error("tracker: checkpoint failed: {}", st.error().to_string());
      for (auto& it : batch)
        if (it.kind == Item::CHECKPOINT) it.status_done(st);
    }
  }
}

}  // namespace mydfs::tracker
