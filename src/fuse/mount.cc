// The FUSE mount. Inode numbers are the tracker's inode ids, so the mount keeps no inode table:
// lookups and forgets need no bookkeeping, and every metadata call is one tracker request. Data
// goes through the client library: reads walk the chain (cached per head and version), writes
// collect in a per-handle buffer that becomes one edit (append, patch or 2PC, as the library
// decides) when it is full, when a write is not contiguous with it, or on flush/fsync/close.
#define FUSE_USE_VERSION 312
#include "fuse/mount.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "client/client.h"
#include "common/parse.h"

namespace mydfs::fuse {
namespace {

using client::Client;
using proto::NsReadOp;
using proto::NsReadReq;
using proto::NsReply;

constexpr size_t kReadChunk = 1 << 20;  // most bytes one read request asks for (max_read)

mode_t type_bits(FileType t) {
  switch (t) {
    case FileType::REG: return S_IFREG;
    case FileType::DIR: return S_IFDIR;
    case FileType::LNK: return S_IFLNK;
    case FileType::FIFO: return S_IFIFO;
    case FileType::SOCK: return S_IFSOCK;
    case FileType::CHR: return S_IFCHR;
    case FileType::BLK: return S_IFBLK;
  }
  return S_IFREG;
}

std::optional<FileType> type_of(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return FileType::REG;
    case S_IFDIR: return FileType::DIR;
    case S_IFLNK: return FileType::LNK;
    case S_IFIFO: return FileType::FIFO;
    case S_IFSOCK: return FileType::SOCK;
    case S_IFCHR: return FileType::CHR;
    case S_IFBLK: return FileType::BLK;
  }
  return std::nullopt;
}

struct stat to_stat(const Attr& a) {
  struct stat st {};
  st.st_ino = a.ino;
  st.st_mode = type_bits(a.type) | (a.mode & 07777);
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_rdev = a.rdev;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blksize = 1 << 20;  // what cp and friends use as their I/O size
  st.st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
  st.st_atim = {a.atime.sec, a.atime.nsec};
  st.st_mtim = {a.mtime.sec, a.mtime.nsec};
  st.st_ctim = {a.ctime.sec, a.ctime.nsec};
  return st;
}

Timespec to_timespec(const struct timespec& t) { return {t.tv_sec, static_cast<uint32_t>(t.tv_nsec)}; }

// An open regular file.
struct Handle {
  uint64_t ino = 0;
  std::mutex mu;
  Attr attr;             // as of open, or of this handle's last edit
  uint64_t buf_off = 0;  // the unflushed bytes: buf at buf_off
  std::string buf;
  std::atomic<uint64_t> buffered_end{0};  // buf_off + buf.size() (0: empty), read without mu
  int error = 0;         // a failed flush of written bytes, reported once at flush/fsync/close
};

class Fs {
 public:
  explicit Fs(const MountOptions& o) : opt_(o) {}

  // Made after the mount is up (and after daemonizing: the client runs a thread).
  void start() {
    client::ClientOptions co;
    co.tracker = opt_.tracker;
    client_ = std::make_unique<Client>(co);
  }

