#include "common/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace mydfs {

Result<HostPort> parse_host_port(const std::string& s) {
  auto c = s.rfind(':');
  if (c == std::string::npos)
    return make_error(Code::BAD_REQUEST, fmt::format("bad address '{}': expected HOST:PORT", s));
  HostPort hp;
  hp.host = c == 0 ? "127.0.0.1" : s.substr(0, c);
  auto ps = s.substr(c + 1);
  if (ps.empty() || ps.size() > 5 || ps.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(ps) > 65535)
    return make_error(Code::BAD_REQUEST, fmt::format("bad port in '{}'", s));
  hp.port = static_cast<uint16_t>(std::stoul(ps));
  return hp;
}

Result<uint64_t> parse_size(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 19) return make_error(Code::BAD_REQUEST, fmt::format("bad size '{}'", s));
  uint64_t n = std::stoull(s.substr(0, i));
  std::string unit = s.substr(i);
  uint64_t mul = 1;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KiB") mul = 1ull << 10;
  else if (unit == "M" || unit == "MiB") mul = 1ull << 20;
  else if (unit == "G" || unit == "GiB") mul = 1ull << 30;
  else if (unit == "T" || unit == "TiB") mul = 1ull << 40;
  else return make_error(Code::BAD_REQUEST, fmt::format("bad size unit in '{}' (use K, M, G, T)", s));
  if (n > UINT64_MAX / mul) return make_error(Code::BAD_REQUEST, fmt::format("size '{}' too large", s));
  return n * mul;
}

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
