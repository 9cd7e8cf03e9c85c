// Result<T>: a value or an Error. The data path does not throw; every fallible call returns one of
// these and callers propagate with MYDFS_TRY / MYDFS_CO_TRY.
#pragma once
#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "common/location.h"
#include "common/status.h"

namespace mydfs {

struct Error {
  Code code = Code::INTERNAL;
  std::string message;
  std::string hint;    // NOT_LEADER: address of the likely leader ("" if unknown)
  Location target;     // REDIRECT: where the slot's content moved
  int sys_errno = 0;   // FS_ERROR: the errno; otherwise 0, or one that overrides the code's (to_errno)

  std::string to_string() const {
    if (message.empty()) return std::string(code_name(code));
    return fmt::format("{}: {}", code_name(code), message);
  }
};

inline Error make_error(Code c, std::string msg = {}) { return Error{c, std::move(msg), {}, {}, 0}; }

// A file-system error: code FS_ERROR with err as its errno; the message is strerror(err), after
// "what: " if what is given.
Error fs_error(int err, std::string_view what = {});

// The errno that stands for e wherever an errno is answered (the mount, the tracker's namespace
// replies): e.sys_errno if set, else the code's (to_errno(Code)).
inline int to_errno(const Error& e) { return e.sys_errno != 0 ? e.sys_errno : to_errno(e.code); }

template <typename T>
class [[nodiscard]] Result {
 public:
  // An error result; exists because Asio's co_spawn needs a default-constructible value type.
  Result() : v_(std::in_place_index<1>, Error{Code::INTERNAL, "no result", {}, {}, 0}) {}
  Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  Error&& take_error() { assert(!ok()); return std::get<1>(std::move(v_)); }
  Code code() const { return ok() ? Code::OK : error().code; }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace mydfs

#define MYDFS_CONCAT_(a, b) a##b
#define MYDFS_CONCAT(a, b) MYDFS_CONCAT_(a, b)

// Evaluate expr (a Result); on error return the error from the enclosing function.
#define MYDFS_TRY(expr)                                              \
  do {                                                               \
    auto&& MYDFS_CONCAT(r_, __LINE__) = (expr);                       \
    if (!MYDFS_CONCAT(r_, __LINE__).ok())                             \
      return MYDFS_CONCAT(r_, __LINE__).take_error();                 \
  } while (0)

#define MYDFS_CO_TRY(expr)                                           \
  do {                                                               \
    auto&& MYDFS_CONCAT(r_, __LINE__) = (expr);                       \
    if (!MYDFS_CONCAT(r_, __LINE__).ok())                             \
      co_return MYDFS_CONCAT(r_, __LINE__).take_error();              \
  } while (0)

// Declare `var` from a Result expression, returning the error if there is one.
#define MYDFS_ASSIGN(var, expr)                                      \
  auto MYDFS_CONCAT(r_, __LINE__) = (expr);                           \
  if (!MYDFS_CONCAT(r_, __LINE__).ok())                               \
    return MYDFS_CONCAT(r_, __LINE__).take_error();                   \
  var = std::move(MYDFS_CONCAT(r_, __LINE__)).value()

#define MYDFS_CO_ASSIGN(var, expr)                                   \
  auto MYDFS_CONCAT(r_, __LINE__) = (expr);                           \
  if (!MYDFS_CONCAT(r_, __LINE__).ok())                               \
    co_return MYDFS_CONCAT(r_, __LINE__).take_error();                \
  var = std::move(MYDFS_CONCAT(r_, __LINE__)).value()