  // ---- Files removed while open (kept until their last close, as POSIX wants) ----
  // Such a file gets a link in the hidden directory /.mydfs-orphans (named by its inode) before
  // its last visible name goes, and that link is removed when this mount closes its last handle
  // of it. Open handles and orphans are counted under one lock, so a close racing the removal
  // still leaves exactly one party to remove the hidden link.
  static constexpr const char* kOrphans = ".mydfs-orphans";
  Result<uint64_t> orphan_dir(bool again = false) {
    std::lock_guard g(orphan_dir_mu_);
    if (orphan_dir_ && !again) return orphan_dir_;
    auto r = client_->ns_write(NsOp::mkdir(kRootIno, kOrphans, 0700));
    if (!r.ok() && to_errno(r.error()) != EEXIST) return r.take_error();
    auto l = client_->ns_read(NsReadReq{NsReadOp::LOOKUP, kRootIno, kOrphans, 0, 0});
    if (!l.ok()) return l.take_error();
    orphan_dir_ = l->attr.ino;
    return orphan_dir_;
  }
  bool any_open() {
    std::lock_guard g(open_mu_);
    return !open_.empty();
  }
  bool is_open(uint64_t ino) {
    std::lock_guard g(open_mu_);
    return open_.count(ino) > 0;
  }
  bool orphaned(uint64_t ino) {
    std::lock_guard g(open_mu_);
    return orphans_.count(ino) > 0;
  }
  // If (parent, name) is the last link of a file open here, gives it a hidden link first: by
  // moving it there (unlink: *moved, nothing more to do) or, for a rename over it, by a second
  // link (*linked = its inode; the caller renames, then calls adopt_orphan, or drop_orphan_link
  // if the rename failed). Returns an errno (0: done, or nothing to do).
  int hide_if_open(uint64_t parent, const std::string& name, bool for_rename, bool* moved, uint64_t* linked) {
    *moved = false;
    *linked = 0;
    if (!any_open()) return 0;  // the common case needs no lookup
    auto l = client_->ns_read(NsReadReq{NsReadOp::LOOKUP, parent, name, 0, 0});
    if (!l.ok() || l->err || l->attr.type != FileType::REG || l->attr.nlink > 1 || !is_open(l->attr.ino)) return 0;
    uint64_t ino = l->attr.ino;
    int err = 0;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto dir = orphan_dir(attempt > 0);  // once more if the directory was removed by hand
      if (!dir.ok()) return to_errno(dir.error());
      auto r = client_->ns_write(for_rename ? NsOp::link(ino, *dir, std::to_string(ino))
                                            : NsOp::rename(parent, name, *dir, std::to_string(ino)));
      err = r.ok() ? 0 : to_errno(r.error());
      if (err != ENOENT) break;
    }
    if (err) return err;
    if (for_rename) *linked = ino;
    else *moved = true;
    if (!for_rename) adopt_orphan(ino);
    return 0;
  }
  // The hidden link exists and the visible one is gone: from now on the last close removes it;
  // if that close came already, remove it here.
  void adopt_orphan(uint64_t ino) {
    {
      std::lock_guard g(open_mu_);
      if (open_.count(ino)) {
        orphans_.insert(ino);
        return;
      }
    }
    drop_orphan_link(ino);
  }
  void drop_orphan_link(uint64_t ino) {
    auto r = client_->ns_write(NsOp::unlink(orphan_dir_, std::to_string(ino)));
    if (r.ok()) client_->release(r->released);
    else spdlog::warn("cannot remove {}/{}", kOrphans, ino);
  }
  // What a caller sees of an inode: unflushed sizes counted in, an orphan has no links.
  Attr seen(Attr a) {
    std::lock_guard g(open_mu_);
    for (auto [it, end] = open_.equal_range(a.ino); it != end; ++it)
      a.size = std::max<uint64_t>(a.size, it->second->buffered_end.load());
    if (a.type == FileType::REG && orphans_.count(a.ino)) a.nlink = 0;
    return a;
  }
  Client& client() { return *client_; }
  const MountOptions& opt() const { return opt_; }
  double entry_timeout() const { return opt_.entry_timeout.count() / 1000.0; }
  double attr_timeout() const { return opt_.attr_timeout.count() / 1000.0; }

