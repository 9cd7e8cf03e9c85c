// The tracker's namespace: inodes and directory entries with POSIX semantics, kept in memory.
//
// Every mutation is an NsOp applied by apply(): deterministic given the state and the op (the
// caller fills in the op's time and, for creations, its new inode id before logging), and
// all-or-nothing (every check happens before the first change), so an op that fails changes
// nothing and is never logged, and replaying the edit log rebuilds the same namespace.
// Errors are errno values, returned to FUSE as they are. Not thread-safe: TrackerState guards it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proto/fs_types.h"

namespace mydfs::tracker {

using mydfs::Attr;
using mydfs::DirEntry;
using mydfs::FileType;
using mydfs::NsOp;
using mydfs::OpType;
using mydfs::Timespec;

// What a mutation returns besides success.
struct OpResult {
  Attr attr;                // the created / changed inode (RENAME: the moved one)
  bool created = false;     // CREATE: false if an existing file was opened
  std::vector<Location> released;  // heads of chains no file refers to any more (garbage)
  std::vector<Attr> dirs;          // the directories whose entries changed, as they are after
};

class Namespace {
 public:
  Namespace();

  // Mutations. 0 on success, else an errno (and nothing changed). With out, also the changed
  // directories' attributes (out->dirs).
  int apply(const NsOp& op, OpResult* out);

  // Reads.
  int lookup(uint64_t parent, const std::string& name, Attr* out) const;
  int getattr(uint64_t ino, Attr* out) const;
  int readlink(uint64_t ino, std::string* out) const;
  // Entries after `cookie` (0 = from the start, with "." and ".."), at most max; *eof when done.
  int readdir(uint64_t ino, uint64_t cookie, uint32_t max, std::vector<DirEntry>* out, bool* eof) const;
  int getxattr(uint64_t ino, const std::string& name, std::string* value) const;
  int listxattr(uint64_t ino, std::vector<std::string>* names) const;

  uint64_t inode_count() const { return inodes_.size(); }
  uint64_t file_count() const { return files_; }
  // A path of each of these inodes ("" for one without a name any more). One
  // pass over every directory, so callers ask for a few inodes at a time (the dashboard's hot list).
  std::map<uint64_t, std::string> paths_of(const std::vector<uint64_t>& inos) const;
  uint64_t next_ino() const { return next_ino_; }
  // Run length to place a file's slices with (its own, from its directory at creation).
  uint8_t run_of(uint64_t ino) const;

  // The whole namespace, for the fsimage. with_blocks false: an image of format 1, whose inodes
  // have no `blocks` (Attr::decode).
  void encode(Writer& w) const;
  bool decode(Reader& r, bool with_blocks = true);
  bool operator==(const Namespace& o) const;

 private:
  int apply_op(const NsOp& op, OpResult* out);
  struct Entry {
    std::string name;
    uint64_t ino;
  };
  struct Extra {
    std::string symlink;
    std::vector<std::pair<std::string, std::string>> xattrs;
    // Directories: entries ordered by cookie (a hash of the name, so positions stay stable while
    // other entries come and go); equal cookies (hash collisions) sit together.
    std::multimap<uint64_t, Entry> entries;
    uint64_t parent = 0;
  };
  struct Inode {
    Inode() = default;
    Inode(Inode&&) = default;
    Inode& operator=(Inode&&) = default;
    Inode(const Inode& o) : a(o.a), x(o.x ? std::make_unique<Extra>(*o.x) : nullptr) {}  // deep copy
    Attr a;
    std::unique_ptr<Extra> x;  // symlink target, xattrs, directory entries: absent for most files
    Extra& extra() {
      if (!x) x = std::make_unique<Extra>();
      return *x;
    }
  };

  static uint64_t cookie_of(const std::string& name);
  Inode* find(uint64_t ino);
  const Inode* find(uint64_t ino) const;
  const Entry* find_entry(const Inode& dir, const std::string& name) const;
  void add_entry(Inode& dir, const std::string& name, uint64_t ino);
  void remove_entry(Inode& dir, const std::string& name);
  bool is_ancestor(uint64_t maybe_ancestor, uint64_t ino) const;
  int check_dir_for_new(uint64_t parent, const std::string& name, Inode** dir);
  Inode& make_inode(const NsOp& op, FileType type, uint32_t mode);
  void drop_link(Inode& ino, OpResult* out);

  int do_create(const NsOp& op, OpResult* out);
  int do_link(const NsOp& op, OpResult* out);
  int do_unlink(const NsOp& op, OpResult* out);
  int do_rename(const NsOp& op, OpResult* out);
  int do_setattr(const NsOp& op, OpResult* out);
  int do_xattr(const NsOp& op, OpResult* out);
  int do_commit(const NsOp& op, OpResult* out);

  std::unordered_map<uint64_t, Inode> inodes_;
  uint64_t next_ino_ = kRootIno + 1;  // never reused: an inode id names one file forever
  uint64_t files_ = 0;                // regular files
};

// Name rules: 1..255 bytes, no '/' or NUL. Returns 0, EINVAL or ENAMETOOLONG.
int check_name(const std::string& name);

}  // namespace mydfs::tracker
