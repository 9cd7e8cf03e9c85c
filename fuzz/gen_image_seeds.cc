// Writes the seed corpus fuzz/seeds/image/ with the tracker's own encoders (not part of tools/fuzz).
// From the repository root:
//   clang++ -std=c++20 -include utility -Isrc -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB fuzz/gen_image_seeds.cc \
//     src/proto/fs_types.cc src/tracker/namespace.cc src/tracker/groups.cc src/common/daemon.cc src/common/metrics.cc \
//     -lspdlog -lfmt -lxxhash -pthread -o build-fuzz/gen_image_seeds && build-fuzz/gen_image_seeds
#include <cstdio>
#include <filesystem>
#include <fstream>
#include "tracker/namespace.h"
#include "tracker/groups.h"
using namespace mydfs;
using namespace mydfs::tracker;
static void put(const std::string& n, const std::string& b) {
  std::filesystem::create_directories("fuzz/seeds/image");
  std::ofstream("fuzz/seeds/image/" + n, std::ios::binary) << b;
}
int main() {
  Namespace empty;
  { Writer w; empty.encode(w); put("namespace-empty", w.take()); }
  Namespace ns;
  uint64_t ino = ns.next_ino();
  auto op = [&](OpType t, uint64_t parent, const char* name, const char* name2 = "") {
    NsOp o; o.type = t; o.parent = parent; o.name = name; o.name2 = name2; o.mode = 0755;
    o.now = {1700000000, 5}; o.new_ino = ino++;
    OpResult res; int e = ns.apply(o, &res);
    if (e) std::fprintf(stderr, "op %d %s: errno %d\n", int(t), name, e);
    return res.attr.ino;
  };
  uint64_t d = op(OpType::MKDIR, kRootIno, "dir");
  op(OpType::CREATE, d, "file");
  op(OpType::SYMLINK, kRootIno, "link", "dir/file");
  GroupRegistry g;
  if (!g.add_group(1, {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}).ok()) std::fprintf(stderr, "add_group\n");
  { Writer w; ns.encode(w); put("namespace-dir-file-symlink", w.take()); }
  { Writer w; g.encode(w); put("groups-one", w.take()); }
  { Writer w; ns.encode(w); g.encode(w); put("image-ns-then-groups", w.take()); }
  return 0;
}
