// Builds a namespace operation for tests: type, directory (or inode), name, mode 0644.
#pragma once
#include <string>

#include "proto/fs_types.h"

namespace mydfs::testing {

inline NsOp ns_op(OpType t, uint64_t parent, std::string name) {
  NsOp o;
  o.type = t;
  o.parent = parent;
  o.name = std::move(name);
  o.mode = 0644;
  return o;
}

}  // namespace mydfs::testing
