// AlignedBuffer: a heap block aligned to 4 KiB, so slice payloads can be read from sockets and
// written to the store (including with O_DIRECT) without another copy.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string_view>
#include <vector>

namespace mydfs {

namespace detail {
// Recycles slot-sized blocks. A fresh 4 MiB allocation is an mmap whose 1024 pages fault in and
// are zeroed on first touch and unmapped on free; at a thousand slices a second that costs more
// than the copy itself. Keeps at most kKeep blocks (kKeep * 4 MiB of memory) around.
class BlockPool {
 public:
  static constexpr size_t kBlock = 4u << 20;
  static constexpr size_t kKeep = 24;
  static BlockPool& instance() {
    static BlockPool* p = new BlockPool;  // never destroyed: buffers may be freed at exit
    return *p;
  }
  std::byte* get() {
    {
      std::lock_guard g(mu_);
      if (!free_.empty()) {
        std::byte* b = free_.back();
        free_.pop_back();
        return b;
      }
    }
    void* p = nullptr;
    if (posix_memalign(&p, 4096, kBlock) != 0) throw std::bad_alloc();
    return static_cast<std::byte*>(p);
  }
  void put(std::byte* b) {
    {
      std::lock_guard g(mu_);
      if (free_.size() < kKeep) {
        free_.push_back(b);
        return;
      }
    }
    std::free(b);
  }

 private:
  std::mutex mu_;
  std::vector<std::byte*> free_;
};
}  // namespace detail

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : size_(n) {
    if (n == 0) return;
    if (n > (512u << 10) && n <= detail::BlockPool::kBlock) {
      data_ = std::unique_ptr<std::byte, Free>(detail::BlockPool::instance().get(), Free{true});
      return;
    }
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
  struct Free {
    Free() noexcept : pooled(false) {}
    explicit Free(bool p) noexcept : pooled(p) {}
    bool pooled;
    void operator()(std::byte* p) const {
      if (pooled) detail::BlockPool::instance().put(p);
      else std::free(p);
    }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace mydfs
