// xxHash64 is the one checksum of the project: frame headers, slot headers, payloads, log records.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xxhash.h>

namespace mydfs {

inline uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0) {
  return XXH64(data, n, seed);
}
inline uint64_t xxh64(std::span<const std::byte> s, uint64_t seed = 0) {
  return XXH64(s.data(), s.size(), seed);
}

}  // namespace mydfs