  // The map owns open handles; fuse_file_info::fh points at one. A flush of another handle holds
  // a reference, so a release meanwhile does not free it under the flush.
  void opened(std::shared_ptr<Handle> h) {
    std::lock_guard g(open_mu_);
    open_.emplace(h->ino, std::move(h));
  }
  // Forgets a handle; after the last one of an orphan, removes the orphan's hidden link.
  void closed(Handle* h) {
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
  // At unmount: every buffered byte to the cluster, every orphan of this mount removed.
  void shutdown() {
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
      if (int e = flush_locked(*h)) spdlog::error("unmount: inode {}: buffered bytes lost: {}", h->ino, std::strerror(e));
    }
    for (uint64_t ino : orphans) drop_orphan_link(ino);
  }
  // Flushes every open handle of ino but `except` (before a truncate or a read, so what was
  // written is what is seen; before another handle's write, so the writes reach the file in the
  // order they were made: only one handle of a file holds unflushed bytes at a time).
  // A failed flush of another handle's bytes is that handle's error: its owner hears of it at its
  // next write, flush, fsync or close.
  // Returns whether any bytes were flushed (the file changed).
  bool flush_all(uint64_t ino, const Handle* except = nullptr) {
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
      if (int e = flush_locked(*h)) h->error = e;
      flushed = true;
    }
    return flushed;
  }

  // Makes a handle's buffered bytes one edit. Returns an errno (0: done, or nothing to do).
  int flush_locked(Handle& h) {
    if (h.buf.empty()) return std::exchange(h.error, 0);
    auto r = client_->write_ino(h.ino, h.buf_off, h.buf);
    size_t n = h.buf.size();
    h.buf.clear();
    h.buffered_end = 0;
    if (!r.ok()) {
      spdlog::warn("write of {} bytes to inode {} at {} failed: {}", n, h.ino, h.buf_off, r.error().to_string());
      h.error = 0;
      return to_errno(r.error());
    }
    spdlog::debug("inode {}: wrote {} bytes at {}; size now {}", h.ino, n, h.buf_off, r->size);
    h.attr = *r;
    return std::exchange(h.error, 0);
  }

 private:
  MountOptions opt_;
  std::unique_ptr<Client> client_;
  std::mutex open_mu_;  // before any Handle::mu
  std::multimap<uint64_t, std::shared_ptr<Handle>> open_;
  std::set<uint64_t> orphans_;  // open here, no visible link: under open_mu_
  std::mutex orphan_dir_mu_;
  uint64_t orphan_dir_ = 0;
};

Fs& fs_of(fuse_req_t req) { return *static_cast<Fs*>(fuse_req_userdata(req)); }
Handle& handle_of(fuse_file_info* fi) { return *reinterpret_cast<Handle*>(fi->fh); }
uint64_t h_ino(fuse_file_info* fi) { return handle_of(fi).ino; }

void reply_error(fuse_req_t req, const Error& e) { fuse_reply_err(req, to_errno(e)); }

void reply_entry(fuse_req_t req, Fs& fs, const Attr& a) {
  fuse_entry_param e{};
  e.ino = a.ino;
  e.generation = 1;
  e.attr = to_stat(fs.seen(a));
  e.attr_timeout = fs.attr_timeout();
  e.entry_timeout = fs.entry_timeout();
  fuse_reply_entry(req, &e);
}

// A namespace change; on success, frees the chains it released and returns the reply.
std::optional<NsReply> ns_write(fuse_req_t req, Fs& fs, NsOp op) {
  auto r = fs.client().ns_write(std::move(op));
  if (!r.ok()) {
    reply_error(req, r.error());
    return std::nullopt;
  }
  if (r->err) {
    fuse_reply_err(req, r->err);
    return std::nullopt;
  }
  fs.client().release(r->released);
  return std::move(*r);
}

// The caller's identity, for the owner of what it creates.
void set_owner(fuse_req_t req, NsOp& op) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  op.uid = ctx->uid;
  op.gid = ctx->gid;
}

// ---- Requests ----------------------------------------------------------------------------------

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* fs = static_cast<Fs*>(userdata);
  conn->max_read = kReadChunk;  // as the max_read mount option says (both must agree)
  conn->max_write = 1 << 20;
  if (conn->capable & FUSE_CAP_SPLICE_READ) conn->want &= ~FUSE_CAP_SPLICE_READ;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // writes reach us at once: close-to-open holds
  // The kernel clears set-user-id and set-group-id bits itself (by a mode change it sends) on
  // write, truncate and chown; with HANDLE_KILLPRIV it would leave that to us.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  fs->start();
}

