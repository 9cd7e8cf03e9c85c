// The FUSE requests. Inode numbers are the tracker's inode ids, so the mount keeps no inode table:
// lookups and forgets need no bookkeeping, and every metadata call is one tracker request. Data
// goes through FsState (fs_state.h): reads through the client library, writes through per-handle
// buffers.
//
// Each request is op_X(req, ...), which only unpacks the request and replies, around do_X(...),
// which does the work and returns a Result or Status without touching the request: an error is
// returned, never replied, and op_X replies exactly once, through reply.h.
#include "fuse/ops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "fuse/fs_state.h"
#include "fuse/reply.h"

namespace mydfs::fuse {
namespace {

using proto::NsReadOp;
using proto::NsReadReq;
using proto::NsReply;

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

Timespec to_timespec(const struct timespec& t) { return {t.tv_sec, static_cast<uint32_t>(t.tv_nsec)}; }

// The caller's identity, for the owner of what it creates.
struct Caller {
  uint32_t uid = 0, gid = 0;
};
Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return {ctx->uid, ctx->gid};
}
NsOp owned_by(NsOp op, Caller c) {
  op.uid = c.uid;
  op.gid = c.gid;
  return op;
}

Handle& handle_of(fuse_file_info* fi) { return *reinterpret_cast<Handle*>(fi->fh); }

Result<NsReply> ns_read(FsState& fs, NsReadOp op, uint64_t ino, std::string name = "") {
  return fs.client().ns_read(NsReadReq{op, ino, std::move(name), 0, 0});
}

// The entry a namespace change made, as callers see it.
Result<Attr> entry_of(FsState& fs, Result<NsReply> r) {
  if (!r.ok()) return r.take_error();
  return fs.seen(r->attr);
}

// ---- Names and attributes ------------------------------------------------------------------------

// No such name: a negative entry (see do_lookup).
Attr no_entry() { return Attr{}; }  // ino 0

Result<Attr> do_lookup(FsState& fs, uint64_t parent, const char* name) {
  // A missing name is a negative entry (ino 0), which the kernel caches for entry_timeout: it
  // replaces it when this mount creates the name (create, mknod, mkdir, symlink, link and rename
  // answer with the new entry), and looks it up again before an exclusive create. The hidden
  // directory is never there.
  if (FsState::is_orphans_dir(parent, name)) return no_entry();
  auto r = fs.client().lookup(parent, name);
  if (!r.ok() && to_errno(r.error()) == ENOENT) return no_entry();
  if (!r.ok()) return r.take_error();
  return fs.seen(*r);
}

Result<Attr> do_getattr(FsState& fs, uint64_t ino) {
  if (auto d = fs.dir_attr(ino)) return *d;  // a directory this mount just changed
  MYDFS_ASSIGN(Attr a, fs.client().getattr(ino));
  return fs.seen(a);
}

NsOp setattr_op(uint64_t ino, const struct stat& attr, int to_set) {
  NsOp op = NsOp::setattr(ino);
  if (to_set & FUSE_SET_ATTR_MODE) op.flags |= SET_MODE, op.mode = attr.st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) op.flags |= SET_UID, op.uid = attr.st_uid;
  if (to_set & FUSE_SET_ATTR_GID) op.flags |= SET_GID, op.gid = attr.st_gid;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) op.flags |= SET_ATIME_NOW;
  else if (to_set & FUSE_SET_ATTR_ATIME) op.flags |= SET_ATIME, op.atime = to_timespec(attr.st_atim);
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) op.flags |= SET_MTIME_NOW;
  else if (to_set & FUSE_SET_ATTR_MTIME) op.flags |= SET_MTIME, op.mtime = to_timespec(attr.st_mtim);
  return op;
}

Result<Attr> do_setattr(FsState& fs, uint64_t ino, const struct stat& attr, int to_set) {
  // Written bytes first: a size or times set after a write must not be undone by its flush.
  fs.flush_all(ino);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    MYDFS_TRY(fs.client().truncate_ino(ino, static_cast<uint64_t>(attr.st_size)));
    spdlog::debug("inode {}: truncated to {}", ino, attr.st_size);
  }
  NsOp op = setattr_op(ino, attr, to_set);
  if (op.flags == 0) return do_getattr(fs, ino);
  return entry_of(fs, fs.ns_write(std::move(op)));
}

