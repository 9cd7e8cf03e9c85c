#include "cli/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "client/client.h"
#include "common/parse.h"

namespace mydfs::cli {

namespace {

using client::Client;

constexpr int kOk = 0;
constexpr int kFailed = 1;

std::unique_ptr<Client> open_client(const std::string& tracker) {
  client::ClientOptions o;
  o.tracker = tracker;
  // Tuning and test knobs (docs/OPERATIONS.md): smaller slices for new data, and a pause after a
  // transaction's prepare so a test can kill a process at exactly that point.
  if (const char* sb = std::getenv("MYDFS_SLICE_BYTES"); sb && *sb) {
    auto v = parse_size(sb);
    if (v.ok()) o.slice_bytes = static_cast<uint32_t>(std::min<uint64_t>(*v, UINT32_MAX));
  }
  if (const char* p = std::getenv("MYDFS_TEST_PAUSE_AFTER_PREPARE_MS"); p && *p) {
    int ms = std::atoi(p);
    o.after_prepare = [ms](uint64_t txid) {
      fmt::print(stderr, "mydfs: transaction {:016x} prepared; pausing {} ms\n", txid, ms);
      std::fflush(stderr);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    };
  }
  return std::make_unique<Client>(o);
}

// The bytes of LOCAL ("-" = standard input), whole in memory.
Result<std::string> read_local(const std::string& local) {
  int fd = local == "-" ? 0 : ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Code::IO_ERROR, fmt::format("cannot open '{}': {}", local, std::strerror(errno)));
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      if (fd != 0) ::close(fd);
      return make_error(Code::IO_ERROR, fmt::format("cannot read '{}': {}", local, std::strerror(e)));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  if (fd != 0) ::close(fd);
  return data;
}

Result<uint64_t> parse_number(const std::string& what, const std::string& s) {
  auto v = parse_size(s);
  if (!v.ok()) return make_error(Code::BAD_REQUEST, fmt::format("invalid {} '{}'", what, s));
  return *v;
}

// coreutils style: "mydfs: cannot VERB 'PATH': reason".
int fail(const std::string& verb, const std::string& path, const Error& e) {
  std::string why = e.code == Code::FS_ERROR ? e.message : e.to_string();
  fmt::print(stderr, "mydfs: cannot {} '{}': {}\n", verb, path, why);
  return kFailed;
}

const char* type_char(FileType t) {
  switch (t) {
    case FileType::DIR: return "d";
    case FileType::LNK: return "l";
    case FileType::FIFO: return "p";
    case FileType::SOCK: return "s";
    case FileType::CHR: return "c";
    case FileType::BLK: return "b";
    default: return "-";
  }
}

std::string mode_string(const Attr& a) {
  std::string s = type_char(a.type);
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (a.mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

std::string time_string(const Timespec& t) {
  std::time_t secs = t.sec;
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:09}", buf, t.nsec);
}

// A one-line progress bar on stderr when it is a terminal.
struct ProgressBar {
  bool tty = ::isatty(2);
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last{};
  void operator()(uint64_t done, uint64_t total) {
    if (!tty) return;
    auto now = std::chrono::steady_clock::now();
    if (done != total && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    double secs = std::chrono::duration<double>(now - start).count();
    fmt::print(stderr, "\r  {:8.1f} MiB / {:.1f} MiB  {:3.0f}%  {:6.1f} MB/s", done / 1048576.0, total / 1048576.0,
               total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0,
               secs > 0 ? static_cast<double>(done) / secs / 1e6 : 0.0);
    if (done == total) fmt::print(stderr, "\n");
  }
};

// The bytes to upload: a local regular file read in place, or standard input read whole first
// (its size must be known up front).
struct LocalSource {
  std::string name;
  int fd = -1;
  uint64_t size = 0;
  std::string data;  // standard input

  ~LocalSource() {
    if (fd >= 0) ::close(fd);
  }
  // False (with the message printed) if LOCAL cannot be used.
  bool open(const std::string& local, const std::string& verb) {
    name = local;
    if (local == "-") {
      auto in = read_local("-");
      if (!in.ok()) {
        fmt::print(stderr, "mydfs: {}\n", in.error().message);
        return false;
      }
      data = std::move(*in);
      size = data.size();
      return true;
    }
    fd = ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fmt::print(stderr, "mydfs: cannot open '{}': {}\n", local, std::strerror(errno));
      return false;
    }
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      fmt::print(stderr, "mydfs: cannot {} '{}': not a regular file\n", verb, local);
      return false;
    }
    size = static_cast<uint64_t>(st.st_size);
    return true;
  }
  client::Source source() const {
    return [this](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
      if (fd < 0) {
        size_t n = std::min<size_t>(out.size(), data.size() - std::min<size_t>(off, data.size()));
        std::memcpy(out.data(), data.data() + off, n);
        return n;
      }
      size_t done = 0;
      while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return make_error(Code::IO_ERROR, fmt::format("read '{}': {}", name, std::strerror(errno)));
        if (n == 0) break;
        done += static_cast<size_t>(n);
      }
      return done;
    };
  }
};

}  // namespace

