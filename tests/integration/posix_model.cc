// The two trees are never compared against an in-memory model of what they should hold: the local
// reference directory is the model. Each step makes the same system call on both sides, requires
// the same outcome, then walks both trees and compares them name by name and byte by byte.
#include "posix_model.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

namespace mydfs::testing {
namespace {

constexpr int kSubject = 0;
constexpr int kReference = 1;
constexpr const char* kSide[2] = {"subject", "reference"};
constexpr size_t kMaxOpen = 6;           // open descriptor pairs at a time
constexpr size_t kLogSteps = 20;         // steps of history in a failure report
constexpr size_t kChunk = 1 << 20;       // read size when comparing contents
constexpr time_t kPast = 1'000'000'000;  // mtime set before a write when check_times is on

template <typename... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}

// The outcome of one system call: what it returned and, if that was negative, errno.
struct Outcome {
  long ret = 0;
  int err = 0;
};

// Must be called directly on the system call's result, before anything else can touch errno.
Outcome outcome(long ret) { return {ret, ret < 0 ? errno : 0}; }

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : cat("errno ", e);
}

// `value` says whether the return value means something to compare (a byte count, an offset) or is
// side-specific (a descriptor number), in which case success is shown as "ok".
std::string show(const Outcome& o, bool value) {
  if (o.ret < 0) return errno_name(o.err);
  return value ? std::to_string(o.ret) : "ok";
}

std::string display(const std::string& rel) { return rel.empty() ? "(top)" : rel; }

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::string flag_names(int flags) {
  static constexpr const char* kAccess[] = {"O_RDONLY", "O_WRONLY", "O_RDWR"};
  std::string s = kAccess[flags & O_ACCMODE];
  if (flags & O_CREAT) s += "|O_CREAT";
  if (flags & O_EXCL) s += "|O_EXCL";
  if (flags & O_TRUNC) s += "|O_TRUNC";
  if (flags & O_APPEND) s += "|O_APPEND";
  return s;
}

// Closes a descriptor used only inside one comparison, on every way out of it.
struct ScopedFd {
  int fd = -1;
  ScopedFd() = default;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};

// Sorted entry names of a directory, without "." and "..". False (errno set) if it cannot be read.
bool list_dir(const std::string& path, std::vector<std::string>& names) {
  names.clear();
  DIR* d = ::opendir(path.c_str());
  if (!d) return false;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  int err = errno;
  ::closedir(d);
  errno = err;
  std::sort(names.begin(), names.end());
  return err == 0;
}

// One open() made on both sides: fd[kSubject] and fd[kReference] refer to the "same" file.
struct FdPair {
  std::array<int, 2> fd{-1, -1};
  int id = 0;        // the log calls it #id
  std::string name;  // the path it was opened by; the file may since have been renamed or unlinked
  int flags = 0;
  bool is_dir = false;
};

class Model {
 public:
  Model(const std::filesystem::path& subject, const std::filesystem::path& reference, const ModelOptions& opt)
      : root_{subject, reference}, opt_(opt), rng_(opt.seed), max_size_(std::max<size_t>(opt.max_size, 1)) {
    // The names things are created under: top-level files, two directories and one nested
    // directory, and files in each. Renames move things to other names (a directory with its files
    // under another directory's name); the tree walk finds those, and operations pick them too.
    dirs_ = {"d0", "d1", "d0/d2"};
    for (int i = 0; i < std::max(opt.max_files, 1); ++i) files_.push_back(cat("f", i));
    for (const auto& d : dirs_)
      for (int i = 0; i < std::max(opt.max_files / 2, 1); ++i) files_.push_back(cat(d, "/g", i));
  }
  ~Model() { close_all(); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  std::string run() {
    if (!check()) return report();  // step 0: the trees must start out alike
    for (step_ = 1; step_ <= opt_.steps; ++step_) {
      line_ = cat("step ", step_, ":");
      bool ok = do_step();
      remember();
      if (!ok || !check()) return report();
    }
    // Closing must succeed alike too (a FUSE flush error surfaces here), and only now do files that
    // were unlinked while open disappear.
    line_ = "final close:";
    bool ok = true;
    while (ok && !open_.empty()) ok = close_pair(open_.size() - 1);
    remember();
    if (!ok || !check()) return report();
    return "";
  }

 private:
  enum class Op { kOpen, kClose, kWrite, kRead, kTruncate, kRename, kUnlink, kLink, kFsync, kMkdir, kRmdir, kReaddir };

  // ---- randomness: plain modulo over the engine's output, so a seed means the same run everywhere.

  uint64_t uniform(uint64_t lo, uint64_t hi) { return hi <= lo ? lo : lo + rng_() % (hi - lo + 1); }
  bool chance(int percent) { return uniform(0, 99) < static_cast<uint64_t>(percent); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[uniform(0, v.size() - 1)];
  }

  std::string random_bytes(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng_();
      std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
    }
    return s;
  }

