// The one place a result becomes a FUSE reply: an error is fuse_reply_err(req, to_errno(error)),
// a value the reply of its kind. Every request is answered exactly once, by its callback, through
// one of these (ops.cc); nothing else in the mount replies.
#pragma once
#include <fuse_lowlevel.h>
#include <sys/statvfs.h>

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "fuse/fs_state.h"

namespace mydfs::fuse {

// An opened file or directory: its handle (nullptr for a directory) and, for a create, the new
// entry.
struct Opened {
  Handle* handle = nullptr;
  std::optional<Attr> created;
};

// An extended attribute's value, or the names of all of them (NUL-terminated, one after the
// other); size_only for a caller that asked how large the buffer must be.
struct Xattr {
  std::string bytes;
  bool size_only = false;
};

FsState& state_of(fuse_req_t req);

// An entry: lookup, mknod, mkdir, symlink, link. Attributes with ino 0 are a negative entry (no
// such name), which the kernel keeps for entry_timeout like a positive one.
void reply_entry(fuse_req_t req, const Result<Attr>& r);
void reply_attr(fuse_req_t req, const Result<Attr>& r);
void reply_readlink(fuse_req_t req, const Result<std::string>& r);
// Sets fi->fh to the handle; if the opener is gone (interrupted), forgets the handle again, as no
// release will come for it.
void reply_open(fuse_req_t req, fuse_file_info* fi, const Result<Opened>& r);
void reply_buf(fuse_req_t req, const Result<std::string>& r);
void reply_write(fuse_req_t req, const Result<size_t>& r);
// As many entries as fit in size bytes; each entry's offset is its cookie, where the next
// readdir starts.
void reply_dir(fuse_req_t req, size_t size, const Result<std::vector<DirEntry>>& r);
void reply_statfs(fuse_req_t req, const Result<struct statvfs>& r);
void reply_xattr(fuse_req_t req, const Result<Xattr>& r);
// Success or an errno: every request whose answer carries no value.
void reply_status(fuse_req_t req, const Status& s);
void reply_none(fuse_req_t req);

}  // namespace mydfs::fuse