Result<std::string> do_readlink(FsState& fs, uint64_t ino) {
  MYDFS_ASSIGN(NsReply r, ns_read(fs, NsReadOp::READLINK, ino));
  return std::move(r.data);
}

Result<Attr> do_mknod(FsState& fs, Caller c, uint64_t parent, const char* name, mode_t mode, dev_t rdev) {
  auto type = type_of(mode);
  if (!type || *type == FileType::LNK) return fs_error(EINVAL);
  NsOp op = NsOp::make_node(parent, name, *type, mode & 07777, static_cast<uint32_t>(rdev));
  return entry_of(fs, fs.ns_write(owned_by(std::move(op), c)));
}

Result<Attr> do_symlink(FsState& fs, Caller c, const char* target, uint64_t parent, const char* name) {
  return entry_of(fs, fs.ns_write(owned_by(NsOp::symlink(parent, name, target), c)));
}

Result<Attr> do_link(FsState& fs, uint64_t ino, uint64_t newparent, const char* newname) {
  return entry_of(fs, fs.ns_write(NsOp::link(ino, newparent, newname)));
}

Status do_unlink(FsState& fs, uint64_t parent, const char* name) {
  MYDFS_ASSIGN(bool hidden, fs.hide_unlinked(parent, name));
  if (hidden) return ok_status();  // moved to the hidden directory: the name is gone
  MYDFS_TRY(fs.ns_write(NsOp::unlink(parent, name)));
  return ok_status();
}

Status do_rmdir(FsState& fs, uint64_t parent, const char* name) {
  MYDFS_TRY(fs.ns_write(NsOp::rmdir(parent, name)));
  return ok_status();
}

Status do_rename(FsState& fs, uint64_t parent, const char* name, uint64_t newparent, const char* newname,
                 unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return fs_error(EINVAL);
  uint32_t ns_flags = ((flags & RENAME_NOREPLACE) ? uint32_t{RENAME_NOREPLACE_} : 0u) |
                      ((flags & RENAME_EXCHANGE) ? uint32_t{RENAME_EXCHANGE_} : 0u);
  // A file replaced while open here stays readable through its handles (see keep_replaced).
  uint64_t kept = 0;
  if (flags == 0) {
    MYDFS_ASSIGN(kept, fs.keep_replaced(parent, name, newparent, newname));
  }
  auto r = fs.ns_write(NsOp::rename(parent, name, newparent, newname, ns_flags));
  if (kept) fs.settle_replaced(kept, r.ok());
  if (!r.ok()) return r.take_error();
  return ok_status();
}

// ---- Files ---------------------------------------------------------------------------------------

Result<Opened> do_open(FsState& fs, uint64_t ino, int flags) {
  // The kernel leaves O_TRUNC to us (atomic_o_trunc): no separate setattr comes.
  bool trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
  MYDFS_ASSIGN(Handle * h, fs.open(ino, trunc));
  return Opened{h, std::nullopt};
}

Result<Opened> do_create(FsState& fs, Caller c, uint64_t parent, const char* name, mode_t mode, int flags) {
  NsOp op = NsOp::create(parent, name, mode & 07777, (flags & O_EXCL) != 0);
  MYDFS_ASSIGN(NsReply r, fs.ns_write(owned_by(std::move(op), c)));
  Attr a = r.attr;
  if (a.type != FileType::REG) return fs_error(a.type == FileType::DIR ? EISDIR : EEXIST);
  if (!r.created && (flags & O_TRUNC) && a.size != 0) {  // it existed after all (another mount made it)
    MYDFS_ASSIGN(a, fs.client().truncate_ino(a.ino, 0));
  }
  return Opened{fs.open_created(a), a};
}

Result<std::string> do_read(FsState& fs, Handle& h, size_t size, off_t off) {
  return fs.read(h, static_cast<uint64_t>(off), size);
}