  Op pick_op() {
    static constexpr std::pair<Op, int> kWeights[] = {
        {Op::kOpen, 14},  {Op::kClose, 8}, {Op::kWrite, 22}, {Op::kRead, 12}, {Op::kTruncate, 8}, {Op::kRename, 8},
        {Op::kUnlink, 4}, {Op::kLink, 5},  {Op::kFsync, 3},  {Op::kMkdir, 5}, {Op::kRmdir, 2},    {Op::kReaddir, 4},
    };
    int total = 0;
    for (const auto& [op, w] : kWeights) total += w;
    int r = static_cast<int>(uniform(0, total - 1));
    for (const auto& [op, w] : kWeights) {
      if (r < w) return op;
      r -= w;
    }
    return Op::kOpen;
  }

  // Names come from the fixed pool or, more often, from what the last tree walk found (the pool
  // alone would mostly produce ENOENT, and never reach directories renamed to other names).
  std::string pick_file() { return !seen_files_.empty() && chance(75) ? pick(seen_files_) : pick(files_); }
  std::string pick_dir() { return !seen_dirs_.empty() && chance(75) ? pick(seen_dirs_) : pick(dirs_); }
  // Mostly a file; sometimes a directory, so the "is a directory" errors get compared too.
  std::string pick_name(int dir_percent = 15) { return chance(dir_percent) ? pick_dir() : pick_file(); }

  // A descriptor, mostly one that can do what the operation needs (not a directory, opened for
  // reading or writing), else any: the EBADF and EISDIR cases are worth comparing, but not all the time.
  const FdPair& pick_fd(bool write) {
    std::vector<size_t> fit;
    for (size_t i = 0; i < open_.size(); ++i) {
      int mode = open_[i].flags & O_ACCMODE;
      if (!open_[i].is_dir && (mode == O_RDWR || mode == (write ? O_WRONLY : O_RDONLY))) fit.push_back(i);
    }
    if (!fit.empty() && chance(85)) return open_[pick(fit)];
    return open_[uniform(0, open_.size() - 1)];
  }

  // Write lengths: mostly small, sometimes large enough to span several of the subject's blocks.
  size_t pick_len() {
    int r = static_cast<int>(uniform(0, 99));
    size_t n = r < 60 ? uniform(1, 4096) : r < 85 ? uniform(4097, 128 << 10) : uniform((128 << 10) + 1, 3 << 19);
    return std::min(n, max_size_);
  }

