// File-system types shared by the tracker's namespace, its edit log and the wire: attributes,
// directory entries and namespace operations, with their little-endian encodings.
#pragma once
#include <cstdint>
#include <string>

#include "common/codec.h"
#include "common/location.h"

namespace mydfs {

constexpr uint64_t kRootIno = 1;
constexpr size_t kMaxName = 255;
constexpr size_t kMaxSymlink = 4095;
constexpr size_t kMaxXattrName = 255;
constexpr size_t kMaxXattrValue = 65536;
constexpr size_t kMaxXattrs = 1024;  // per inode
constexpr const char* kRunXattr = "user.mydfs.run";  // per-directory run length for placement

enum class FileType : uint8_t { REG = 1, DIR = 2, LNK = 3, FIFO = 4, SOCK = 5, CHR = 6, BLK = 7 };

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  friend bool operator==(const Timespec&, const Timespec&) = default;
};

struct Attr {
  uint64_t ino = 0;
  FileType type = FileType::REG;
  uint32_t mode = 0;  // permission bits incl. suid/sgid/sticky (07777)
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  Timespec atime, mtime, ctime;
  uint32_t rdev = 0;
  Location head;          // first slice of a regular file (null: empty)
  uint64_t version = 0;   // bumped by every commit-file: the CAS token
  uint8_t run = 0;        // slices per run for this file's placement (0 = cluster default)
  // Bytes a regular file's slices take on each member (4 KiB blocks; holes take none), as the
  // writer that published the chain counted them: st_blocks. Other types: 0.
  uint64_t blocks = 0;

  void encode(Writer& w) const;
  // with_blocks false: the encoding before `blocks` (an image of format 1); blocks is then the
  // size rounded up to 4 KiB.
  void decode(Reader& r, bool with_blocks = true);
  friend bool operator==(const Attr&, const Attr&) = default;
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  FileType type = FileType::REG;
  uint64_t cookie = 0;  // pass back to readdir to continue after this entry
};

// setattr fields to change.
enum SetattrMask : uint32_t {
  SET_MODE = 1, SET_UID = 2, SET_GID = 4, SET_SIZE = 8, SET_ATIME = 16, SET_MTIME = 32,
  SET_ATIME_NOW = 64, SET_MTIME_NOW = 128,
};
enum RenameFlags : uint32_t { RENAME_NOREPLACE_ = 1, RENAME_EXCHANGE_ = 2 };
enum XattrFlags : uint32_t { XATTR_CREATE_ = 1, XATTR_REPLACE_ = 2 };
enum CreateFlags : uint32_t { CREATE_EXCLUSIVE = 1 };  // an existing name is EEXIST

enum class OpType : uint8_t {
  MKDIR = 1, CREATE, MKNOD, SYMLINK, LINK, UNLINK, RMDIR, RENAME, SETATTR, SETXATTR, REMOVEXATTR,
  COMMIT_FILE,
};

// One namespace mutation, as logged. Which fields matter depends on type.
struct NsOp {
  OpType type = OpType::MKDIR;
  uint64_t parent = 0;      // directory (or the inode for SETATTR/xATTR/COMMIT_FILE/LINK source)
  std::string name;         // entry name (or xattr name)
  uint64_t parent2 = 0;     // RENAME: new directory; LINK: new directory
  std::string name2;        // RENAME: new name; LINK: new name; SYMLINK: target; SETXATTR: value
  FileType ftype = FileType::REG;  // MKNOD
  uint32_t mode = 0, uid = 0, gid = 0, rdev = 0;
  uint32_t flags = 0;       // CREATE: CreateFlags; RENAME: RenameFlags; SETXATTR: XattrFlags; SETATTR: mask
  uint64_t size = 0;        // SETATTR size, COMMIT_FILE size
  Timespec atime, mtime;    // SETATTR explicit times, COMMIT_FILE mtime
  Location head;            // COMMIT_FILE
  uint64_t expect_version = 0;  // COMMIT_FILE
  Timespec now;             // chosen before logging
  uint64_t new_ino = 0;     // creations: chosen before logging
  // COMMIT_FILE: the new chain's bytes on disk (Attr::blocks). The last field; on the wire it is
  // always there, in the edit log an op logged before it has none (decoded as kUnknownBlocks: the
  // size rounded up is taken).
  static constexpr uint64_t kUnknownBlocks = UINT64_MAX;
  uint64_t blocks = kUnknownBlocks;

  void encode(Writer& w) const;
  // from_log: `blocks` may be missing (an op logged before the field existed).
  void decode(Reader& r, bool from_log = false);

  // Named builders: each sets its type and the fields that type reads.
  static NsOp mkdir(uint64_t parent, std::string name, uint32_t mode);
  static NsOp create(uint64_t parent, std::string name, uint32_t mode, bool exclusive);
  // A node of any type: MKDIR, CREATE (exclusive) or MKNOD by type.
  static NsOp make_node(uint64_t parent, std::string name, FileType type, uint32_t mode, uint32_t rdev);
  static NsOp symlink(uint64_t parent, std::string name, std::string target);
  static NsOp link(uint64_t ino, uint64_t new_parent, std::string new_name);
  static NsOp unlink(uint64_t parent, std::string name);
  static NsOp rmdir(uint64_t parent, std::string name);
  static NsOp rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name,
                     uint32_t rename_flags = 0);
  // SETATTR with an empty mask: set fields and their SetattrMask bits on the result.
  static NsOp setattr(uint64_t ino);
  static NsOp setxattr(uint64_t ino, std::string name, std::string value, uint32_t xattr_flags);
  static NsOp removexattr(uint64_t ino, std::string name);
  // The compare-and-set that publishes a file's new chain: applies only if the file is still at
  // expect_version.
  static NsOp commit_file(uint64_t ino, uint64_t expect_version, Location head, uint64_t size, Timespec mtime,
                          uint64_t blocks = kUnknownBlocks);
};

}  // namespace mydfs
