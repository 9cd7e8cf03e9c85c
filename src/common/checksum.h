// xxHash64 is the one checksum of the project: frame headers, slot headers, payloads, log records.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include <xxhash.h>

namespace mydfs {

inline uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0) {
  return XXH64(data, n, seed);
}
inline uint64_t xxh64(std::span<const std::byte> s, uint64_t seed = 0) {
  return XXH64(s.data(), s.size(), seed);
}

// True if every byte is zero (a slice of zeros is a hole: it is neither sent nor stored).
inline bool all_zero(std::span<const std::byte> s) {
  const std::byte* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    if (v) return false;
  }
  for (; n; ++p, --n)
    if (*p != std::byte{0}) return false;
  return true;
}

namespace detail {
inline uint64_t xxh64_zeros_stream(size_t n) {
  static const std::byte zeros[65536] = {};
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  for (size_t left = n; left > 0;) {
    size_t k = left < sizeof zeros ? left : sizeof zeros;
    XXH64_update(st, zeros, k);
    left -= k;
  }
  uint64_t sum = XXH64_digest(st);
  XXH64_freeState(st);
  return sum;
}
}  // namespace detail

// xxHash64 of n zero bytes, streamed from one small block (a whole 4 MiB slice's is remembered).
inline uint64_t xxh64_zeros(size_t n) {
  if (n != (4u << 20)) return detail::xxh64_zeros_stream(n);
  static const uint64_t full = detail::xxh64_zeros_stream(n);
  return full;
}

}  // namespace mydfs