  // Where to write `len` bytes into a file of `size` bytes: at its end, over existing bytes, past its
  // end (leaving a hole), or straddling a 64 KiB, 1 MiB or 4 MiB boundary. Never past max_size.
  uint64_t pick_offset(uint64_t size, size_t len) {
    len = std::min(len, max_size_);
    static constexpr uint64_t kBoundaries[] = {64 << 10, 1 << 20, 4 << 20};
    uint64_t off = 0;
    int r = static_cast<int>(uniform(0, 9));
    if (r < 4) {
      off = size;
    } else if (r < 7) {
      off = uniform(0, size);
    } else if (r < 9) {
      off = size + uniform(1, 256 << 10);
    } else {
      uint64_t b = kBoundaries[uniform(0, 2)];
      if (b >= max_size_) b = 64 << 10;  // 4 MiB boundaries only when files may grow past them
      off = b * uniform(1, std::max<uint64_t>(max_size_ / b, 1));
      off -= std::min<uint64_t>(off, uniform(1, len));
    }
    return std::min<uint64_t>(off, max_size_ - len);
  }

  // ---- the two sides

  std::string path(int side, const std::string& rel) const { return (root_[side] / rel).string(); }

  // Runs f(side) on both sides, subject first. f returns outcome(the system call).
  template <typename F>
  std::array<Outcome, 2> both(F f) {
    return {f(kSubject), f(kReference)};
  }

  // The reference's size for a pair or a name, to choose offsets and lengths. It is a query, not an
  // operation under test, and deterministic for a given seed.
  uint64_t ref_size(const FdPair& p) {
    struct stat st {};
    return ::fstat(p.fd[kReference], &st) == 0 ? st.st_size : 0;
  }
  uint64_t ref_size(const std::string& name) {
    struct stat st {};
    return ::stat(path(kReference, name).c_str(), &st) == 0 ? st.st_size : 0;
  }

  // ---- comparing and reporting

  bool fail(std::string what) {
    if (failure_.empty()) failure_ = std::move(what);
    return false;
  }

  // Both sides must succeed (returning the same value when `value` is set) or fail with the same
  // errno. `loose` accepts EEXIST for ENOTEMPTY: POSIX allows either for a non-empty directory
  // (rmdir, rename over it) and file systems differ.
  bool same(const std::array<Outcome, 2>& o, bool value, bool loose = false) {
    line_ += " -> " + show(o[kSubject], value);
    const Outcome &s = o[kSubject], &r = o[kReference];
    auto norm = [&](int e) { return loose && e == EEXIST ? ENOTEMPTY : e; };
    bool match = (s.ret >= 0) == (r.ret >= 0) && (s.ret >= 0 ? !value || s.ret == r.ret : norm(s.err) == norm(r.err));
    if (match) return true;
    line_ += cat(" (reference: ", show(r, value), ")");
    return fail(cat("results differ: subject ", show(s, value), ", reference ", show(r, value)));
  }

  void remember() {
    log_.push_back(line_);
    if (log_.size() > kLogSteps) log_.pop_front();
  }

  std::string report() const {
    std::ostringstream s;
    s << "posix model failed with seed " << opt_.seed << " at ";
    if (step_ == 0)
      s << "step 0 (before any operation)";
    else if (step_ > opt_.steps)
      s << "the final close";
    else
      s << "step " << step_;
    s << ": " << failure_ << "\n";
    if (!log_.empty()) s << "last operations (subject's result; the reference's when it differs):\n";
    for (const auto& l : log_) s << "  " << l << "\n";
    return s.str();
  }

  // After every step: open descriptors still agree, and so does every name and file in the trees.
  bool check() {
    for (const auto& p : open_) {
      struct stat st[2]{};
      for (int side : {kSubject, kReference})
        if (::fstat(p.fd[side], &st[side]) != 0)
          return fail(cat("fstat of #", p.id, " (", p.name, ") failed on ", kSide[side], ": ", errno_name(errno)));
      if (S_ISDIR(st[kSubject].st_mode) != S_ISDIR(st[kReference].st_mode))
        return fail(cat("#", p.id, " (", p.name, ") is a directory on one side only"));
      if (p.is_dir) continue;  // directory sizes and link counts are the file system's business
      if (st[kSubject].st_size != st[kReference].st_size)
        return fail(cat("open #", p.id, " (", p.name, ") has size ", st[kSubject].st_size, " on subject but ",
                        st[kReference].st_size, " on reference"));
      if (st[kSubject].st_nlink != st[kReference].st_nlink)
        return fail(cat("open #", p.id, " (", p.name, ") has nlink ", st[kSubject].st_nlink, " on subject but ",
                        st[kReference].st_nlink, " on reference"));
    }
    seen_files_.clear();
    seen_dirs_.clear();
    std::set<std::pair<ino_t, ino_t>> compared;  // hard links: compare each file's content once
    return compare_dir("", compared);
  }

