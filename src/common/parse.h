// Parsing of what users type in flags and commands: addresses and sizes.
#pragma once
#include <cstdint>
#include <string>

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

}  // namespace mydfs
