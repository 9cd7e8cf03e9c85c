#include "common/status.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/result.h"

namespace mydfs {

int to_errno(Code c) {
  switch (c) {
    case Code::OK: return 0;
    case Code::NO_SPACE: return ENOSPC;
    case Code::BAD_REQUEST: return EINVAL;
    case Code::TIMEOUT: return ETIMEDOUT;
    case Code::CONFLICT: return EAGAIN;
    default: return EIO;
  }
}

Error fs_error(int err, std::string_view what) {
  Error e = make_error(Code::FS_ERROR, what.empty() ? std::string(std::strerror(err))
                                                    : fmt::format("{}: {}", what, std::strerror(err)));
  e.sys_errno = err;
  return e;
}

}  // namespace mydfs
