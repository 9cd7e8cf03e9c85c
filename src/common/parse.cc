#include "common/parse.h"

#include <cctype>

#include <fmt/format.h>

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

}  // namespace mydfs