int cmd_put(const std::string& tracker, const std::string& local, const std::string& path) {
  LocalSource in;
  if (!in.open(local, "put")) return kFailed;
  auto c = open_client(tracker);
  ProgressBar bar;
  auto r = c->put(path, in.size, in.source(), [&](uint64_t d, uint64_t t) { bar(d, t); });
  if (!r.ok()) return fail("put", path, r.error());
  return kOk;
}

int cmd_get(const std::string& tracker, const std::string& path, const std::string& local) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("stat", path, a.error());
  if (a->type != FileType::REG) return fail("get", path, fs_error(a->type == FileType::DIR ? EISDIR : EINVAL, ""));
  int fd = local == "-" ? 1 : ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fmt::print(stderr, "mydfs: cannot create '{}': {}\n", local, std::strerror(errno));
    return kFailed;
  }
  ProgressBar bar;
  if (fd == 1) bar.tty = false;
  // A seekable standard output (a file) is written in place from its current position.
  off_t base = fd == 1 ? ::lseek(1, 0, SEEK_CUR) : 0;
  bool seekable = fd != 1 || base >= 0;
  uint64_t written = 0;
  // Slices arrive in any order; a pipe needs them in order, so those are buffered until their turn.
  std::map<uint64_t, std::string> pending;
  auto st = c->get(*a, [&](uint64_t off, std::span<const std::byte> d) -> Status {
    auto write_at = [&](uint64_t o, const char* p, size_t n) -> Status {
      size_t done = 0;
      while (done < n) {
        ssize_t w = seekable ? ::pwrite(fd, p + done, n - done, base + static_cast<off_t>(o + done))
                             : ::write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return make_error(Code::IO_ERROR, fmt::format("write '{}': {}", local, std::strerror(errno)));
        done += static_cast<size_t>(w);
      }
      return ok_status();
    };
    if (seekable) return write_at(off, reinterpret_cast<const char*>(d.data()), d.size());
    pending.emplace(off, std::string(reinterpret_cast<const char*>(d.data()), d.size()));
    while (!pending.empty() && pending.begin()->first == written) {
      auto& s = pending.begin()->second;
      MYDFS_TRY(write_at(written, s.data(), s.size()));
      written += s.size();
      pending.erase(pending.begin());
    }
    return ok_status();
  }, [&](uint64_t d, uint64_t t) { bar(d, t); });
  if (fd == 1 && seekable && st.ok()) ::lseek(1, base + static_cast<off_t>(*st), SEEK_SET);
  if (fd != 1) {
    uint64_t total = st.ok() ? *st : 0;
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0 || ::close(fd) != 0) {
      fmt::print(stderr, "mydfs: cannot write '{}': {}\n", local, std::strerror(errno));
      return kFailed;
    }
  }
  if (!st.ok()) return fail("read", path, st.error());
  return kOk;
}

int cmd_cat(const std::string& tracker, const std::string& path) { return cmd_get(tracker, path, "-"); }

