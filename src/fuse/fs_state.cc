#include "fuse/fs_state.h"

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

namespace mydfs::fuse {

namespace {

// The error a handle holds, handed over once.
Status take_error(Handle& h) {
  if (!h.error) return ok_status();
  Error e = std::move(*h.error);
  h.error.reset();
  return e;
}

// How many of size bytes at off a file of attributes a has.
uint32_t readable(const Attr& a, uint64_t off, size_t size) {
  return static_cast<uint32_t>(off >= a.size ? 0 : std::min<uint64_t>(size, a.size - off));
}

}  // namespace

void FsState::start() {
  client::ClientOptions co;
  co.tracker = opt_.tracker;
  client_ = std::make_unique<client::Client>(co);
}

void FsState::shutdown() {
  if (!client_) return;  // never started
  std::vector<std::shared_ptr<Handle>> hs;
  std::set<uint64_t> orphans;
  {
    std::lock_guard g(open_mu_);
    for (auto& [ino, h] : open_) hs.push_back(h);
    open_.clear();
    orphans.swap(orphans_);
  }
  for (auto& h : hs) {
    std::lock_guard hg(h->mu);
    if (auto s = flush_locked(*h); !s.ok())
      spdlog::error("unmount: inode {}: buffered bytes lost: {}", h->ino, s.error().to_string());
  }
  for (uint64_t ino : orphans) drop_orphan_link(ino);
}

Result<proto::NsReply> FsState::ns_write(NsOp op) {
  const bool removes_dir = op.type == OpType::RMDIR;
  auto r = client_->ns_write(std::move(op));
  if (!r.ok()) return r;
  client_->release(r->released);
  if (opt_.attr_timeout.count() == 0) return r;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard g(dirs_mu_);
  // Old entries go as new ones come: the map holds what changed within the timeout.
  for (auto it = dirs_.begin(); it != dirs_.end();)
    it = now - it->second.at >= opt_.attr_timeout ? dirs_.erase(it) : std::next(it);
  auto keep = [&](const Attr& d) {
    // Two changes answered out of order: the later state (its ctime) wins.
    auto key = [](const Timespec& t) { return std::pair{t.sec, t.nsec}; };
    auto [it, fresh] = dirs_.try_emplace(d.ino, DirAttr{d, now});
    if (!fresh && key(d.ctime) >= key(it->second.attr.ctime)) it->second = DirAttr{d, now};
  };
  // The changed inode itself: a directory's answer holds its newest attributes (a chmod, new
  // times), so an older answer arriving later cannot bring back the old ones; a removed one goes.
  if (r->attr.ino != 0) {
    if (r->attr.type == FileType::DIR && !removes_dir) keep(r->attr);
    else dirs_.erase(r->attr.ino);
  }
  for (const auto& d : r->dirs) keep(d);
  return r;
}

std::optional<Attr> FsState::dir_attr(uint64_t ino) {
  std::lock_guard g(dirs_mu_);
  auto it = dirs_.find(ino);
  if (it == dirs_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() - it->second.at >= opt_.attr_timeout) {
    dirs_.erase(it);
    return std::nullopt;
  }
  return it->second.attr;
}

Attr FsState::seen(Attr a) {
  std::lock_guard g(open_mu_);
  for (auto [it, end] = open_.equal_range(a.ino); it != end; ++it)
    a.size = std::max<uint64_t>(a.size, it->second->buffered_end.load());
  if (a.type == FileType::REG && orphans_.count(a.ino)) a.nlink = 0;
  return a;
}

// ---- Open files ----------------------------------------------------------------------------------

void FsState::opened(std::shared_ptr<Handle> h) {
  std::lock_guard g(open_mu_);
  open_.emplace(h->ino, std::move(h));
}

void FsState::closed(Handle* h) {
  uint64_t ino = h->ino;
  bool drop = false;
  {
    std::lock_guard g(open_mu_);
    for (auto [it, end] = open_.equal_range(ino); it != end; ++it)
      if (it->second.get() == h) {
        open_.erase(it);
        break;
      }
    if (!open_.count(ino)) drop = orphans_.erase(ino) > 0;
  }
  if (drop) drop_orphan_link(ino);
}

Result<Handle*> FsState::open(uint64_t ino, bool trunc) {
  // Counted as open from the start: an unlink racing this open then keeps the file for it.
  auto h = std::make_shared<Handle>(ino);
  Handle* raw = h.get();
  opened(std::move(h));
  if (auto s = load(*raw, trunc); !s.ok()) {
    closed(raw);
    return s.take_error();
  }
  return raw;
}

Status FsState::load(Handle& h, bool trunc) {
  if (trunc) flush_all(h.ino, &h);
  MYDFS_ASSIGN(Attr a, client_->getattr(h.ino));
  if (a.type == FileType::DIR) return fs_error(EISDIR);
  if (a.type != FileType::REG) return fs_error(ENXIO);
  if (trunc && a.size != 0) {
    MYDFS_ASSIGN(a, client_->truncate_ino(h.ino, 0));
  }
  std::lock_guard g(h.mu);
  h.attr = a;
  return ok_status();
}

Handle* FsState::open_created(const Attr& a) {
  auto h = std::make_shared<Handle>(a.ino);
  h->attr = a;
  Handle* raw = h.get();
  opened(std::move(h));
  return raw;
}

Result<std::string> FsState::read(Handle& h, uint64_t off, size_t size) {
  // Unflushed bytes of any handle of this file (this one's too) are read back through the file.
  bool others = flush_all(h.ino, &h);
  std::lock_guard g(h.mu);
  if (!h.buf.empty()) MYDFS_TRY(flush_locked(h));
  // Another handle changed the file, or this read reaches past what this handle knew of it
  // (another mount may have grown it): read the file as it is now.
  if (others || off + size > h.attr.size) MYDFS_TRY(refresh_locked(h));
  if (off >= h.attr.size) return std::string();
  auto data = pread_locked(h, off, size);
  if (!data.ok()) {  // the file was replaced since (its old chain is gone): once more, as it is now
    MYDFS_TRY(refresh_locked(h));
    data = pread_locked(h, off, size);
  }
  return data;
}

Status FsState::refresh_locked(Handle& h) {
  MYDFS_ASSIGN(h.attr, client_->getattr(h.ino));
  return ok_status();
}

Result<std::string> FsState::pread_locked(Handle& h, uint64_t off, size_t size) {
  auto data = client_->pread(h.attr, off, readable(h.attr, off, size));
  if (data.ok())
    spdlog::debug("inode {}: read {} at {} -> {} bytes (size {}, version {})", h.ino, size, off, data->size(),
                  h.attr.size, h.attr.version);
  return data;
}

Status FsState::write(Handle& h, uint64_t off, std::string_view data) {
  flush_all(h.ino, &h);
  std::lock_guard g(h.mu);
  if (h.error) return take_error(h);
  if (!h.buf.empty() && off != h.buf_off + h.buf.size()) MYDFS_TRY(flush_locked(h));
  if (h.buf.empty()) h.buf_off = off;
  h.buf.append(data);
  h.buffered_end = h.buf_off + h.buf.size();
  if (h.buf.size() >= opt_.write_buffer) MYDFS_TRY(flush_locked(h));
  return ok_status();
}

Status FsState::flush(Handle& h) {
  std::lock_guard g(h.mu);
  return flush_locked(h);
}

Status FsState::fsync(Handle& h) {
  // An edit is durable on a majority of its group and published before it returns; the
  // publication (and the file's name) then waits for the tracker's synced log.
  flush_all(h.ino, &h);
  MYDFS_TRY(flush(h));
  return client_->sync_namespace();
}

Status FsState::release(Handle* h) {
  Status s = flush(*h);
  closed(h);  // frees it (unless a flush of another handle holds it for a moment)
  return s;
}

Status FsState::grow(Handle& h, uint64_t size) {
  flush_all(h.ino, &h);
  std::lock_guard g(h.mu);
  MYDFS_TRY(flush_locked(h));
  // Grow only, decided inside the edit: a size published meanwhile by another writer is kept.
  MYDFS_ASSIGN(h.attr, client_->grow_ino(h.ino, size));
  return ok_status();
}

bool FsState::flush_all(uint64_t ino, const Handle* except) {
  std::vector<std::shared_ptr<Handle>> hs;
  {
    std::lock_guard g(open_mu_);
    for (auto [it, end] = open_.equal_range(ino); it != end; ++it)
      if (it->second.get() != except) hs.push_back(it->second);
  }
  bool flushed = false;
  for (auto& h : hs) {
    std::lock_guard hg(h->mu);
    if (h->buf.empty()) continue;
    if (auto s = flush_locked(*h); !s.ok()) h->error = s.take_error();
    flushed = true;
  }
  return flushed;
}

Status FsState::flush_locked(Handle& h) {
  if (h.buf.empty()) return take_error(h);
  auto r = client_->write_ino(h.ino, h.buf_off, h.buf);
  size_t n = h.buf.size();
  h.buf.clear();
  h.buffered_end = 0;
  if (!r.ok()) {
    spdlog::warn("write of {} bytes to inode {} at {} failed: {}", n, h.ino, h.buf_off, r.error().to_string());
    h.error.reset();  // this failure is the one reported
    return r.take_error();
  }
  spdlog::debug("inode {}: wrote {} bytes at {}; size now {}", h.ino, n, h.buf_off, r->size);
  h.attr = *r;
  return take_error(h);
}

// ---- Orphans -------------------------------------------------------------------------------------

bool FsState::is_orphans_dir(uint64_t parent, std::string_view name) { return parent == kRootIno && name == kOrphans; }

bool FsState::any_open() {
  std::lock_guard g(open_mu_);
  return !open_.empty();
}

bool FsState::is_open(uint64_t ino) {
  std::lock_guard g(open_mu_);
  return open_.count(ino) > 0;
}

Result<uint64_t> FsState::orphan_dir(bool again) {
  std::lock_guard g(orphan_dir_mu_);
  if (orphan_dir_ && !again) return orphan_dir_;
  auto r = client_->ns_write(NsOp::mkdir(kRootIno, std::string(kOrphans), 0700));
  if (!r.ok() && to_errno(r.error()) != EEXIST) return r.take_error();
  MYDFS_ASSIGN(Attr dir, client_->lookup(kRootIno, std::string(kOrphans)));
  orphan_dir_ = dir.ino;
  return orphan_dir_;
}

// The inode of (parent, name) if that is the last link of a regular file open here; 0 otherwise,
// also when the lookup fails (the unlink or rename then reports it). Most calls need no lookup.
uint64_t FsState::open_last_link(uint64_t parent, const std::string& name) {
  if (!any_open()) return 0;
  auto l = client_->lookup(parent, name);
  if (!l.ok() || l->type != FileType::REG || l->nlink > 1 || !is_open(l->ino)) return 0;
  return l->ino;
}

// Applies op(hidden directory): once more if the directory was removed by hand.
Status FsState::to_orphans(const std::function<NsOp(uint64_t dir)>& op) {
  for (int attempt = 0;; ++attempt) {
    MYDFS_ASSIGN(uint64_t dir, orphan_dir(attempt > 0));
    auto r = ns_write(op(dir));
    if (r.ok()) return ok_status();
    if (attempt > 0 || to_errno(r.error()) != ENOENT) return r.take_error();
  }
}

Result<bool> FsState::hide_unlinked(uint64_t parent, const std::string& name) {
  uint64_t ino = open_last_link(parent, name);
  if (!ino) return false;
  MYDFS_TRY(to_orphans([&](uint64_t dir) { return NsOp::rename(parent, name, dir, std::to_string(ino)); }));
  adopt_orphan(ino);
  return true;
}

Result<uint64_t> FsState::keep_replaced(uint64_t parent, const std::string& name, uint64_t newparent,
                                        const std::string& newname) {
  uint64_t ino = open_last_link(newparent, newname);
  if (!ino) return uint64_t{0};
  auto src = client_->lookup(parent, name);
  if (!src.ok() || src->ino == ino) return uint64_t{0};  // the rename fails, or changes nothing
  // A second link first, so the rename itself stays one atomic step.
  MYDFS_TRY(to_orphans([&](uint64_t dir) { return NsOp::link(ino, dir, std::to_string(ino)); }));
  return ino;
}

void FsState::settle_replaced(uint64_t ino, bool renamed) {
  if (renamed) adopt_orphan(ino);
  else drop_orphan_link(ino);  // the target keeps its name
}

// The hidden link exists and the visible one is gone: from now on the last close removes it; if
// that close came already, remove it here.
void FsState::adopt_orphan(uint64_t ino) {
  {
    std::lock_guard g(open_mu_);
    if (open_.count(ino)) {
      orphans_.insert(ino);
      return;
    }
  }
  drop_orphan_link(ino);
}

void FsState::drop_orphan_link(uint64_t ino) {
  uint64_t dir;
  {
    std::lock_guard g(orphan_dir_mu_);
    dir = orphan_dir_;
  }
  if (!ns_write(NsOp::unlink(dir, std::to_string(ino))).ok()) spdlog::warn("cannot remove {}/{}", kOrphans, ino);
}

}  // namespace mydfs::fuse
