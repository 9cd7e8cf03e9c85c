// A slice's address: {group, slot, gen}. gen is the slot's generation, bumped on every reuse, so a
// pointer whose gen differs from the slot's is stale. slot 0 is the superblock, so slot == 0 is the
// null location that ends a chain.
#pragma once
#include <cstdint>
#include <fmt/format.h>

namespace mydfs {

struct Location {
  uint32_t group = 0;
  uint32_t slot = 0;
  uint32_t gen = 0;

  bool null() const { return slot == 0; }
  friend bool operator==(const Location&, const Location&) = default;
};

}  // namespace mydfs

template <>
struct fmt::formatter<mydfs::Location> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const mydfs::Location& l, Ctx& ctx) const {
    if (l.null()) return fmt::format_to(ctx.out(), "null");
    return fmt::format_to(ctx.out(), "{}:{}@{}", l.group, l.slot, l.gen);
  }
};
