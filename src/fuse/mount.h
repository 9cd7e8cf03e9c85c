// The FUSE mount: a mydfs cluster as a POSIX directory tree, through libfuse's low-level API.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace mydfs::fuse {

struct MountOptions {
  std::string tracker;     // HOST:PORT
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;      // libfuse's own trace of every request
  std::chrono::milliseconds entry_timeout{1000};  // the kernel's cache of names
  std::chrono::milliseconds attr_timeout{1000};   // and of attributes
  uint64_t write_buffer = 64ull << 20;  // unflushed bytes per open file, at most
  unsigned max_threads = 16;            // FUSE worker threads
  std::vector<std::string> fuse_options;  // passed to the kernel as -o (allow_other, ro, ...)
};

// Parses "-o a,b=c" mount options: our own (tracker=, entry_timeout=, attr_timeout=,
// write_buffer=, max_threads=, debug) into opt, the rest into opt.fuse_options. Returns an error
// message, or "".
std::string parse_mount_options(const std::string& list, MountOptions& opt);

// Mounts and serves until unmounted (or SIGINT/SIGTERM). Unless opt.foreground, returns in the
// parent once the mount is up and serves in a daemonized child. Returns a process exit code.
int mount_and_serve(const MountOptions& opt);

// fusermount3 -u MOUNTPOINT.
int unmount(const std::string& mountpoint);

}  // namespace mydfs::fuse