void op_destroy(void* userdata) { static_cast<Fs*>(userdata)->shutdown(); }

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  if (parent == kRootIno && std::strcmp(name, Fs::kOrphans) == 0) return (void)fuse_reply_err(req, ENOENT);
  auto r = fs.client().ns_read(NsReadReq{NsReadOp::LOOKUP, parent, name, 0, 0});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  reply_entry(req, fs, r->attr);
}

void op_forget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void op_forget_multi(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Fs& fs = fs_of(req);
  auto a = fs.client().getattr(ino);
  if (!a.ok()) return reply_error(req, a.error());
  struct stat st = to_stat(fs.seen(*a));
  fuse_reply_attr(req, &st, fs.attr_timeout());
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Fs& fs = fs_of(req);
  // Written bytes first: a size or times set after a write must not be undone by its flush.
  fs.flush_all(ino);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    auto t = fs.client().truncate_ino(ino, static_cast<uint64_t>(attr->st_size));
    if (!t.ok()) return reply_error(req, t.error());
    spdlog::debug("inode {}: truncated to {}", ino, attr->st_size);
  }
  NsOp op;
  op.type = OpType::SETATTR;
  op.parent = ino;
  if (to_set & FUSE_SET_ATTR_MODE) op.flags |= SET_MODE, op.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) op.flags |= SET_UID, op.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) op.flags |= SET_GID, op.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) op.flags |= SET_ATIME_NOW;
  else if (to_set & FUSE_SET_ATTR_ATIME) op.flags |= SET_ATIME, op.atime = to_timespec(attr->st_atim);
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) op.flags |= SET_MTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_MTIME) op.flags |= SET_MTIME, op.mtime = to_timespec(attr->st_mtim);
  Attr now;
  if (op.flags != 0) {
    auto r = ns_write(req, fs, op);
    if (!r) return;
    now = r->attr;
  } else {
    auto a = fs.client().getattr(ino);
    if (!a.ok()) return reply_error(req, a.error());
    now = *a;
  }
  struct stat st = to_stat(fs.seen(now));
  fuse_reply_attr(req, &st, fs.attr_timeout());
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = fs_of(req).client().ns_read(NsReadReq{NsReadOp::READLINK, ino, "", 0, 0});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  fuse_reply_readlink(req, r->data.c_str());
}

void make_node(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Fs& fs = fs_of(req);
  auto type = type_of(mode);
  if (!type || *type == FileType::LNK) return (void)fuse_reply_err(req, EINVAL);
  NsOp op = NsOp::make_node(parent, name, *type, mode & 07777, static_cast<uint32_t>(rdev));
  set_owner(req, op);
  if (auto r = ns_write(req, fs, op)) reply_entry(req, fs, r->attr);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  make_node(req, parent, name, mode, rdev);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  make_node(req, parent, name, S_IFDIR | (mode & 07777), 0);
}

