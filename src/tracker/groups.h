// Group registry, liveness and placement: the tracker's view of the storage groups
// (docs/ARCHITECTURE.md "Tracker"). Pure logic: no threads, sockets or clocks inside — time comes in as `now` arguments, so the
// daemon and the tests drive it. Not thread-safe: the daemon holds one mutex around every call.
//
// Three kinds of state, with different durability duties:
//  - group definitions (id + member addresses): changed only by add_group, which the daemon writes
//    to its edit log before calling and replays on start; checkpointed by encode()/decode();
//  - liveness (last heartbeat, up/down, leader): soft state rebuilt from heartbeats after a restart;
//    every member starts down until it is heard from;
//  - promises (slots handed out by allocate() that leaders may not have reported yet): soft state,
//    forgotten after promise_ttl.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/codec.h"
#include "proto/tracker_messages.h"

namespace mydfs::tracker {

using TimePoint = std::chrono::steady_clock::time_point;

struct GroupsConfig {
  std::chrono::milliseconds heartbeat_interval{1000};  // how often storage nodes report
  uint32_t missed_heartbeats = 3;      // down after this many intervals without a heartbeat
  std::chrono::milliseconds promise_ttl{3000};  // promises younger than this are not yet in reports
  uint32_t default_run = 3;            // K: consecutive slices per group when the caller passes 0
  uint32_t max_members = 7;            // add_group refuses larger groups
};

// What a storage node sends every heartbeat_interval.
struct Heartbeat {
  uint32_t node_id = 0;
  uint32_t group_id = 0;
  std::string address;       // RPC "HOST:PORT"; must be a configured member of group_id
  std::string http;          // status "HOST:PORT" (for the dashboard's links)
  std::string role;          // "leader" | "follower" | "candidate"
  uint64_t term = 0;         // Raft term the role is claimed in
  uint32_t free_slots = 0;   // slots the node can still allocate (free table + beyond high water)
  uint32_t high_water = 0;   // the store's write pointer
  uint32_t capacity_slots = 0;
  uint64_t free_bytes = 0;   // what new data may still take on the node's disk
  uint64_t used_bytes = 0;   // what the node's slices take on its disk
  uint64_t live_bytes = 0;   // the valid bytes of its slices (used - live: rounding, not yet freed)
  uint32_t in_flight = 0;    // requests being served right now
  double qps = 0;            // requests per second, recent average
  proto::NodeLoad load;      // throughput, indexes, process figures, hot slices (not persisted)
};

struct GroupEvent {
  TimePoint at;
  std::string text;  // e.g. "member 127.0.0.1:7101 of group 2 is down (no heartbeat for 3.0 s)"
};

// One piece of a placement: `count` consecutive slices on `group`, whose leader is `leader`.
struct Run {
  uint32_t group = 0;
  uint32_t count = 0;
  std::string leader;  // RPC address of the group's leader when the run was chosen
  friend bool operator==(const Run&, const Run&) = default;
};

// A member as `mydfs admin status` shows it. The Heartbeat part is the last report (all zero and
// role "" if never heard from; address and group_id are always filled in).
struct MemberStatus : Heartbeat {
  bool up = false;
  bool heard = false;                    // at least one heartbeat since the tracker started
  double seconds_since_heartbeat = -1;   // -1 if never heard from
  bool is_leader = false;                // this member is the group's leader (see leader_address)
};

struct GroupStatus {
  uint32_t id = 0;
  std::vector<MemberStatus> members;  // in configured order
  std::string leader;                 // leader's address, "" if none
  uint64_t free_slots = 0;            // leader's report (0 without a leader)
  uint64_t capacity_slots = 0;        // leader's report (0 without a leader)
  // Bytes: the least any up member can still take (every member holds every slice), and that
  // member's used + free. 0 without a leader.
  uint64_t free_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;            // the leader's report
  uint64_t promised = 0;              // slots promised within the last promise_ttl
  uint64_t promised_bytes = 0;        // bytes promised within the last promise_ttl
  bool usable = false;                // has an up leader: placement may use it
};

class GroupRegistry {
 public:
  static constexpr size_t kMaxEvents = 100;           // events() keeps the most recent ones
  static constexpr uint32_t kMaxSlicesPerAllocate = 1u << 20;
  static constexpr uint32_t kMaxGroups = 1u << 16;    // decode() refuses more

  explicit GroupRegistry(GroupsConfig cfg = {});

  const GroupsConfig& config() const { return cfg_; }

  // --- membership (deterministic: logged and replayed by the daemon) ---

