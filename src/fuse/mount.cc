// The mount's entry points: option parsing, mount_and_serve (the session, daemonizing, the
// worker threads) and unmount. What the mount does with requests is in ops.cc (the callbacks)
// and fs_state.cc (open files, write buffers, orphans).
#include "fuse/mount.h"

#include <fuse_lowlevel.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "client/client.h"
#include "common/parse.h"
#include "fuse/fs_state.h"
#include "fuse/ops.h"

namespace mydfs::fuse {
namespace {

bool parse_ms(std::string_view v, std::chrono::milliseconds& out) {
  double secs = 0;
  try {
    size_t used = 0;
    secs = std::stod(std::string(v), &used);
    if (used != v.size() || secs < 0) return false;
  } catch (const std::exception&) {
    return false;
  }
  out = std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
  return true;
}

// Words of fstab's option field that are for mount(8), not for us or the kernel.
bool fstab_word(const std::string& key) {
  for (const char* w : {"rw", "dev", "suid", "exec", "auto", "noauto", "user", "nouser", "_netdev", "nofail", "defaults"})
    if (key == w) return true;
  return false;
}

// One option of ours (tracker=, entry_timeout=, ...): whether it was one, and an error message.
bool parse_own_option(const std::string& key, const std::string& value, MountOptions& opt, std::string& error) {
  if (key == "tracker") {
    opt.tracker = value;
  } else if (key == "entry_timeout" || key == "attr_timeout") {
    if (!parse_ms(value, key == "entry_timeout" ? opt.entry_timeout : opt.attr_timeout))
      error = fmt::format("{}: '{}' is not a number of seconds", key, value);
  } else if (key == "write_buffer") {
    auto n = parse_size(value);
    if (!n.ok() || *n < (64u << 10)) error = fmt::format("write_buffer: '{}' is not a size of at least 64KiB", value);
    else opt.write_buffer = *n;
  } else if (key == "max_threads") {
    unsigned n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size() || n < 1 || n > 1024)
      error = fmt::format("max_threads: '{}' is not a number from 1 to 1024", value);
    else opt.max_threads = n;
  } else if (key == "debug") {
    opt.debug = true;
  } else {
    return false;
  }
  return true;
}

// Checks the cluster before mounting, so a wrong address is an error here and not a dead mount.
bool cluster_reachable(const MountOptions& opt) {
  client::ClientOptions co;
  co.tracker = opt.tracker;
  co.call_timeout = std::chrono::milliseconds(5000);
  client::Client probe(co);
  auto root = probe.getattr(kRootIno);
  if (root.ok()) return true;
  fmt::print(stderr, "mydfs mount: cannot reach the cluster at {}: {}\n", opt.tracker, root.error().to_string());
  return false;
}

// libfuse's command line: our fixed options, then the caller's.
std::vector<std::string> fuse_command_line(const MountOptions& opt) {
  std::vector<std::string> args{"mydfs", "-o", "default_permissions", "-o", "fsname=mydfs:" + opt.tracker, "-o",
                                "subtype=mydfs", "-o", fmt::format("max_read={}", kReadChunk)};
  if (geteuid() == 0) args.insert(args.end(), {"-o", "allow_other"});
  for (const auto& o : opt.fuse_options) args.insert(args.end(), {"-o", o});
  if (opt.debug) args.push_back("-d");
  return args;
}

// Mounts, daemonizes unless in the foreground, and serves until unmounted. Returns an exit code.
int mount_session(fuse_session* se, const MountOptions& opt) {
  if (fuse_set_signal_handlers(se) != 0) return 1;
  int rc = 1;
  if (fuse_session_mount(se, opt.mountpoint.c_str()) == 0) {
    if (opt.foreground || fuse_daemonize(0) == 0) {
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, opt.max_threads);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(cfg);
    }
    fuse_session_unmount(se);
  } else {
    fmt::print(stderr, "mydfs mount: cannot mount at {}\n", opt.mountpoint);
  }
  fuse_remove_signal_handlers(se);
  return rc;
}

}  // namespace

std::string parse_mount_options(const std::string& list, MountOptions& opt) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    std::string error;
    if (parse_own_option(key, value, opt, error)) {
      if (!error.empty()) return error;
    } else if (!fstab_word(key)) {
      opt.fuse_options.push_back(item);
    }
  }
  return "";
}

int mount_and_serve(const MountOptions& opt) {
  if (!cluster_reachable(opt)) return 1;
  std::vector<std::string> args = fuse_command_line(opt);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  FsState fs(opt);  // its client is made in init, after daemonizing (the client runs a thread)
  fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof(ops), &fs);
  if (!se) {
    fmt::print(stderr, "mydfs mount: bad FUSE options\n");
    return 2;
  }
  int rc = mount_session(se, opt);
  fuse_session_destroy(se);
  fuse_opt_free_args(&fargs);
  return rc;
}

int unmount(const std::string& mountpoint) {
  pid_t pid = fork();
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", "-u", mountpoint.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace mydfs::fuse