void remove_entry(fuse_req_t req, fuse_ino_t parent, const char* name, OpType type) {
  NsOp op;
  op.type = type;
  op.parent = parent;
  op.name = name;
  if (ns_write(req, fs_of(req), op)) fuse_reply_err(req, 0);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  bool moved = false;
  uint64_t linked = 0;
  if (int err = fs.hide_if_open(parent, name, false, &moved, &linked)) return (void)fuse_reply_err(req, err);
  if (moved) return (void)fuse_reply_err(req, 0);
  remove_entry(req, parent, name, OpType::UNLINK);
}
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { remove_entry(req, parent, name, OpType::RMDIR); }

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Fs& fs = fs_of(req);
  NsOp op;
  op.type = OpType::SYMLINK;
  op.parent = parent;
  op.name = name;
  op.name2 = target;
  op.mode = 0777;
  set_owner(req, op);
  if (auto r = ns_write(req, fs, op)) reply_entry(req, fs, r->attr);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  NsOp op;
  op.type = OpType::RENAME;
  op.parent = parent;
  op.name = name;
  op.parent2 = newparent;
  op.name2 = newname;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
  if (flags & RENAME_NOREPLACE) op.flags |= RENAME_NOREPLACE_;
  if (flags & RENAME_EXCHANGE) op.flags |= RENAME_EXCHANGE_;
  Fs& fs = fs_of(req);
  // A file replaced while open here stays readable through its handles: it gets a hidden second
  // link first, so the rename itself stays one atomic step.
  uint64_t linked = 0;
  if (flags == 0 && fs.any_open()) {
    auto src = fs.client().ns_read(NsReadReq{NsReadOp::LOOKUP, parent, name, 0, 0});
    auto dst = fs.client().ns_read(NsReadReq{NsReadOp::LOOKUP, newparent, newname, 0, 0});
    bool moved = false;
    if (src.ok() && !src->err && dst.ok() && !dst->err && dst->attr.ino != src->attr.ino)
      if (int err = fs.hide_if_open(newparent, newname, true, &moved, &linked)) return (void)fuse_reply_err(req, err);
  }
  auto r = fs.client().ns_write(op);
  int err = r.ok() ? r->err : to_errno(r.error());
  if (linked) {
    if (err == 0) fs.adopt_orphan(linked);
    else fs.drop_orphan_link(linked);  // the target keeps its name
  }
  if (err == 0) fs.client().release(r->released);
  fuse_reply_err(req, err);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Fs& fs = fs_of(req);
  NsOp op;
  op.type = OpType::LINK;
  op.parent = ino;
  op.parent2 = newparent;
  op.name2 = newname;
  if (auto r = ns_write(req, fs, op)) reply_entry(req, fs, r->attr);
}

