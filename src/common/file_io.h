// The small file interface all store and log I/O goes through, so tests can inject failed and
// short writes (set_write_fault) without touching the code under test.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"

namespace mydfs {

// Decides the fate of each write: return -1 to let it through, or the number of bytes to write
// before failing with EIO (0 = fail at once). Installed process-wide by tests only.
using WriteFault = std::function<long(const std::string& path, uint64_t off, size_t len)>;
void set_write_fault(WriteFault f);

class File {
 public:
  // flags as for open(2); mode used when creating.
  static Result<std::unique_ptr<File>> open(const std::string& path, int flags, mode_t mode = 0644);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  Status pread_all(uint64_t off, std::span<std::byte> out) const;  // short file = IO_ERROR
  // Reads up to out.size() bytes; returns how many (less only at end of file).
  Result<size_t> pread_some(uint64_t off, std::span<std::byte> out) const;
  Status pwrite_all(uint64_t off, std::span<const std::byte> in);
  Status datasync();
  Status sync();
  Result<uint64_t> size() const;
  Status truncate(uint64_t len);
  Status allocate(uint64_t len);  // fallocate, falling back to truncate where unsupported
  // The end of the last byte range in [from, to) that is not a hole, or `from` if all of it is
  // (SEEK_DATA/SEEK_HOLE; a file system that cannot tell answers `to`).
  uint64_t data_end(uint64_t from, uint64_t to) const;
  // Gives [off, off+len) back to the file system (reads as zeros after; the size is kept).
  // An error with sys_errno EOPNOTSUPP: the file system cannot.
  Status punch(uint64_t off, uint64_t len);
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// fsync of a directory, so a created or renamed entry survives a crash.
Status sync_dir(const std::string& dir);

// Replaces path with bytes so that a crash leaves either the old file or the new one whole:
// write a temporary beside it, fsync, rename over, fsync the directory.
Status write_file_atomic(const std::string& path, std::span<const std::byte> bytes);

}  // namespace mydfs