  bool compare_dir(const std::string& rel, std::set<std::pair<ino_t, ino_t>>& compared) {
    std::vector<std::string> names[2];
    for (int side : {kSubject, kReference})
      if (!list_dir(path(side, rel), names[side]))
        return fail(cat("cannot list ", display(rel), " on ", kSide[side], ": ", errno_name(errno)));
    if (names[kSubject] != names[kReference])
      return fail(cat("directory ", display(rel), " holds [", join(names[kSubject]), "] on subject but [",
                      join(names[kReference]), "] on reference"));
    for (const auto& name : names[kSubject]) {
      std::string child = rel.empty() ? name : rel + "/" + name;
      struct stat st[2]{};
      for (int side : {kSubject, kReference})
        if (::lstat(path(side, child).c_str(), &st[side]) != 0)
          return fail(cat("lstat of ", child, " failed on ", kSide[side], ": ", errno_name(errno)));
      const struct stat &s = st[kSubject], &r = st[kReference];
      if ((s.st_mode & S_IFMT) != (r.st_mode & S_IFMT))
        return fail(cat(child, " has file type ", std::oct, (s.st_mode & S_IFMT), " on subject but ",
                        (r.st_mode & S_IFMT), " on reference"));
      if (S_ISDIR(s.st_mode)) {
        seen_dirs_.push_back(child);
        if (!compare_dir(child, compared)) return false;
      } else if (S_ISREG(s.st_mode)) {
        seen_files_.push_back(child);
        if (s.st_size != r.st_size)
          return fail(cat(child, " has size ", s.st_size, " on subject but ", r.st_size, " on reference"));
        if (s.st_nlink != r.st_nlink)
          return fail(cat(child, " has nlink ", s.st_nlink, " on subject but ", r.st_nlink, " on reference"));
        if (compared.insert({s.st_ino, r.st_ino}).second && !compare_content(child, s.st_size)) return false;
      }
    }
    return true;
  }

  bool compare_content(const std::string& rel, uint64_t size) {
    ScopedFd fd[2];
    for (int side : {kSubject, kReference}) {
      fd[side].fd = ::open(path(side, rel).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd[side].fd < 0) return fail(cat("cannot open ", rel, " on ", kSide[side], ": ", errno_name(errno)));
    }
    std::string buf[2];
    for (uint64_t off = 0; off < size; off += kChunk) {
      size_t want = std::min<uint64_t>(kChunk, size - off);
      for (int side : {kSubject, kReference}) {
        buf[side].resize(want);
        ssize_t got = ::pread(fd[side].fd, buf[side].data(), want, off);
        if (got != static_cast<ssize_t>(want))
          return fail(cat("reading ", rel, " at ", off, " on ", kSide[side], " gave ",
                          got < 0 ? errno_name(errno) : cat(got, " bytes"), " instead of ", want, " bytes"));
      }
      if (buf[kSubject] != buf[kReference]) {
        auto [a, b] = std::mismatch(buf[kSubject].begin(), buf[kSubject].end(), buf[kReference].begin());
        return fail(cat("content of ", rel, " (", size, " bytes) differs first at byte ",
                        off + (a - buf[kSubject].begin()), ": subject 0x", std::hex,
                        int(static_cast<unsigned char>(*a)), ", reference 0x", int(static_cast<unsigned char>(*b))));
      }
    }
    return true;
  }

  // ---- operations: each appends what it does to line_ and returns false on a difference.