void open_handle(fuse_req_t req, Fs& fs, const Attr& a, fuse_file_info* fi, const fuse_entry_param* created) {
  auto h = std::make_shared<Handle>();
  h->ino = a.ino;
  h->attr = a;
  fi->fh = reinterpret_cast<uint64_t>(h.get());
  fi->keep_cache = 0;  // close-to-open: what another mount wrote shows at the next open
  fs.opened(h);
  int rc = created ? fuse_reply_create(req, created, fi) : fuse_reply_open(req, fi);
  if (rc != 0) fs.closed(h.get());  // the opener was interrupted: no release will come
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  // Counted as open from the start: an unlink racing this open then keeps the file for it.
  auto h = std::make_shared<Handle>();
  h->ino = ino;
  fs.opened(h);
  auto fail = [&](int err) {
    fs.closed(h.get());
    fuse_reply_err(req, err);
  };
  // The kernel leaves O_TRUNC to us (atomic_o_trunc): no separate setattr comes. Other handles'
  // buffered bytes go first, so the truncate sees (and removes) them.
  bool trunc = (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY;
  if (trunc) fs.flush_all(ino, h.get());
  auto a = fs.client().getattr(ino);
  if (!a.ok()) return fail(to_errno(a.error()));
  if (a->type == FileType::DIR) return fail(EISDIR);
  if (a->type != FileType::REG) return fail(ENXIO);
  h->attr = *a;
  if (trunc && a->size != 0) {
    auto t = fs.client().truncate_ino(ino, 0);
    if (!t.ok()) return fail(to_errno(t.error()));
    h->attr = *t;
  }
  fi->fh = reinterpret_cast<uint64_t>(h.get());
  fi->keep_cache = 0;
  if (fuse_reply_open(req, fi) != 0) fs.closed(h.get());  // the opener was interrupted
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  NsOp op = NsOp::create(parent, name, mode & 07777, (fi->flags & O_EXCL) != 0);
  set_owner(req, op);
  auto r = ns_write(req, fs, op);
  if (!r) return;
  Attr a = r->attr;
  if (a.type != FileType::REG) return (void)fuse_reply_err(req, a.type == FileType::DIR ? EISDIR : EEXIST);
  if (!r->created && (fi->flags & O_TRUNC) && a.size != 0) {  // it existed after all (another mount made it)
    auto t = fs.client().truncate_ino(a.ino, 0);
    if (!t.ok()) return reply_error(req, t.error());
    a = *t;
  }
  fuse_entry_param e{};
  e.ino = a.ino;
  e.generation = 1;
  e.attr = to_stat(a);
  e.attr_timeout = fs.attr_timeout();
  e.entry_timeout = fs.entry_timeout();
  open_handle(req, fs, a, fi, &e);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  // Unflushed bytes of any handle of this file (this one's too) are read back through the file.
  bool others = fs.flush_all(h_ino(fi), &handle_of(fi));
  Handle& h = handle_of(fi);
  std::lock_guard g(h.mu);
  if (!h.buf.empty())
    if (int err = fs.flush_locked(h)) return (void)fuse_reply_err(req, err);
  auto uoff = static_cast<uint64_t>(off);
  // Another handle changed the file, or this read reaches past what this handle knew of it
  // (another mount may have grown it): read the file as it is now.
  if (others || uoff + size > h.attr.size) {
    auto a = fs.client().getattr(h.ino);
    if (!a.ok()) return reply_error(req, a.error());
    h.attr = *a;
  }
  if (uoff >= h.attr.size) return (void)fuse_reply_buf(req, nullptr, 0);
  auto data = fs.client().pread(h.attr, uoff, static_cast<uint32_t>(std::min<uint64_t>(size, h.attr.size - uoff)));
  if (!data.ok()) {  // the file was replaced since (its old chain is gone): once more, as it is now
    auto a = fs.client().getattr(h.ino);
    if (!a.ok()) return reply_error(req, a.error());
    h.attr = *a;
    data = fs.client().pread(h.attr, uoff, static_cast<uint32_t>(std::min<uint64_t>(size, h.attr.size - std::min(uoff, h.attr.size))));
    if (!data.ok()) return reply_error(req, data.error());
  }
  spdlog::debug("inode {}: read {} at {} -> {} bytes (size {}, version {})", h.ino, size, off, data->size(), h.attr.size,
                h.attr.version);
  fuse_reply_buf(req, data->data(), data->size());
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  Handle& h = handle_of(fi);
  fs.flush_all(h.ino, &h);
  std::lock_guard g(h.mu);
  if (h.error) return (void)fuse_reply_err(req, std::exchange(h.error, 0));
  auto uoff = static_cast<uint64_t>(off);
  if (!h.buf.empty() && uoff != h.buf_off + h.buf.size())
    if (int err = fs.flush_locked(h)) return (void)fuse_reply_err(req, err);
  if (h.buf.empty()) h.buf_off = uoff;
  h.buf.append(buf, size);
  h.buffered_end = h.buf_off + h.buf.size();
  if (h.buf.size() >= fs.opt().write_buffer)
    if (int err = fs.flush_locked(h)) return (void)fuse_reply_err(req, err);
  fuse_reply_write(req, size);
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Handle& h = handle_of(fi);
  std::lock_guard g(h.mu);
  fuse_reply_err(req, fs_of(req).flush_locked(h));
}

void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  // An edit is durable on a majority of its group and published before it returns. fsync of any
  // descriptor covers the bytes written through every descriptor of the file.
  Fs& fs = fs_of(req);
  Handle& h = handle_of(fi);
  fs.flush_all(h.ino, &h);
  std::lock_guard g(h.mu);
  fuse_reply_err(req, fs.flush_locked(h));
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  Handle* h = &handle_of(fi);
  int err;
  {
    std::lock_guard g(h->mu);
    err = fs.flush_locked(*h);
  }
  fs.closed(h);  // frees it (unless a flush of another handle holds it for a moment)
  fuse_reply_err(req, err);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto a = fs_of(req).client().getattr(ino);
  if (!a.ok()) return reply_error(req, a.error());
  if (a->type != FileType::DIR) return (void)fuse_reply_err(req, ENOTDIR);
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Fs& fs = fs_of(req);
  // The offset is the tracker's cookie of the last entry returned (0: from the start).
  auto max = static_cast<uint32_t>(std::clamp<size_t>(size / 32, 1, proto::kMaxReaddir));
  auto r = fs.client().ns_read(NsReadReq{NsReadOp::READDIR, ino, "", static_cast<uint64_t>(off), max});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  std::string buf(size, '\0');
  size_t used = 0;
  for (const auto& e : r->entries) {
    if (ino == kRootIno && e.name == Fs::kOrphans) continue;  // see Fs::hide_if_open
    struct stat st {};
    st.st_ino = e.ino;
    st.st_mode = type_bits(e.type);
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                    static_cast<off_t>(e.cookie));
    if (need > size - used) break;  // full: the kernel asks again from the last cookie it got
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

// Namespace changes are logged by the tracker before they are answered.
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  auto r = fs_of(req).client().ns_read(NsReadReq{NsReadOp::STATFS, kRootIno, "", 0, 0});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  struct statvfs sv {};
  sv.f_bsize = 4 << 20;  // a slot
  sv.f_frsize = 4 << 20;
  sv.f_blocks = r->total_slots;
  sv.f_bfree = r->free_slots;
  sv.f_bavail = r->free_slots;
  sv.f_files = r->inodes + (1u << 30);
  sv.f_ffree = 1u << 30;
  sv.f_favail = 1u << 30;
  sv.f_namemax = kMaxName;
  fuse_reply_statfs(req, &sv);
}

