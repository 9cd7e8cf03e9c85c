#include "fuse/reply.h"

#include <sys/stat.h>

namespace mydfs::fuse {

namespace {

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
  // A file: what its slices take on disk (holes take nothing), as its last writer published it.
  st.st_blocks = static_cast<blkcnt_t>(a.type == FileType::REG ? a.blocks / 512 : (a.size + 511) / 512);
  st.st_atim = {a.atime.sec, a.atime.nsec};
  st.st_mtim = {a.mtime.sec, a.mtime.nsec};
  st.st_ctim = {a.ctime.sec, a.ctime.nsec};
  return st;
}

fuse_entry_param entry_param(fuse_req_t req, const Attr& a) {
  const FsState& fs = state_of(req);
  fuse_entry_param e{};
  e.entry_timeout = fs.entry_timeout();
  if (a.ino == 0) return e;  // negative: ino 0 with a timeout
  e.ino = a.ino;
  e.generation = 1;
  e.attr = to_stat(a);
  e.attr_timeout = fs.attr_timeout();
  return e;
}

// The error reply, in its only place; on success, send(value).
template <typename T, typename Send>
void reply_with(fuse_req_t req, const Result<T>& r, Send&& send) {
  if (!r.ok()) {
    fuse_reply_err(req, to_errno(r.error()));
    return;
  }
  send(r.value());
}

}  // namespace

FsState& state_of(fuse_req_t req) { return *static_cast<FsState*>(fuse_req_userdata(req)); }

void reply_entry(fuse_req_t req, const Result<Attr>& r) {
  reply_with(req, r, [&](const Attr& a) {
    fuse_entry_param e = entry_param(req, a);
    fuse_reply_entry(req, &e);
  });
}

void reply_attr(fuse_req_t req, const Result<Attr>& r) {
  reply_with(req, r, [&](const Attr& a) {
    struct stat st = to_stat(a);
    fuse_reply_attr(req, &st, state_of(req).attr_timeout());
  });
}

void reply_readlink(fuse_req_t req, const Result<std::string>& r) {
  reply_with(req, r, [&](const std::string& target) { fuse_reply_readlink(req, target.c_str()); });
}

void reply_open(fuse_req_t req, fuse_file_info* fi, const Result<Opened>& r) {
  reply_with(req, r, [&](const Opened& o) {
    fi->fh = reinterpret_cast<uint64_t>(o.handle);
    fi->keep_cache = 0;  // close-to-open: what another mount wrote shows at the next open
    int rc;
    if (o.created) {
      fuse_entry_param e = entry_param(req, *o.created);
      rc = fuse_reply_create(req, &e, fi);
    } else {
      rc = fuse_reply_open(req, fi);
    }
    if (rc != 0 && o.handle) state_of(req).closed(o.handle);  // the opener was interrupted
  });
}

void reply_buf(fuse_req_t req, const Result<std::string>& r) {
  reply_with(req, r, [&](const std::string& data) { fuse_reply_buf(req, data.data(), data.size()); });
}

void reply_write(fuse_req_t req, const Result<size_t>& r) {
  reply_with(req, r, [&](size_t n) { fuse_reply_write(req, n); });
}

void reply_dir(fuse_req_t req, size_t size, const Result<std::vector<DirEntry>>& r) {
  reply_with(req, r, [&](const std::vector<DirEntry>& entries) {
    std::string buf(size, '\0');
    size_t used = 0;
    for (const auto& e : entries) {
      struct stat st {};
      st.st_ino = e.ino;
      st.st_mode = type_bits(e.type);
      size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                      static_cast<off_t>(e.cookie));
      if (need > size - used) break;  // full: the kernel asks again from the last cookie it got
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  });
}

void reply_statfs(fuse_req_t req, const Result<struct statvfs>& r) {
  reply_with(req, r, [&](const struct statvfs& sv) { fuse_reply_statfs(req, &sv); });
}

void reply_xattr(fuse_req_t req, const Result<Xattr>& r) {
  reply_with(req, r, [&](const Xattr& x) {
    if (x.size_only) fuse_reply_xattr(req, x.bytes.size());
    else fuse_reply_buf(req, x.bytes.data(), x.bytes.size());
  });
}

void reply_status(fuse_req_t req, const Status& s) {
  reply_with(req, s, [&](const Ok&) { fuse_reply_err(req, 0); });
}

void reply_none(fuse_req_t req) { fuse_reply_none(req); }

}  // namespace mydfs::fuse
