// Pieces every daemon shares: address parsing, the data-directory lock, process stats for
// /status and /metrics, and waiting for SIGTERM/SIGINT.
#pragma once
#include <cstdint>
#include <string>

#include "common/metrics.h"
#include "common/result.h"

namespace mydfs {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};
// "HOST:PORT" or ":PORT" (host 127.0.0.1). BAD_REQUEST with a message naming the input.
Result<HostPort> parse_host_port(const std::string& s);

// Parses sizes like "4096", "64MiB", "1GiB", "2G" into bytes.
Result<uint64_t> parse_size(const std::string& s);

// Creates dir if needed and takes an exclusive lock on dir/LOCK for the life of the process.
Status lock_data_dir(const std::string& dir);

// Registers process gauges (RSS, CPU seconds, threads, open files, uptime) on m.
void register_process_metrics(Metrics& m);

}  // namespace mydfs
