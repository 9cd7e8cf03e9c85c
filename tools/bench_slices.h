// Shared by the benchmarks: distinct full-slot slice contents, reused round robin, with their
// checksums (random bytes, so nothing on the way can compress or deduplicate them).
#pragma once
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "common/buffer.h"
#include "common/checksum.h"
#include "storage/slot_format.h"

namespace mydfs::bench {

inline void make_random_slices(int count, std::vector<std::shared_ptr<AlignedBuffer>>& bufs,
                               std::vector<uint64_t>& sums) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < count; ++i) {
    auto b = std::make_shared<AlignedBuffer>(storage::kPayloadCapacity);
    for (size_t k = 0; k + 8 <= b->size(); k += 8) {
      uint64_t v = rng();
      std::memcpy(b->data() + k, &v, 8);
    }
    sums.push_back(xxh64(b->span()));
    bufs.push_back(std::move(b));
  }
}

}  // namespace mydfs::bench
