// Messages of the tracker service (method ids in proto/messages.h). File-system results carry
// an errno in NsReply.err (0 = success): the transport status stays OK for them, and the FUSE
// layer returns -err as it is.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/fs_types.h"
#include "proto/messages.h"

namespace mydfs::proto {

// SYNC: answered once every change the tracker answered before it is in its synced log (fsync,
// fsyncdir and syncfs of a mount; ino, name unused).
enum class NsReadOp : uint8_t { LOOKUP = 1, GETATTR, READLINK, READDIR, GETXATTR, LISTXATTR, STATFS, SYNC };

constexpr uint32_t kMaxReaddir = 4096;

struct NsReply {
  int32_t err = 0;
  Attr attr;
  bool created = false;
  std::vector<Location> released;  // chains no file refers to any more
  std::vector<DirEntry> entries;
  bool eof = false;
  std::string data;                // READLINK target, GETXATTR value
  std::vector<std::string> names;  // LISTXATTR
  uint64_t total_slots = 0, free_slots = 0, inodes = 0, files = 0;  // STATFS
  uint64_t total_bytes = 0, free_bytes = 0;                         // STATFS
  std::vector<Attr> dirs;  // NS_WRITE: the directories whose entries the change changed, after it

  void encode(Writer& w) const;
  void decode(Reader& r);
};

struct NsReadReq {
  static constexpr Method kMethod = Method::NS_READ;
  using Response = NsReply;
  NsReadOp op = NsReadOp::GETATTR;
  uint64_t ino = 0;
  std::string name;
  uint64_t cookie = 0;
  uint32_t max = 256;
  void encode(Writer& w) const { w.u8(static_cast<uint8_t>(op)); w.u64(ino); w.str(name); w.u64(cookie); w.u32(max); }
  void decode(Reader& r) {
    uint8_t o = r.u8();
    if (o < 1 || o > static_cast<uint8_t>(NsReadOp::SYNC)) r.fail();
    op = static_cast<NsReadOp>(o);
    ino = r.u64(); name = r.str(4096); cookie = r.u64(); max = r.u32();
  }
};

// A namespace mutation; the tracker fills in the op's time and new inode id.
struct NsWriteReq {
  static constexpr Method kMethod = Method::NS_WRITE;
  using Response = NsReply;
  NsOp op;
  void encode(Writer& w) const { op.encode(w); }
  void decode(Reader& r) { op.decode(r); }
};

struct RunInfo {
  uint32_t group = 0;
  uint32_t count = 0;
  std::string leader;
};
struct AllocateResp {
  int32_t err = 0;  // ENOSPC when no group can take a run
  std::vector<RunInfo> runs;
  void encode(Writer& w) const;
  void decode(Reader& r);
};
// Where to put n_slices new slices of file ino: runs of consecutive slices per group.
struct AllocateReq {
  static constexpr Method kMethod = Method::ALLOCATE;
  using Response = AllocateResp;
  uint64_t ino = 0;
  uint32_t n_slices = 0;
  uint64_t bytes = 0;  // what the slices will hold in all (0: unknown, as if full)
  void encode(Writer& w) const { w.u64(ino); w.u32(n_slices); w.u64(bytes); }
  void decode(Reader& r) { ino = r.u64(); n_slices = r.u32(); bytes = r.u64(); }
};

struct HeartbeatResp {
  uint32_t interval_ms = 1000;  // when to send the next one
  void encode(Writer& w) const { w.u32(interval_ms); }
  void decode(Reader& r) { interval_ms = r.u32(); }
};
// A slice a storage node reads often (its hot-slice list in heartbeats).
struct HotSlice {
  uint32_t slot = 0, gen = 0;
  uint64_t file_id = 0;         // inode of the owning file
  uint64_t reads = 0;           // since the node started
  uint64_t reads_all_time = 0;
  bool cached = false;          // answered from memory now
  friend bool operator==(const HotSlice&, const HotSlice&) = default;
};

// A storage node's load and health as its heartbeat reports them (for the dashboard and top).
struct NodeLoad {
  static constexpr size_t kMaxHot = 10;
  double qps_1m = 0, bytes_in_per_s = 0, bytes_out_per_s = 0, pool_utilization = 0;
  double cpu_seconds = 0, uptime_seconds = 0;
  uint64_t commit_index = 0, applied_index = 0, rss_bytes = 0;
  uint64_t hot_cache_hits = 0, hot_cache_misses = 0, hot_cache_bytes = 0;
  std::vector<HotSlice> hot;    // most read since start first, at most kMaxHot
  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const NodeLoad&, const NodeLoad&) = default;
};

struct HeartbeatReq {
  static constexpr Method kMethod = Method::HEARTBEAT;
  using Response = HeartbeatResp;
  uint32_t node_id = 0, group_id = 0;
  std::string address, http, role;
  uint64_t term = 0;
  uint32_t free_slots = 0, high_water = 0, capacity_slots = 0, in_flight = 0;
  uint64_t free_bytes = 0, used_bytes = 0, live_bytes = 0;
  double qps = 0;
  bool has_load = true;  // false: the message ends after qps (a node that reports no load)
  NodeLoad load;
  void encode(Writer& w) const;
  void decode(Reader& r);
};

struct AddGroupResp {
  void encode(Writer&) const {}
  void decode(Reader&) {}
};
struct AddGroupReq {
  static constexpr Method kMethod = Method::ADD_GROUP;
  using Response = AddGroupResp;
  uint32_t id = 0;
  std::vector<std::string> addresses;
  void encode(Writer& w) const;
  void decode(Reader& r);
};

// A group's member at old_address is now the node at new_address (after the group's own
// membership change); the tracker logs it and expects heartbeats from the new address.
struct ReplaceMemberResp {
  void encode(Writer&) const {}
  void decode(Reader&) {}
};
struct ReplaceMemberReq {
  static constexpr Method kMethod = Method::REPLACE_MEMBER;
  using Response = ReplaceMemberResp;
  uint32_t id = 0;
  std::string old_address, new_address;
  void encode(Writer& w) const { w.u32(id); w.str(old_address); w.str(new_address); }
  void decode(Reader& r) { id = r.u32(); old_address = r.str(512); new_address = r.str(512); }
};

struct ClusterStatusResp {
  std::string json;  // groups, members, roles, liveness, space, inode counts, events
  void encode(Writer& w) const { w.str(json); }
  void decode(Reader& r) { json = r.str(64u << 20); }
};
struct ClusterStatusReq {
  static constexpr Method kMethod = Method::CLUSTER_STATUS;
  using Response = ClusterStatusResp;
  void encode(Writer&) const {}
  void decode(Reader&) {}
};

// The leader address of every usable group in a cluster status (group id -> HOST:PORT).
Result<std::map<uint32_t, std::string>> usable_group_leaders(const ClusterStatusResp& status);
// The configured members of every group (group id -> RPC addresses), up or not.
std::map<uint32_t, std::vector<std::string>> group_members(const ClusterStatusResp& status);

}  // namespace mydfs::proto
