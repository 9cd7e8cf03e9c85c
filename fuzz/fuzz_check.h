// Shared by the fuzz targets: FUZZ_CHECK(cond, fmt, ...) prints what broke and aborts, so libFuzzer
// saves the input as a crash artifact. Used for properties (round trips, invariants) the
// sanitizers cannot see.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace mydfs::fuzz {

[[noreturn]] inline void check_failed(const char* file, int line, const char* cond, const std::string& what) {
  std::fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s\n  %s\n", file, line, cond, what.c_str());
  std::fflush(stderr);
  std::abort();
}

// MYDFS_FUZZ_SKIP="name,name": properties to leave unchecked, so a target can go on fuzzing the
// rest while a known failure is open. Each target's header comment lists its names.
inline bool skipped(std::string_view name) {
  static const std::string list = [] {
    const char* v = std::getenv("MYDFS_FUZZ_SKIP");
    return "," + std::string(v ? v : "") + ",";
  }();
  return list.find("," + std::string(name) + ",") != std::string::npos;
}

inline std::string hex(std::string_view s, size_t max = 256) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    out += d[c >> 4];
    out += d[c & 15];
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace mydfs::fuzz

#define FUZZ_CHECK(cond, what)                                                  \
  do {                                                                          \
    if (!(cond)) ::mydfs::fuzz::check_failed(__FILE__, __LINE__, #cond, (what)); \
  } while (0)