// POSIX ACLs (system.posix_acl_*) are not kept: refusing them makes cp -a and friends fall back to
// chmod, which is kept; storing them as plain bytes would silently lose the mode instead.
bool acl_name(const char* name) { return std::strncmp(name, "system.", 7) == 0; }

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  if (acl_name(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  NsOp op;
  op.type = OpType::SETXATTR;
  op.parent = ino;
  op.name = name;
  op.name2.assign(value, size);
  if (flags & XATTR_CREATE) op.flags |= XATTR_CREATE_;
  if (flags & XATTR_REPLACE) op.flags |= XATTR_REPLACE_;
  if (ns_write(req, fs_of(req), op)) fuse_reply_err(req, 0);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (acl_name(name)) return (void)fuse_reply_err(req, ENODATA);
  auto r = fs_of(req).client().ns_read(NsReadReq{NsReadOp::GETXATTR, ino, name, 0, 0});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  if (size == 0) return (void)fuse_reply_xattr(req, r->data.size());
  if (size < r->data.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data.data(), r->data.size());
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = fs_of(req).client().ns_read(NsReadReq{NsReadOp::LISTXATTR, ino, "", 0, 0});
  if (!r.ok()) return reply_error(req, r.error());
  if (r->err) return (void)fuse_reply_err(req, r->err);
  std::string list;
  for (const auto& n : r->names) list.append(n).push_back('\0');
  if (size == 0) return (void)fuse_reply_xattr(req, list.size());
  if (size < list.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, list.data(), list.size());
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  NsOp op;
  op.type = OpType::REMOVEXATTR;
  op.parent = ino;
  op.name = name;
  if (ns_write(req, fs_of(req), op)) fuse_reply_err(req, 0);
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  if (mode & ~FALLOC_FL_KEEP_SIZE) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
  // Space is taken when bytes are written; without KEEP_SIZE the file grows (reads as zeros).
  if (mode & FALLOC_FL_KEEP_SIZE) return (void)fuse_reply_err(req, 0);
  Handle& h = handle_of(fi);
  fs.flush_all(ino, &h);
  std::lock_guard g(h.mu);
  if (int err = fs.flush_locked(h)) return (void)fuse_reply_err(req, err);
  // Grow only, decided inside the edit: a size published meanwhile by another writer is kept.
  auto t = fs.client().grow_ino(ino, static_cast<uint64_t>(off) + static_cast<uint64_t>(len));
  if (!t.ok()) return reply_error(req, t.error());
  h.attr = *t;
  fuse_reply_err(req, 0);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.destroy = op_destroy;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = op_symlink;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.setxattr = op_setxattr;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.removexattr = op_removexattr;
  ops.fallocate = op_fallocate;
  // No getlk/setlk/flock: the kernel keeps POSIX and BSD locks itself, consistent within a mount.
  return ops;
}

bool parse_ms(std::string_view v, std::chrono::milliseconds& out) {
  double secs = 0;
  try {
    size_t used = 0;
    secs = std::stod(std::string(v), &used);
    if (used != v.size() || secs < 0) return false;
  } catch (const std::exception&) {
    return false;
  }
  out = std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
  return true;
}

}  // namespace

