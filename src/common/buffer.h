// AlignedBuffer: a heap block aligned to 4 KiB, so slice payloads can be read from sockets and
// written to the store (including with O_DIRECT) without another copy.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace mydfs {

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : size_(n) {
    if (n == 0) return;
    size_t cap = (n + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, cap) != 0) throw std::bad_alloc();
    data_.reset(static_cast<std::byte*>(p));
  }
  static AlignedBuffer copy_of(std::span<const std::byte> s) {
    AlignedBuffer b(s.size());
    if (!s.empty()) std::memcpy(b.data(), s.data(), s.size());
    return b;
  }

  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<std::byte> span() { return {data(), size_}; }
  std::span<const std::byte> span() const { return {data(), size_}; }
  // Shrinks the visible size (capacity stays); used after a short read.
  void resize_down(size_t n) { if (n < size_) size_ = n; }

 private:
  struct Free { void operator()(std::byte* p) const { std::free(p); } };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace mydfs
