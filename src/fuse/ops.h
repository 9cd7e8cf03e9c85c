// The libfuse low-level callbacks (ops.cc). The session's userdata is the mount's FsState.
#pragma once
#include <fuse_lowlevel.h>

#include <cstddef>

namespace mydfs::fuse {

constexpr size_t kReadChunk = 1 << 20;  // most bytes one read request asks for (max_read)

fuse_lowlevel_ops make_ops();

}  // namespace mydfs::fuse