Result<size_t> do_write(FsState& fs, Handle& h, const char* buf, size_t size, off_t off) {
  MYDFS_TRY(fs.write(h, static_cast<uint64_t>(off), std::string_view(buf, size)));
  return size;
}

Status do_fallocate(FsState& fs, Handle& h, int mode, off_t off, off_t len) {
  if (mode & ~FALLOC_FL_KEEP_SIZE) return fs_error(EOPNOTSUPP);
  if (off < 0 || len <= 0) return fs_error(EINVAL);
  // Space is taken when bytes are written; without KEEP_SIZE the file grows (reads as zeros).
  if (mode & FALLOC_FL_KEEP_SIZE) return ok_status();
  return fs.grow(h, static_cast<uint64_t>(off) + static_cast<uint64_t>(len));
}

// ---- Directories and the file system -------------------------------------------------------------

Result<Opened> do_opendir(FsState& fs, uint64_t ino) {
  MYDFS_ASSIGN(Attr a, fs.client().getattr(ino));
  if (a.type != FileType::DIR) return fs_error(ENOTDIR);
  return Opened{};
}

Result<std::vector<DirEntry>> do_readdir(FsState& fs, uint64_t ino, size_t size, off_t off) {
  // The offset is the tracker's cookie of the last entry returned (0: from the start).
  auto max = static_cast<uint32_t>(std::clamp<size_t>(size / 32, 1, proto::kMaxReaddir));
  MYDFS_ASSIGN(NsReply r, fs.client().ns_read(NsReadReq{NsReadOp::READDIR, ino, "", static_cast<uint64_t>(off), max}));
  std::erase_if(r.entries, [&](const DirEntry& e) { return FsState::is_orphans_dir(ino, e.name); });
  return std::move(r.entries);
}

Result<struct statvfs> do_statfs(FsState& fs) {
  MYDFS_ASSIGN(NsReply r, ns_read(fs, NsReadOp::STATFS, kRootIno));
  struct statvfs sv {};
  // Bytes, in 4 KiB blocks: what the groups can take (each group as its fullest member). Inodes:
  // those in use, and as many more as the groups have free slots (a file with data needs one).
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_blocks = r.total_bytes / 4096;
  sv.f_bfree = r.free_bytes / 4096;
  sv.f_bavail = r.free_bytes / 4096;
  sv.f_files = r.inodes + r.free_slots;
  sv.f_ffree = r.free_slots;
  sv.f_favail = r.free_slots;
  sv.f_namemax = kMaxName;
  return sv;
}

// ---- Extended attributes -------------------------------------------------------------------------

// POSIX ACLs (system.posix_acl_*) are not kept: refusing them makes cp -a and friends fall back to
// chmod, which is kept; storing them as plain bytes would silently lose the mode instead.
bool acl_name(const char* name) { return std::strncmp(name, "system.", 7) == 0; }

// bytes for a caller's buffer of size bytes (0: it asks for the size).
Result<Xattr> xattr_answer(std::string bytes, size_t size) {
  if (size != 0 && size < bytes.size()) return fs_error(ERANGE);
  return Xattr{std::move(bytes), size == 0};
}

Status do_setxattr(FsState& fs, uint64_t ino, const char* name, const char* value, size_t size, int flags) {
  if (acl_name(name)) return fs_error(EOPNOTSUPP);
  uint32_t ns_flags = ((flags & XATTR_CREATE) ? uint32_t{XATTR_CREATE_} : 0u) |
                      ((flags & XATTR_REPLACE) ? uint32_t{XATTR_REPLACE_} : 0u);
  MYDFS_TRY(fs.ns_write(NsOp::setxattr(ino, name, std::string(value, size), ns_flags)));
  return ok_status();
}

Result<Xattr> do_getxattr(FsState& fs, uint64_t ino, const char* name, size_t size) {
  if (acl_name(name)) return fs_error(ENODATA);
  MYDFS_ASSIGN(NsReply r, ns_read(fs, NsReadOp::GETXATTR, ino, name));
  return xattr_answer(std::move(r.data), size);
}

