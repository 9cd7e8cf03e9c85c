// Shared harness for tests that start real daemons: processes are started with fork/exec, logged
// to files, stopped by PID (SIGTERM or SIGKILL), and always reaped, even when a test fails.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace mydfs::testing {

// Path of a built binary, from the environment variable meson sets for tests.
std::string binary(const char* env_var);

class Daemon {
 public:
  Daemon(std::string bin, std::vector<std::string> args, std::string log_path);
  ~Daemon();  // SIGKILL if still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void start();
  void kill9();               // SIGKILL and reap
  int terminate();            // SIGTERM, wait; returns the exit status (or -signal)
  int wait_exit(std::chrono::milliseconds timeout);  // for a daemon expected to exit by itself
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string log() const;    // what it wrote so far

 private:
  std::string bin_;
  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
};

uint16_t free_port();
// True once something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(uint16_t port, std::chrono::milliseconds timeout);
// Runs a shell command; returns its exit status (-1 if it did not exit normally) and its standard
// output in *out.
int run_shell(const std::string& cmd, std::string* out = nullptr);
// GET over HTTP/1.0; returns the body ("" on failure) and the status code in *status.
std::string http_get(uint16_t port, const std::string& path, int* status = nullptr);

}  // namespace mydfs::testing