  bool do_step() {
    Op op = pick_op();
    bool needs_fd = op == Op::kClose || op == Op::kWrite || op == Op::kRead || op == Op::kFsync;
    if (needs_fd && open_.empty()) op = Op::kOpen;
    if (op == Op::kOpen && open_.size() >= kMaxOpen) op = Op::kClose;
    switch (op) {
      case Op::kOpen: return op_open();
      case Op::kClose: return close_pair(uniform(0, open_.size() - 1));
      case Op::kWrite: return op_write(pick_fd(true));
      case Op::kRead: return op_read(pick_fd(false));
      case Op::kTruncate: return op_truncate();
      case Op::kRename: return op_rename();
      case Op::kUnlink: return op_unlink();
      case Op::kLink: return op_link();
      case Op::kFsync: return op_fsync(open_[uniform(0, open_.size() - 1)]);
      case Op::kMkdir: return op_mkdir();
      case Op::kRmdir: return op_rmdir();
      case Op::kReaddir: return op_readdir();
    }
    return true;
  }

  bool op_open() {
    std::string name = pick_name(8);  // rarely a directory: O_CREAT would turn the name into a file
    static constexpr int kAccess[] = {O_RDONLY, O_WRONLY, O_RDWR};
    int flags = kAccess[uniform(0, 2)];
    if (chance(75)) flags |= O_CREAT | (chance(25) ? O_EXCL : 0);
    // O_TRUNC with O_RDONLY is unspecified by POSIX, so truncating (and appending) only with write access.
    if ((flags & O_ACCMODE) != O_RDONLY) flags |= (chance(25) ? O_TRUNC : 0) | (chance(25) ? O_APPEND : 0);
    line_ += cat(" open ", name, " ", flag_names(flags));
    std::array<int, 2> fd{-1, -1};
    auto o =
        both([&](int side) { return outcome(fd[side] = ::open(path(side, name).c_str(), flags | O_CLOEXEC, 0644)); });
    bool ok = same(o, false);
    if (!ok || fd[kSubject] < 0) {
      for (int f : fd)
        if (f >= 0) ::close(f);
      return ok;
    }
    FdPair p;
    p.fd = fd;
    p.id = next_id_++;
    p.name = name;
    p.flags = flags;
    struct stat st {};
    p.is_dir = ::fstat(fd[kReference], &st) == 0 && S_ISDIR(st.st_mode);
    line_ += cat(" as #", p.id);
    open_.push_back(std::move(p));
    return true;
  }

  bool close_pair(size_t i) {
    FdPair p = std::move(open_[i]);
    open_.erase(open_.begin() + i);
    line_ += cat(" close #", p.id);
    return same(both([&](int side) { return outcome(::close(p.fd[side])); }), true);
  }

  void close_all() {
    for (const auto& p : open_)
      for (int f : p.fd) ::close(f);
    open_.clear();
  }

  // Moves the descriptor's position (SEEK_SET anywhere up to max_size, or SEEK_END plus a little,
  // past the end). Not on directories, whose offsets are file-system specific cookies.
  bool maybe_seek(const FdPair& p, size_t len) {
    if (p.is_dir || !chance(40)) return true;
    uint64_t size = ref_size(p);
    bool from_end = chance(30);
    off_t off = from_end ? static_cast<off_t>(uniform(0, 4096)) : static_cast<off_t>(pick_offset(size, len));
    int whence = from_end ? SEEK_END : SEEK_SET;
    line_ += cat(" lseek ", off, from_end ? " SEEK_END" : " SEEK_SET");
    return same(both([&](int side) { return outcome(::lseek(p.fd[side], off, whence)); }), true);
  }