Result<Xattr> do_listxattr(FsState& fs, uint64_t ino, size_t size) {
  MYDFS_ASSIGN(NsReply r, ns_read(fs, NsReadOp::LISTXATTR, ino));
  std::string list;
  for (const auto& n : r.names) list.append(n).push_back('\0');
  return xattr_answer(std::move(list), size);
}

Status do_removexattr(FsState& fs, uint64_t ino, const char* name) {
  MYDFS_TRY(fs.ns_write(NsOp::removexattr(ino, name)));
  return ok_status();
}

// ---- The callbacks: unpack, do, reply once -------------------------------------------------------

void op_init(void* userdata, fuse_conn_info* conn) {
  conn->max_read = kReadChunk;  // as the max_read mount option says (both must agree)
  conn->max_write = 1 << 20;
  if (conn->capable & FUSE_CAP_SPLICE_READ) conn->want &= ~FUSE_CAP_SPLICE_READ;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // writes reach us at once: close-to-open holds
  // The kernel clears set-user-id and set-group-id bits itself (by a mode change it sends) on
  // write, truncate and chown; with HANDLE_KILLPRIV it would leave that to us.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  static_cast<FsState*>(userdata)->start();
}

void op_destroy(void* userdata) { static_cast<FsState*>(userdata)->shutdown(); }

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_entry(req, do_lookup(state_of(req), parent, name));
}
void op_forget(fuse_req_t req, fuse_ino_t, uint64_t) { reply_none(req); }
void op_forget_multi(fuse_req_t req, size_t, fuse_forget_data*) { reply_none(req); }
void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { reply_attr(req, do_getattr(state_of(req), ino)); }
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  reply_attr(req, do_setattr(state_of(req), ino, *attr, to_set));
}
void op_readlink(fuse_req_t req, fuse_ino_t ino) { reply_readlink(req, do_readlink(state_of(req), ino)); }
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_entry(req, do_mknod(state_of(req), caller_of(req), parent, name, mode, rdev));
}
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_entry(req, do_mknod(state_of(req), caller_of(req), parent, name, S_IFDIR | (mode & 07777), 0));
}
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_status(req, do_unlink(state_of(req), parent, name));
}
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  reply_status(req, do_rmdir(state_of(req), parent, name));
}
void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  reply_entry(req, do_symlink(state_of(req), caller_of(req), target, parent, name));
}
void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  reply_status(req, do_rename(state_of(req), parent, name, newparent, newname, flags));
}
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  reply_entry(req, do_link(state_of(req), ino, newparent, newname));
}
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  reply_open(req, fi, do_open(state_of(req), ino, fi->flags));
}
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  reply_open(req, fi, do_create(state_of(req), caller_of(req), parent, name, mode, fi->flags));
}
void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  reply_buf(req, do_read(state_of(req), handle_of(fi), size, off));
}
void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  reply_write(req, do_write(state_of(req), handle_of(fi), buf, size, off));
}
void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  reply_status(req, state_of(req).flush(handle_of(fi)));
}
// fsync of any descriptor covers the bytes written through every descriptor of the file.
void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  reply_status(req, state_of(req).fsync(handle_of(fi)));
}
void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  reply_status(req, state_of(req).release(&handle_of(fi)));
}
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  reply_open(req, fi, do_opendir(state_of(req), ino));
}
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  reply_dir(req, size, do_readdir(state_of(req), ino, size, off));
}
void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { reply_status(req, ok_status()); }
// Namespace changes are logged by the tracker before they are answered.
// A directory's entries are the tracker's: fsyncdir waits for its synced log.
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  reply_status(req, state_of(req).client().sync_namespace());
}
void op_statfs(fuse_req_t req, fuse_ino_t) { reply_statfs(req, do_statfs(state_of(req))); }
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  reply_status(req, do_setxattr(state_of(req), ino, name, value, size, flags));
}
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  reply_xattr(req, do_getxattr(state_of(req), ino, name, size));
}
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  reply_xattr(req, do_listxattr(state_of(req), ino, size));
}
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  reply_status(req, do_removexattr(state_of(req), ino, name));
}
void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info* fi) {
  reply_status(req, do_fallocate(state_of(req), handle_of(fi), mode, off, len));
}

}  // namespace

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

}  // namespace mydfs::fuse
