// What the mount keeps beside the cluster: the client, the table of open files with their write
// buffers, and the files removed while open here (orphans). No libfuse type appears here: the
// callbacks (ops.cc) translate requests into these calls and their results into replies.
//
// Writes collect in a per-handle buffer that becomes one edit (append, patch or 2PC, as the client
// library decides) when it is full, when a write is not contiguous with it, or on flush, fsync or
// close. Only one handle of a file holds unflushed bytes at a time: a write through one handle
// first flushes the others, so bytes reach the file in the order they were written.
//
// Locks: open_mu_ guards the table and the orphan set; each Handle::mu guards that handle's
// buffer and attributes; orphan_dir_mu_ guards the hidden directory's inode; dirs_mu_ the
// directories' attributes. No code path holds
// two of them at once (flush_all copies the handles it needs out of the table before locking each).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "client/client.h"
#include "common/result.h"
#include "fuse/mount.h"

namespace mydfs::fuse {

// An open regular file. FsState's table owns it; fuse_file_info::fh points at it.
struct Handle {
  explicit Handle(uint64_t i) : ino(i) {}
  const uint64_t ino;
  std::mutex mu;
  Attr attr;                   // guarded by mu: as of open, or of this handle's last edit
  uint64_t buf_off = 0;        // guarded by mu: the unflushed bytes are buf at buf_off
  std::string buf;             // guarded by mu
  std::optional<Error> error;  // guarded by mu: a failed flush of this handle's bytes made by
                               // another handle's call, reported at the next write/flush/fsync/close
  std::atomic<uint64_t> buffered_end{0};  // buf_off + buf.size(), 0 if empty: written under mu, read without
};

class FsState {
 public:
  explicit FsState(const MountOptions& o) : opt_(o) {}

  // Made after the mount is up (and after daemonizing: the client runs a thread).
  void start();
  // At unmount: every buffered byte to the cluster, every orphan of this mount removed.
  void shutdown();

  client::Client& client() { return *client_; }
  const MountOptions& opt() const { return opt_; }
  double entry_timeout() const { return static_cast<double>(opt_.entry_timeout.count()) / 1000.0; }
  double attr_timeout() const { return static_cast<double>(opt_.attr_timeout.count()) / 1000.0; }

  // A namespace change; on success frees the chains it released, and keeps the attributes of
  // the directories it changed (the tracker sends them) for dir_attr().
  Result<proto::NsReply> ns_write(NsOp op);
  // A directory's attributes as this mount's last change of it left them, if that was less than
  // attr_timeout ago: the kernel drops a directory's cached attributes when an entry in it is
  // made or removed, and asks again (GETATTR) before the next permission check; this answers
  // that without a tracker request. Changes by other mounts show after attr_timeout, as they
  // would through the kernel's own cache.
  std::optional<Attr> dir_attr(uint64_t ino);
  // What a caller sees of an inode: unflushed sizes counted in, an orphan has no links.
  Attr seen(Attr a);

  // ---- Open files ----
  // Opens ino (a regular file), truncating it first if trunc (after other handles' buffered
  // bytes, so the truncate removes them too).
  Result<Handle*> open(uint64_t ino, bool trunc);
  // A handle of a file just created (or found) with attributes a.
  Handle* open_created(const Attr& a);
  // Forgets a handle: at its release, or when the opener never got it (interrupted). After the
  // last handle of an orphan, removes the orphan's hidden link.
  void closed(Handle* h);
  // Up to size bytes at off, this and every other handle's written bytes included.
  Result<std::string> read(Handle& h, uint64_t off, size_t size);
  Status write(Handle& h, uint64_t off, std::string_view data);
  Status flush(Handle& h);
  // Flush, and the bytes written through every other handle of the file too.
  Status fsync(Handle& h);
  // The last flush, then closed(h) (which frees h).
  Status release(Handle* h);
  // Grows the file to size if it is shorter (decided inside the edit).
  Status grow(Handle& h, uint64_t size);
  // Flushes every open handle of ino but `except` (before a truncate or a read, so what was
  // written is what is seen; before another handle's write, so the writes keep their order). A
  // failed flush is that handle's error, heard by its owner at the next write/flush/fsync/close.
  // Returns whether any bytes were flushed (the file changed).
  bool flush_all(uint64_t ino, const Handle* except = nullptr);

  // ---- Files removed while open (kept until their last close here, as POSIX wants) ----
  // Such a file gets a link in the hidden directory /.mydfs-orphans, named by its inode, before
  // its last visible name goes; that link is removed when this mount closes its last handle of it.
  // Open handles and orphans are counted under one lock, so a close racing the removal still
  // leaves exactly one party to remove the hidden link.
  static constexpr std::string_view kOrphans = ".mydfs-orphans";
  static bool is_orphans_dir(uint64_t parent, std::string_view name);
  // Before unlink(parent, name): if that is the last link of a file open here, moves it to the
  // hidden directory instead and returns true (the unlink is done).
  Result<bool> hide_unlinked(uint64_t parent, const std::string& name);
  // Before rename(parent, name -> newparent, newname): if the target is another file whose last
  // link that is and which is open here, gives it a hidden second link and returns its inode (0:
  // nothing to do). Call settle_replaced(ino, renamed) after the rename.
  Result<uint64_t> keep_replaced(uint64_t parent, const std::string& name, uint64_t newparent,
                                 const std::string& newname);
  void settle_replaced(uint64_t ino, bool renamed);

 private:
  // Makes a handle's buffered bytes one edit (or reports its held error). Requires h.mu.
  Status flush_locked(Handle& h);
  void opened(std::shared_ptr<Handle> h);
  // A new handle's attributes (after the truncate, if trunc).
  Status load(Handle& h, bool trunc);
  // The file's attributes as they are now, and a read with them. Require h.mu.
  Status refresh_locked(Handle& h);
  Result<std::string> pread_locked(Handle& h, uint64_t off, size_t size);

  bool any_open();
  bool is_open(uint64_t ino);
  uint64_t open_last_link(uint64_t parent, const std::string& name);
  Result<uint64_t> orphan_dir(bool again);
  Status to_orphans(const std::function<NsOp(uint64_t dir)>& op);
  void adopt_orphan(uint64_t ino);
  void drop_orphan_link(uint64_t ino);

  const MountOptions opt_;
  std::unique_ptr<client::Client> client_;  // set once by start(), before any request

  std::mutex open_mu_;
  // Open handles by inode (guarded by open_mu_). A flush of another handle holds a reference, so
  // a release meanwhile does not free the handle under the flush.
  std::multimap<uint64_t, std::shared_ptr<Handle>> open_;
  std::set<uint64_t> orphans_;  // guarded by open_mu_: open here, no visible link

  std::mutex dirs_mu_;  // guards dirs_
  struct DirAttr {
    Attr attr;
    std::chrono::steady_clock::time_point at;
  };
  std::map<uint64_t, DirAttr> dirs_;  // directories this mount changed lately (dir_attr)

  std::mutex orphan_dir_mu_;
  uint64_t orphan_dir_ = 0;  // guarded by orphan_dir_mu_: the hidden directory's inode (0: not known yet)
};

}  // namespace mydfs::fuse
