#include "common/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <csignal>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

namespace mydfs {

Status lock_data_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    return make_error(Code::BAD_REQUEST, fmt::format("data path '{}' is not a usable directory{}{}", dir,
                                                     ec ? ": " : "", ec ? ec.message() : ""));
  auto path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(Code::BAD_REQUEST, fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_error(Code::BAD_REQUEST, fmt::format("data path '{}' is in use by another process", dir));
  }
  // fd stays open (and locked) until the process exits.
  return ok_status();
}

void on_stop_signals(boost::asio::signal_set& signals, std::function<void()> stop) {
  signals.add(SIGTERM);
  signals.add(SIGINT);
  signals.async_wait([stop = std::move(stop)](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    stop();
  });
}

namespace {
const auto g_start = std::chrono::steady_clock::now();

double proc_status_field(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  size_t klen = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, klen, key) == 0) return std::stod(line.substr(klen + 1));
  return 0;
}
}  // namespace

void register_process_metrics(Metrics& m) {
  m.gauge_fn("process_resident_memory_bytes", "Resident set size",
             [] { return proc_status_field("VmRSS") * 1024; });
  m.gauge_fn("process_threads", "Threads of the process", [] { return proc_status_field("Threads"); });
  m.gauge_fn("process_cpu_seconds", "User + system CPU time", [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  });
  m.gauge_fn("process_open_fds", "Open file descriptors", [] {
    std::error_code ec;
    double n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      ++n;
    return n;
  });
  m.gauge_fn("process_uptime_seconds", "Seconds since start", [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  });
}

}  // namespace mydfs
