// libFuzzer target for the tracker's fsimage decoders: tracker/namespace.h (Namespace::decode) and
// tracker/groups.h (GroupRegistry::decode).
//
// The whole input is given, each through its own Reader, to
//   * Namespace::decode alone,
//   * GroupRegistry::decode alone,
//   * Namespace::decode then GroupRegistry::decode on one Reader (the fsimage body as
//     tracker/state.cc reads it, after its u64 log index).
// MYDFS_FUZZ_SKIP names (fuzz_check.h): walk (the readdir/lookup walk), lookup (only its "lookup
// succeeds" check; the walk itself still runs).
// Properties, besides "no crash, no hang, no leak, no sanitizer report":
//   * whatever decodes (decode returns true and the Reader is done) re-encodes, that encoding
//     decodes again (true, done) and re-encodes to the same bytes; the Namespace also compares
//     equal (operator==) to its re-decoded copy.
//   * GroupRegistry::decode that fails leaves the registry unchanged (its encoding is the same).
//   * on a decoded namespace, a walk from kRootIno with readdir (paged, at most kMaxWalk entries in
//     all, each directory once) finds only entries whose lookup(dir, name) succeeds and names
//     the inode readdir gave.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "fuzz_check.h"
#include "proto/fs_types.h"
#include "tracker/groups.h"
#include "tracker/namespace.h"

namespace mydfs::tracker {
namespace {

using fuzz::hex;

constexpr size_t kMaxWalk = 10000;  // directory entries visited per input, in all
constexpr uint32_t kPage = 64;      // readdir page size (small, so paging is exercised)

template <typename T>
std::string encode_of(const T& t) {
  Writer w;
  t.encode(w);
  return w.take();
}

void walk(const Namespace& ns) {
  if (fuzz::skipped("walk")) return;
  std::unordered_set<uint64_t> seen{kRootIno};
  std::deque<uint64_t> dirs{kRootIno};
  size_t visited = 0;
  while (!dirs.empty() && visited < kMaxWalk) {
    uint64_t dir = dirs.front();
    dirs.pop_front();
    uint64_t cookie = 0;
    for (;;) {
      std::vector<DirEntry> page;
      bool eof = false;
      int e = ns.readdir(dir, cookie, kPage, &page, &eof);
      if (e != 0) break;  // not a directory (the root of a broken image may be a file)
      for (const auto& de : page) {
        if (++visited > kMaxWalk) return;
        Attr a;
        int le = ns.lookup(dir, de.name, &a);
        if (!fuzz::skipped("lookup"))
          FUZZ_CHECK(le == 0 && a.ino == de.ino,
                     fmt::format("lookup of readdir entry '{}' (ino {}) in dir {} gives errno {} ino {}",
                                 hex(de.name, 64), de.ino, dir, le, le == 0 ? a.ino : 0));
        if (le == 0 && a.type == FileType::DIR && de.name != "." && de.name != ".." && seen.insert(a.ino).second)
          dirs.push_back(a.ino);
      }
      if (eof || page.empty()) break;
      uint64_t next = page.back().cookie;
      if (next <= cookie) break;  // no progress: stop rather than loop
      cookie = next;
    }
  }
}

void check_namespace(const Namespace& ns, std::string_view in) {
  std::string e1 = encode_of(ns);
  Namespace again;
  Reader r2(e1);
  FUZZ_CHECK(again.decode(r2) && r2.done(), "re-encoded namespace does not decode: " + hex(e1) + "\n  from " + hex(in));
  std::string e2 = encode_of(again);
  FUZZ_CHECK(e2 == e1, "namespace second round trip differs:\n  e1 " + hex(e1) + "\n  e2 " + hex(e2));
  FUZZ_CHECK(again == ns, "re-decoded namespace is not == the decoded one: " + hex(in));
  walk(ns);
}

void check_groups(const GroupRegistry& g, std::string_view in) {
  std::string e1 = encode_of(g);
  GroupRegistry again;
  Reader r2(e1);
  FUZZ_CHECK(again.decode(r2) && r2.done(), "re-encoded groups do not decode: " + hex(e1) + "\n  from " + hex(in));
  std::string e2 = encode_of(again);
  FUZZ_CHECK(e2 == e1, "groups second round trip differs:\n  e1 " + hex(e1) + "\n  e2 " + hex(e2));
}

void one(std::string_view in) {
  {
    Namespace ns;
    Reader r(in);
    if (ns.decode(r) && r.done()) check_namespace(ns, in);
  }
  {
    GroupRegistry g;
    // A registry with one group already in it, to see that a failed decode leaves it unchanged.
    FUZZ_CHECK(g.add_group(7, {"127.0.0.1:7001", "127.0.0.1:7002"}).ok(), "add_group of the baseline failed");
    std::string before = encode_of(g);
    Reader r(in);
    bool ok = g.decode(r);
    if (!ok) FUZZ_CHECK(encode_of(g) == before, "failed GroupRegistry::decode changed the registry: " + hex(in));
    if (ok && r.done()) check_groups(g, in);
  }
  {
    Namespace ns;
    GroupRegistry g;
    Reader r(in);
    if (ns.decode(r) && g.decode(r) && r.done()) {
      check_namespace(ns, in);
      check_groups(g, in);
    }
  }
}

}  // namespace
}  // namespace mydfs::tracker

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mydfs::tracker::one(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