  bool op_write(const FdPair& p) {
    line_ += cat(" #", p.id, " (", p.name, ", ", flag_names(p.flags), "):");
    size_t len = pick_len();
    bool positional = chance(50);
    uint64_t off = 0;
    if (positional) {
      off = pick_offset(ref_size(p), len);
    } else if (!maybe_seek(p, len)) {
      return false;
    }
    // Where the bytes will land: keep the file within max_size (give or take one byte).
    uint64_t start =
        positional ? off : static_cast<uint64_t>(std::max<off_t>(::lseek(p.fd[kReference], 0, SEEK_CUR), 0));
    if (p.flags & O_APPEND) start = ref_size(p);  // O_APPEND ignores the offset, pwrite's included (Linux)
    len = std::max<uint64_t>(1, std::min<uint64_t>(len, max_size_ > start ? max_size_ - start : 1));
    std::string data = random_bytes(len);
    if (!reset_mtime(p)) return false;
    std::array<Outcome, 2> o;
    if (positional) {
      line_ += cat(" pwrite ", len, " at ", off, p.flags & O_APPEND ? " (appends)" : "");
      o = both([&](int side) { return outcome(::pwrite(p.fd[side], data.data(), len, off)); });
    } else {
      line_ += cat(" write ", len);
      o = both([&](int side) { return outcome(::write(p.fd[side], data.data(), len)); });
    }
    return same(o, true) && (o[kSubject].ret <= 0 || mtime_moved(p));
  }

  // With check_times, set mtime far into the past before a write so that "the write changed mtime"
  // does not depend on the clock having ticked. Only on descriptors that can write.
  bool reset_mtime(const FdPair& p) {
    if (!opt_.check_times || p.is_dir || (p.flags & O_ACCMODE) == O_RDONLY) return true;
    const timespec times[2] = {{kPast, 0}, {kPast, 0}};
    line_ += " futimens";
    return same(both([&](int side) { return outcome(::futimens(p.fd[side], times)); }), true);
  }

  bool mtime_moved(const FdPair& p) {
    if (!opt_.check_times) return true;
    for (int side : {kSubject, kReference}) {
      struct stat st {};
      if (::fstat(p.fd[side], &st) != 0)
        return fail(cat("fstat of #", p.id, " failed on ", kSide[side], ": ", errno_name(errno)));
      if (st.st_mtim.tv_sec <= kPast)
        return fail(cat("a write through #", p.id, " (", p.name, ") did not update mtime on ", kSide[side]));
    }
    return true;
  }

  bool op_read(const FdPair& p) {
    line_ += cat(" #", p.id, " (", p.name, ", ", flag_names(p.flags), "):");
    uint64_t size = ref_size(p);
    size_t len = uniform(1, std::min<uint64_t>(size + 8192, 3 << 19));
    bool positional = chance(50);
    uint64_t off = positional ? uniform(0, size + 4096) : 0;  // sometimes past the end
    if (!positional && !maybe_seek(p, len)) return false;
    std::string buf[2] = {std::string(len, '\0'), std::string(len, '\0')};
    std::array<Outcome, 2> o;
    if (positional) {
      line_ += cat(" pread ", len, " at ", off);
      o = both([&](int side) { return outcome(::pread(p.fd[side], buf[side].data(), len, off)); });
    } else {
      line_ += cat(" read ", len);
      o = both([&](int side) { return outcome(::read(p.fd[side], buf[side].data(), len)); });
    }
    if (!same(o, true)) return false;
    if (o[kSubject].ret > 0 && std::memcmp(buf[kSubject].data(), buf[kReference].data(), o[kSubject].ret) != 0) {
      auto [a, b] =
          std::mismatch(buf[kSubject].begin(), buf[kSubject].begin() + o[kSubject].ret, buf[kReference].begin());
      return fail(cat("read through #", p.id, " (", p.name, ") returned different bytes, first at byte ",
                      a - buf[kSubject].begin(), " of the ", o[kSubject].ret, " read"));
    }
    return true;
  }

  // A new length: zero, shrunk, or grown (leaving a hole at the end) a little or up to max_size.
  uint64_t pick_length(uint64_t size) {
    int r = static_cast<int>(uniform(0, 9));
    uint64_t floor = std::min<uint64_t>(size, max_size_);
    if (r < 2) return 0;
    if (r < 6) return uniform(0, size);
    if (r < 8) return uniform(floor, std::min<uint64_t>(floor + (64 << 10), max_size_));
    return uniform(floor, max_size_);
  }