std::string parse_mount_options(const std::string& list, MountOptions& opt) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "tracker") {
      opt.tracker = value;
    } else if (key == "entry_timeout" || key == "attr_timeout") {
      if (!parse_ms(value, key == "entry_timeout" ? opt.entry_timeout : opt.attr_timeout))
        return fmt::format("{}: '{}' is not a number of seconds", key, value);
    } else if (key == "write_buffer") {
      auto n = parse_size(value);
      if (!n.ok() || *n < (64u << 10)) return fmt::format("write_buffer: '{}' is not a size of at least 64KiB", value);
      opt.write_buffer = *n;
    } else if (key == "max_threads") {
      unsigned n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > 1024)
        return fmt::format("max_threads: '{}' is not a number from 1 to 1024", value);
      opt.max_threads = n;
    } else if (key == "debug") {
      opt.debug = true;
    } else if (key == "rw" || key == "dev" || key == "suid" || key == "exec" || key == "auto" || key == "noauto" ||
               key == "user" || key == "nouser" || key == "_netdev" || key == "nofail" || key == "defaults") {
      // fstab words for mount(8), not for us
    } else {
      opt.fuse_options.push_back(item);
    }
  }
  return "";
}

int mount_and_serve(const MountOptions& opt) {
  // Check the cluster before mounting, so a wrong address is an error here and not a dead mount.
  {
    client::ClientOptions co;
    co.tracker = opt.tracker;
    co.call_timeout = std::chrono::milliseconds(5000);
    Client probe(co);
    auto root = probe.getattr(kRootIno);
    if (!root.ok()) {
      fmt::print(stderr, "mydfs mount: cannot reach the cluster at {}: {}\n", opt.tracker, root.error().to_string());
      return 1;
    }
  }
  std::vector<std::string> args{"mydfs", "-o", "default_permissions", "-o", "fsname=mydfs:" + opt.tracker, "-o",
                                "subtype=mydfs", "-o", fmt::format("max_read={}", kReadChunk)};
  if (geteuid() == 0) args.insert(args.end(), {"-o", "allow_other"});
  for (const auto& o : opt.fuse_options) args.insert(args.end(), {"-o", o});
  if (opt.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  Fs fs(opt);
  fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof(ops), &fs);
  if (!se) {
    fmt::print(stderr, "mydfs mount: bad FUSE options\n");
    return 2;
  }
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, opt.mountpoint.c_str()) == 0) {
      if (opt.foreground || fuse_daemonize(0) == 0) {
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(cfg, opt.max_threads);
        rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
        fuse_loop_cfg_destroy(cfg);
      }
      fuse_session_unmount(se);
    } else {
      fmt::print(stderr, "mydfs mount: cannot mount at {}\n", opt.mountpoint);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&fargs);
  return rc;
}

int unmount(const std::string& mountpoint) {
  pid_t pid = fork();
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", "-u", mountpoint.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace mydfs::fuse
