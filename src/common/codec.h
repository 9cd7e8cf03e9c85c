// Little-endian message codec. Writer appends; Reader checks every read against the bytes present
// and becomes "failed" (sticky) instead of reading past the end, so a decoder is a straight
// sequence of reads followed by one ok() check.
#pragma once
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/location.h"

namespace mydfs {

class Writer {
 public:
  void u8(uint8_t v) { buf_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put_le(v); }
  void u32(uint32_t v) { put_le(v); }
  void u64(uint64_t v) { put_le(v); }
  void i64(int64_t v) { put_le(static_cast<uint64_t>(v)); }
  void f64(double v) { put_le(std::bit_cast<uint64_t>(v)); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void str(std::string_view s) {  // u32 length + bytes
    u32(static_cast<uint32_t>(s.size()));
    buf_.append(s.data(), s.size());
  }
  void loc(const Location& l) { u32(l.group); u32(l.slot); u32(l.gen); }
  void raw(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }

  const std::string& data() const { return buf_; }
  std::string take() { return std::move(buf_); }
  size_t size() const { return buf_.size(); }

 private:
  template <typename T>
  void put_le(T v) {
    char b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    buf_.append(b, sizeof(T));
  }
  std::string buf_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  Reader(const void* p, size_t n) : in_(static_cast<const char*>(p), n) {}

  uint8_t u8() { return get_le<uint8_t>(); }
  uint16_t u16() { return get_le<uint16_t>(); }
  uint32_t u32() { return get_le<uint32_t>(); }
  uint64_t u64() { return get_le<uint64_t>(); }
  double f64() { return std::bit_cast<double>(get_le<uint64_t>()); }
  int64_t i64() { return static_cast<int64_t>(get_le<uint64_t>()); }
  bool boolean() {
    uint8_t v = u8();
    if (v > 1) failed_ = true;
    return v == 1;
  }
  // Strings longer than max_len fail the reader (they are never legitimate).
  std::string str(size_t max_len = 1 << 20) {
    uint32_t n = u32();
    if (failed_ || n > max_len || n > remaining()) { failed_ = true; return {}; }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  Location loc() { Location l; l.group = u32(); l.slot = u32(); l.gen = u32(); return l; }
  bool raw(void* out, size_t n) {
    if (failed_ || n > remaining()) { failed_ = true; return false; }
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A count of items that each take at least min_item_bytes: rejected if the input could not hold
  // them, so a hostile count never drives a huge allocation.
  uint32_t count(size_t min_item_bytes, uint32_t max_count) {
    uint32_t n = u32();
    if (failed_ || n > max_count || (min_item_bytes && n > remaining() / min_item_bytes)) {
      failed_ = true;
      return 0;
    }
    return n;
  }

  size_t remaining() const { return in_.size() - pos_; }
  bool ok() const { return !failed_; }
  // ok() and every byte consumed: what a complete message decoder demands.
  bool done() const { return !failed_ && pos_ == in_.size(); }
  void fail() { failed_ = true; }

 private:
  template <typename T>
  T get_le() {
    if (failed_ || remaining() < sizeof(T)) { failed_ = true; return T{}; }
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v |= static_cast<T>(static_cast<T>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace mydfs