int cmd_ls(const std::string& tracker, const std::string& path, bool long_format) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("access", path, a.error());
  std::vector<std::pair<std::string, Attr>> rows;
  if (a->type == FileType::DIR) {
    auto entries = c->list(a->ino);
    if (!entries.ok()) return fail("open directory", path, entries.error());
    for (auto& e : *entries) {
      auto at = c->lookup(a->ino, e.name);
      if (at.ok()) rows.emplace_back(e.name, *at);
    }
    std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  } else {
    rows.emplace_back(path, *a);
  }
  for (auto& [name, at] : rows) {
    if (long_format)
      fmt::print("{} {:3} {:5} {:5} {:12} {} {}\n", mode_string(at), at.nlink, at.uid, at.gid, at.size,
                 time_string(at.mtime).substr(0, 19), name);
    else
      fmt::print("{}\n", name);
  }
  return kOk;
}

int cmd_stat(const std::string& tracker, const std::string& path) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("stat", path, a.error());
  fmt::print("  File: {}\n  Size: {:<12} Inode: {:<10} Links: {}\n", path, a->size, a->ino, a->nlink);
  fmt::print("Access: ({:04o}/{})  Uid: {}  Gid: {}\n", a->mode, mode_string(*a), a->uid, a->gid);
  fmt::print("Access: {}\nModify: {}\nChange: {}\n", time_string(a->atime), time_string(a->mtime),
             time_string(a->ctime));
  if (a->type == FileType::REG) fmt::print("  Head: {}  Version: {}\n", a->head, a->version);
  return kOk;
}

int cmd_mkdir(const std::string& tracker, const std::string& path, bool parents) {
  auto c = open_client(tracker);
  auto r = c->mkdir(path, 0755, parents);
  if (!r.ok()) return fail("create directory", path, r.error());
  return kOk;
}

int cmd_rm(const std::string& tracker, const std::string& path, bool recursive) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("remove", path, a.error());
  if (a->type == FileType::DIR && !recursive) return fail("remove", path, fs_error(EISDIR, ""));
  auto st = c->remove(path, recursive);
  if (!st.ok()) return fail("remove", path, st.error());
  return kOk;
}

int cmd_mv(const std::string& tracker, const std::string& from, const std::string& to) {
  auto c = open_client(tracker);
  auto st = c->rename(from, to);
  if (!st.ok()) return fail(fmt::format("move '{}' to", from), to, st.error());
  return kOk;
}

int cmd_chain(const std::string& tracker, const std::string& path) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("stat", path, a.error());
  auto ch = c->chain(*a);
  if (!ch.ok()) return fail("walk", path, ch.error());
  fmt::print("{}: {} bytes in {} slice(s), head {}\n", path, a->size, ch->size(), a->head);
  fmt::print("  {:>4}  {:<16} {:>5} {:>10} {:>14}  {}\n", "#", "LOCATION", "STATE", "VALID_LEN", "OFFSET", "NEXT");
  uint32_t group = 0;
  for (size_t i = 0; i < ch->size(); ++i) {
    const auto& s = (*ch)[i];
    if (i == 0 || s.meta.loc.group != group) fmt::print("  -- run on group {}\n", s.meta.loc.group);
    group = s.meta.loc.group;
    fmt::print("  {:>4}  {:<16} {:>5} {:>10} {:>14}  {}\n", i, fmt::format("{}", s.meta.loc),
               static_cast<int>(s.meta.state), s.meta.valid_len, s.offset, s.meta.next);
  }
  return kOk;
}

// Edits. Numbers accept the size suffixes of the daemons' flags (4096, 4KiB, 1M).

int cmd_append(const std::string& tracker, const std::string& path, const std::string& local) {
  LocalSource in;
  if (!in.open(local, "append")) return kFailed;
  auto c = open_client(tracker);
  // The file must exist or be creatable, like `>>` in a shell.
  if (auto a = c->stat(path); !a.ok() && to_errno(a.error()) == ENOENT) {
    auto made = c->put(path, 0, [](uint64_t, std::span<std::byte>) -> Result<size_t> { return size_t{0}; });
    if (!made.ok() && to_errno(made.error()) != ESTALE) return fail("create", path, made.error());
  }
  ProgressBar bar;
  auto r = c->append(path, in.size, in.source(), [&](uint64_t d, uint64_t t) { bar(d, t); });
  if (!r.ok()) return fail("append to", path, r.error());
  return kOk;
}