  bool op_truncate() {
    if (!open_.empty() && chance(50)) {
      const FdPair& p = pick_fd(true);
      off_t len = static_cast<off_t>(pick_length(ref_size(p)));
      line_ += cat(" #", p.id, " (", p.name, ", ", flag_names(p.flags), "): ftruncate ", len);
      return same(both([&](int side) { return outcome(::ftruncate(p.fd[side], len)); }), true);
    }
    std::string name = pick_name();
    off_t len = static_cast<off_t>(pick_length(ref_size(name)));
    line_ += cat(" truncate ", name, " ", len);
    return same(both([&](int side) { return outcome(::truncate(path(side, name).c_str(), len)); }), true);
  }

  bool op_rename() {
    std::string from = pick_name(), to = pick_name();
    line_ += cat(" rename ", from, " ", to);
    return same(both([&](int side) { return outcome(::rename(path(side, from).c_str(), path(side, to).c_str())); }),
                true, /*loose=*/true);
  }

  bool op_unlink() {
    std::string name = pick_name();
    line_ += cat(" unlink ", name);
    return same(both([&](int side) { return outcome(::unlink(path(side, name).c_str())); }), true);
  }

  bool op_link() {
    std::string from = pick_name(), to = pick_file();
    line_ += cat(" link ", from, " ", to);
    return same(both([&](int side) { return outcome(::link(path(side, from).c_str(), path(side, to).c_str())); }),
                true);
  }

  bool op_fsync(const FdPair& p) {
    line_ += cat(" #", p.id, " (", p.name, "): fsync");
    return same(both([&](int side) { return outcome(::fsync(p.fd[side])); }), true);
  }

  bool op_mkdir() {
    std::string name = chance(85) ? pick(dirs_) : pick_file();  // the pool: existing names only give EEXIST
    line_ += cat(" mkdir ", name);
    return same(both([&](int side) { return outcome(::mkdir(path(side, name).c_str(), 0755)); }), true);
  }

  bool op_rmdir() {
    std::string name = chance(85) ? pick_dir() : pick_file();
    line_ += cat(" rmdir ", name);
    return same(both([&](int side) { return outcome(::rmdir(path(side, name).c_str())); }), true, /*loose=*/true);
  }

  // The tree walk lists every directory after each step anyway; this also covers listing what is
  // not a directory, or not there.
  bool op_readdir() {
    int r = static_cast<int>(uniform(0, 9));
    std::string name = r < 3 ? "" : r < 8 ? pick_dir() : pick_file();
    line_ += cat(" readdir ", display(name));
    std::vector<std::string> names[2];
    auto o = both([&](int side) { return outcome(list_dir(path(side, name), names[side]) ? 0 : -1); });
    if (!same(o, true)) return false;
    if (names[kSubject] != names[kReference])
      return fail(cat("readdir of ", display(name), " gave [", join(names[kSubject]), "] on subject but [",
                      join(names[kReference]), "] on reference"));
    return true;
  }

  const std::array<std::filesystem::path, 2> root_;
  const ModelOptions opt_;
  std::mt19937_64 rng_;
  const size_t max_size_;
  std::vector<std::string> dirs_, files_;            // the pool of names
  std::vector<std::string> seen_dirs_, seen_files_;  // what the last tree walk found
  std::vector<FdPair> open_;
  int next_id_ = 1;
  int step_ = 0;
  std::string line_;             // what the current step did so far
  std::deque<std::string> log_;  // the last kLogSteps lines
  std::string failure_;
};

}  // namespace

std::string run_posix_model(const std::filesystem::path& subject, const std::filesystem::path& reference,
                            const ModelOptions& opt) {
  return Model(subject, reference, opt).run();
}

}  // namespace mydfs::testing