  // BAD_REQUEST: id 0, no addresses, an address that is not HOST:PORT, a duplicate address, more
  // than max_members. CONFLICT: the id exists, or an address belongs to another group.
  Status add_group(uint32_t id, std::vector<std::string> addresses);
  // The member at old_address is replaced by new_address (same place in the member order; its
  // liveness starts over). NOT_FOUND: no such group or member; CONFLICT: new_address belongs to a
  // group; BAD_REQUEST: not HOST:PORT. Replacing an address by itself is a no-op.
  Status replace_member(uint32_t id, const std::string& old_address, const std::string& new_address);
  bool has_group(uint32_t id) const { return groups_.count(id) != 0; }
  std::vector<uint32_t> group_ids() const;  // ascending
  std::vector<std::string> members(uint32_t id) const;  // configured order; empty if no such group

  // Group definitions only (not liveness, not promises), for the fsimage.
  void encode(Writer& w) const;
  // Replaces the group definitions with what r holds and resets all soft state. On malformed or
  // invalid input returns false and leaves *this unchanged (r may be partly consumed).
  bool decode(Reader& r);

  // --- liveness ---

  // NOT_FOUND if address is not a configured member of group_id; BAD_REQUEST for an unknown role.
  // Records the report and marks the member up.
  Status heartbeat(const Heartbeat& hb, TimePoint now);
  // The checker: marks down every up member not heard from for more than
  // missed_heartbeats × heartbeat_interval.
  void check(TimePoint now);
  // Among up members that claim "leader": highest term, then lowest node id.
  std::optional<std::string> leader_address(uint32_t group) const;

  // --- placement ---

  // Splits n_slices (holding `bytes` in all; 0: as if every slice were full) into runs of at most
  // k (0 → default_run) consecutive slices, each on the usable group with room for the most
  // slices: its free bytes (the least of its up members') and free slots (the leader's), each
  // less the promises made since that member's last report (and younger than promise_ttl).
  // Ties go round robin. A run shrinks only when no group can hold it
  // whole. Records a promise per run. NO_SPACE (nothing promised) if the slices do not fit;
  // UNAVAILABLE if no group has a leader (start-up, elections: the caller retries); BAD_REQUEST
  // if n_slices > 2^20.
  Result<std::vector<Run>> allocate(uint64_t file_id, uint32_t n_slices, uint64_t bytes, uint32_t k, TimePoint now);

  // --- reporting ---

  std::vector<GroupStatus> status(TimePoint now) const;  // ascending group id
  std::vector<GroupEvent> events() const;                // oldest first
  void note(TimePoint at, std::string text) { add_event(at, std::move(text)); }  // e.g. checkpoints
  uint64_t total_free_slots() const;      // sum of usable groups' leaders' reports (for statfs)
  uint64_t total_capacity_slots() const;  // likewise
  uint64_t total_free_bytes() const;      // sum of usable groups' free bytes (GroupStatus)
  uint64_t total_capacity_bytes() const;  // likewise

 private:
  struct Member {
    std::string address;   // configured RPC address; immutable
    bool heard = false;    // `last` and `last_seen` are meaningful only once true
    bool up = false;       // set by heartbeat(), cleared by check(); false until first heard
    Heartbeat last;        // most recent report
    TimePoint last_seen{}; // when `last` arrived (never moves backwards)
  };
  struct Group {
    std::vector<Member> members;  // configured order; addresses unique cluster-wide
    // The leader last announced in an event ("" = none), so leader changes are logged once.
    std::string announced_leader;
    uint64_t announced_term = 0;
  };
  struct Promise {
    TimePoint at;
    uint32_t group;
    uint64_t count;  // slices promised to `group` by one allocate() call
    uint64_t bytes;  // and the bytes they are to hold
  };
  struct Room {
    uint64_t free_bytes = 0, capacity_bytes = 0;
    TimePoint reported{};  // when that member's report arrived
  };
  Room room_of(const Group& g) const;  // bytes: the tightest up member

  Status validate_group(uint32_t id, const std::vector<std::string>& addresses, bool check_size) const;
  void insert_group(uint32_t id, std::vector<std::string> addresses);
  const Member* leader_of(const Group& g) const;
  void announce_leader(uint32_t id, Group& g, TimePoint now);
  void add_event(TimePoint at, std::string text);
  struct Promised {
    uint64_t slices = 0, bytes = 0;
  };
  std::map<uint32_t, Promised> promised(TimePoint now) const;  // group → young promises
  void prune_promises(TimePoint now);

  GroupsConfig cfg_;
  std::map<uint32_t, Group> groups_;                      // by id; ids > 0
  std::unordered_map<std::string, uint32_t> group_of_;    // address → group id; mirrors groups_
  std::deque<Promise> promises_;  // append order; entries older than promise_ttl may linger until
                                  // the next allocate()/check() prunes them and are never counted
  std::deque<GroupEvent> events_;  // at most kMaxEvents, oldest first
  uint32_t rr_cursor_ = 0;  // group id of the last placement; ties go to the next id after it
};

}  // namespace mydfs::tracker
