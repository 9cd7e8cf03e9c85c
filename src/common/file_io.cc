#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace mydfs {

namespace {
std::mutex g_fault_mu;
WriteFault g_fault;
std::atomic<bool> g_fault_set{false};

Error io_error(const std::string& what, const std::string& path, int err) {
  return make_error(err == ENOSPC ? Code::NO_SPACE : Code::IO_ERROR,
                    fmt::format("{} '{}': {}", what, path, std::strerror(err)));
}
}  // namespace

void set_write_fault(WriteFault f) {
  std::lock_guard g(g_fault_mu);
  g_fault = std::move(f);
  g_fault_set = static_cast<bool>(g_fault);
}

Result<std::unique_ptr<File>> File::open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return io_error("cannot open", path, errno);
  return std::unique_ptr<File>(new File(fd, path));
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

Result<size_t> File::pread_some(uint64_t off, std::span<std::byte> out) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("read failed on", path_, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status File::pread_all(uint64_t off, std::span<std::byte> out) const {
  auto n = pread_some(off, out);
  if (!n.ok()) return n.take_error();
  if (*n != out.size())
    return make_error(Code::IO_ERROR, fmt::format("short read on '{}' at {}", path_, off));
  return ok_status();
}

Status File::pwrite_all(uint64_t off, std::span<const std::byte> in) {
  size_t limit = in.size();
  bool fail_after = false;
  if (g_fault_set.load(std::memory_order_relaxed)) {
    std::lock_guard g(g_fault_mu);
    if (g_fault) {
      long allowed = g_fault(path_, off, in.size());
      if (allowed >= 0) {
        limit = std::min(in.size(), static_cast<size_t>(allowed));
        fail_after = true;
      }
    }
  }
  size_t done = 0;
  while (done < limit) {
    ssize_t n = ::pwrite(fd_, in.data() + done, limit - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("write failed on", path_, errno);
    done += static_cast<size_t>(n);
  }
  if (fail_after) return io_error("write failed on", path_, EIO);
  return ok_status();
}

Status File::datasync() {
  if (::fdatasync(fd_) != 0) return io_error("fdatasync failed on", path_, errno);
  return ok_status();
}

Status File::sync() {
  if (::fsync(fd_) != 0) return io_error("fsync failed on", path_, errno);
  return ok_status();
}

Result<uint64_t> File::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return io_error("cannot stat", path_, errno);
  return static_cast<uint64_t>(st.st_size);
}

Status File::truncate(uint64_t len) {
  if (::ftruncate(fd_, static_cast<off_t>(len)) != 0) return io_error("cannot truncate", path_, errno);
  return ok_status();
}

Status File::allocate(uint64_t len) {
  int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(len));
  if (rc == 0) return ok_status();
  if (rc == EOPNOTSUPP || rc == EINVAL) return truncate(len);
  return io_error("cannot allocate", path_, rc);
}

uint64_t File::data_end(uint64_t from, uint64_t to) const {
  uint64_t end = from;
  for (uint64_t at = from; at < to;) {
    off_t d = ::lseek(fd_, static_cast<off_t>(at), SEEK_DATA);
    if (d < 0) return errno == ENXIO ? end : to;  // ENXIO: no data after `at`
    if (static_cast<uint64_t>(d) >= to) break;
    off_t h = ::lseek(fd_, d, SEEK_HOLE);
    if (h < 0) return to;
    end = std::min<uint64_t>(static_cast<uint64_t>(h), to);
    at = static_cast<uint64_t>(h);
  }
  return end;
}

Status File::punch(uint64_t off, uint64_t len) {
  if (len == 0) return ok_status();
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off), static_cast<off_t>(len)) == 0)
    return ok_status();
  int err = errno;
  Error e = io_error("cannot punch a hole in", path_, err);
  if (err == EOPNOTSUPP || err == ENOSYS) e.sys_errno = EOPNOTSUPP;
  return e;
}

Status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("fsync failed on directory", dir, err);
  return ok_status();
}

Status write_file_atomic(const std::string& path, std::span<const std::byte> bytes) {
  std::string tmp = path + ".tmp";
  {
    MYDFS_ASSIGN(auto f, File::open(tmp, O_WRONLY | O_CREAT | O_TRUNC));
    MYDFS_TRY(f->pwrite_all(0, bytes));
    MYDFS_TRY(f->sync());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("cannot rename", tmp, errno);
  auto slash = path.rfind('/');
  return sync_dir(slash == std::string::npos ? std::string(".") : path.substr(0, slash));
}

}  // namespace mydfs