int cmd_write_at(const std::string& tracker, const std::string& path, const std::string& offset, const std::string& local) {
  auto off = parse_number("offset", offset);
  if (!off.ok()) return fail("write", path, off.error());
  auto data = read_local(local);
  if (!data.ok()) return fail("write", path, data.error());
  auto c = open_client(tracker);
  auto r = c->write_at(path, *off, *data);
  if (!r.ok()) return fail("write", path, r.error());
  return kOk;
}

int cmd_splice(const std::string& tracker, const std::string& path, const std::string& offset, const std::string& del_len,
               const std::string& local) {
  auto off = parse_number("offset", offset);
  if (!off.ok()) return fail("splice", path, off.error());
  auto del = parse_number("length", del_len);
  if (!del.ok()) return fail("splice", path, del.error());
  auto data = read_local(local);
  if (!data.ok()) return fail("splice", path, data.error());
  auto c = open_client(tracker);
  auto r = c->splice(path, *off, *del, *data);
  if (!r.ok()) return fail("splice", path, r.error());
  return kOk;
}

int cmd_truncate(const std::string& tracker, const std::string& path, const std::string& size) {
  auto n = parse_number("size", size);
  if (!n.ok()) return fail("truncate", path, n.error());
  auto c = open_client(tracker);
  auto r = c->truncate(path, *n);
  if (!r.ok()) return fail("truncate", path, r.error());
  return kOk;
}

int cmd_compact(const std::string& tracker, const std::string& path, bool recursive) {
  auto c = open_client(tracker);
  auto a = c->stat(path);
  if (!a.ok()) return fail("compact", path, a.error());
  if (a->type != FileType::DIR) {
    auto r = c->compact(path);
    if (!r.ok()) return fail("compact", path, r.error());
    fmt::print("{}: {} slice(s) -> {} ({} merge(s))\n", path, r->slices_before, r->slices_after, r->merges);
    return kOk;
  }
  if (!recursive) {
    fmt::print(stderr, "mydfs: cannot compact '{}': Is a directory (-r compacts every file under it)\n", path);
    return kFailed;
  }
  // Every regular file under the directory, one after another (one merge in flight at a time).
  // A file that fails is reported and skipped; files with something merged get a line each, and
  // on a terminal a counter shows the walk's progress.
  bool tty = ::isatty(STDERR_FILENO);
  uint64_t files = 0, before = 0, after = 0, merges = 0, failed = 0;
  std::vector<std::pair<std::string, uint64_t>> dirs{{path == "/" ? "" : path, a->ino}};
  while (!dirs.empty()) {
    auto [dir, ino] = dirs.back();
    dirs.pop_back();
    auto entries = c->list(ino);
    if (!entries.ok()) {
      fail("list", dir.empty() ? "/" : dir, entries.error());
      ++failed;
      continue;
    }
    for (const auto& e : *entries) {
      if (e.name == "." || e.name == "..") continue;
      std::string child = dir + "/" + e.name;
      if (e.type == FileType::DIR) dirs.emplace_back(child, e.ino);
      if (e.type != FileType::REG) continue;
      auto r = c->compact(child);
      if (!r.ok()) {
        if (tty) fmt::print(stderr, "\r\033[K");
        fail("compact", child, r.error());
        ++failed;
        continue;
      }
      ++files;
      before += r->slices_before;
      after += r->slices_after;
      merges += r->merges;
      if (r->merges > 0) {
        if (tty) fmt::print(stderr, "\r\033[K");
        fmt::print("{}: {} slice(s) -> {} ({} merge(s))\n", child, r->slices_before, r->slices_after, r->merges);
      }
      if (tty) fmt::print(stderr, "\r\033[K{} file(s) compacted, {} merge(s)", files, merges);
    }
  }
  if (tty) fmt::print(stderr, "\r\033[K");
  fmt::print("{}: {} file(s), {} slice(s) -> {} ({} merge(s)){}\n", path, files, before, after, merges,
             failed ? fmt::format("; {} failed", failed) : std::string());
  return failed ? kFailed : kOk;
}

}  // namespace mydfs::cli
