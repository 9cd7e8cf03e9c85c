// The Raft core: a deterministic state machine with no sockets, threads, clocks or files inside.
// The owner drives it and does the I/O:
//
//   tick()                 every tick of its clock (election and heartbeat timeouts count ticks)
//   step(message)          for every message received from a peer
//   propose(data)          on the leader, to append a command
//   ready()                takes what the core produced since the last call: the hard state and
//                          entries to persist, messages to send, committed entries to apply
//   advance(ready)         after the entries and hard state of that Ready are durable
//
// Contract for the owner of a Ready (in this order): install `snapshot` if set; persist
// `hard_state` and `entries` (entries may overwrite the log from entries.front().index on);
// only then send `messages`; apply `committed` in order; call advance(). A message must never
// leave before the state it depends on is durable: that is what makes a vote or an
// acknowledged append survive a crash.
//
// Features: leader election with randomized timeouts, pre-vote and check-quorum (a node that
// heard from a leader within the election timeout refuses to vote for anyone else, and a leader
// that has not heard from a majority for that long steps down); log replication with batching
// and pipelining (a bounded number of APPENDs in flight per follower) and probing after a
// rejection; commit by majority of the current term; snapshots for followers behind the
// compacted log; leader transfer; single-server membership changes (a configuration takes
// effect as soon as it is in a node's log); read index for linearizable reads.
//
// Not thread-safe: the owner serializes every call.
#pragma once
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "raft/types.h"

namespace mydfs::raft {

enum class Role { FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER };
std::string_view role_name(Role r);

struct Config {
  NodeId id = 0;
  int election_ticks = 10;   // a follower campaigns after a random [election, 2 * election) ticks of silence
  int heartbeat_ticks = 1;   // the leader sends heartbeats this often
  bool pre_vote = true;
  bool check_quorum = true;
  size_t max_entries_per_msg = 64;
  size_t max_bytes_per_msg = 1u << 20;
  size_t max_inflight = 16;  // APPENDs in flight per follower while replicating
  uint64_t seed = 0;         // with id, seeds the randomized election timeouts (deterministic)
};

// What was durable when the node stopped (or the bootstrap configuration of a new group).
struct Restored {
  HardState hard_state;
  SnapshotMeta snapshot;       // index 0: none
  std::vector<Entry> entries;  // the log after the snapshot, contiguous from snapshot.index + 1
  ConfState bootstrap;         // configuration before any snapshot or CONF entry
  uint64_t applied = 0;        // the state machine already holds entries up to here (0: the snapshot's index)
};

// A linearizable read may be served once the state machine has applied `index`.
struct ReadState {
  uint64_t request = 0;
  uint64_t index = 0;
};

struct Ready {
  std::optional<HardState> hard_state;
  std::vector<Entry> entries;
  std::optional<SnapshotMeta> snapshot;  // a follower must install the leader's state up to it
  std::string snapshot_data;
  std::vector<Message> messages;
  std::vector<Entry> committed;
  std::vector<ReadState> reads;

  bool empty() const {
    return !hard_state && entries.empty() && !snapshot && messages.empty() && committed.empty() && reads.empty();
  }
};

class Core {
 public:
  Core(Config cfg, Restored state);

  void tick();
  void step(const Message& m);
  // On the leader: appends the command and returns its index. NOT_LEADER otherwise (hint = the
  // leader's id as a decimal string, if known); UNAVAILABLE while a leader transfer runs.
  Result<uint64_t> propose(std::string data);
  // One server at a time: refused (CONFLICT) while an earlier change is not committed.
  Result<uint64_t> propose_conf(ConfChange cc);
  // Hands leadership to a voter: it is caught up, then told to campaign at once.
  Status transfer_leadership(NodeId to);
  // Asks for a linearizable read: a ReadState with `request` arrives in a later Ready once a
  // majority confirmed this leader. NOT_LEADER if this node is not the leader.
  Status read_index(uint64_t request);

  bool has_ready() const;
  // No tick(), step() or propose*() between ready() and its advance().
  Ready ready();
  void advance(const Ready& rd);
  // The application has a snapshot of its state at `index` (applied): drop the log up to it.
  // data is what a follower that needs this snapshot receives (an application descriptor).
  void compact(uint64_t index, std::string data);

  // Inspection.
  NodeId id() const { return cfg_.id; }
  Role role() const { return role_; }
  uint64_t term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId leader() const { return leader_; }
  uint64_t commit() const { return commit_; }
  uint64_t applied() const { return applied_; }
  uint64_t first_index() const { return snap_.index + 1; }
  uint64_t last_index() const { return snap_.index + log_.size(); }
  // Term of the entry at index (the snapshot's term at snap.index); nullopt outside the log.
  std::optional<uint64_t> term_at(uint64_t index) const;
  const Entry* entry(uint64_t index) const;
  const ConfState& conf() const { return conf_; }
  const SnapshotMeta& snapshot() const { return snap_; }
  uint64_t match_of(NodeId peer) const;  // leader only: the peer's known match index

 private:
  enum class ProgressState { PROBE, REPLICATE, SNAPSHOT };
  // The leader's view of one follower.
  struct Progress {
    uint64_t match = 0;
    uint64_t next = 1;
    ProgressState state = ProgressState::PROBE;
    bool probe_sent = false;         // PROBE: one APPEND out, wait for its answer (or a heartbeat's)
    std::deque<uint64_t> inflight;   // REPLICATE: last index of each APPEND in flight
    uint64_t pending_snapshot = 0;   // SNAPSHOT: the index sent
    bool active = false;             // heard from since the last check-quorum round
    uint64_t hb_match = 0;           // match at the previous heartbeat answer (stall detection)
  };

  void become_follower(uint64_t term, NodeId leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(bool pre, bool transfer);
  void reset(uint64_t term);
  void reset_election_timeout();
  bool promotable() const { return conf_.contains(cfg_.id); }
  size_t quorum() const { return conf_.voters.size() / 2 + 1; }
  bool in_lease() const;

  void step_leader(const Message& m);
  void step_candidate(const Message& m);
  void step_follower(const Message& m);
  void handle_vote_request(const Message& m);
  void handle_append(const Message& m);
  void handle_snapshot(const Message& m);
  void handle_append_resp(const Message& m);

  void send(Message m);
  void send_append(NodeId to, bool allow_empty);
  void send_heartbeat(NodeId to);
  void broadcast_append();
  void broadcast_heartbeat();
  bool maybe_commit();
  uint64_t append_local(std::vector<Entry> entries);  // leader: assign indexes, returns the last
  // Follower: entries that follow a matched (index, log_term); conflicting ones replace the suffix.
  void append_from_leader(const std::vector<Entry>& entries);
  void truncate_from(uint64_t index);
  void apply_conf_entries(const std::vector<Entry>& added);
  void rebuild_conf();
  void release_reads();  // hands out the pending reads a majority's acknowledged round covers

  Config cfg_;
  // Persistent state (handed out in Ready::hard_state whenever it changes).
  uint64_t term_ = 0;
  NodeId vote_ = 0;
  uint64_t commit_ = 0;
  HardState last_hs_;  // as last handed out

  // The log: snap_ covers everything up to snap_.index; log_[k] is the entry at snap_.index + 1 + k.
  SnapshotMeta snap_;
  std::string snap_data_;
  std::deque<Entry> log_;
  uint64_t stable_ = 0;      // entries up to here are durable (advance() moves it)
  uint64_t handed_ = 0;      // entries up to here were handed out for persisting
  uint64_t applied_ = 0;     // committed entries up to here were handed out for applying
  std::optional<SnapshotMeta> pending_install_;  // a received snapshot not yet handed out

  // Configuration: the latest in the log (CONF entries take effect when appended).
  ConfState bootstrap_;
  ConfState conf_;
  uint64_t pending_conf_index_ = 0;  // leader: index of the last CONF entry proposed

  Role role_ = Role::FOLLOWER;
  NodeId leader_ = 0;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_timeout_ = 0;
  uint64_t rng_state_ = 0;
  std::map<NodeId, bool> votes_;     // candidate: answers so far
  std::map<NodeId, Progress> prs_;   // leader: every voter but itself
  NodeId transferee_ = 0;            // leader: transfer in progress to this node
  int transfer_elapsed_ = 0;

  // Read index (leader): reads wait for a heartbeat round that a majority acknowledged.
  struct PendingRead {
    uint64_t request, index, round;
  };
  std::deque<PendingRead> pending_reads_;
  uint64_t round_ = 0;                    // heartbeat round counter
  std::map<NodeId, uint64_t> acked_round_;  // per peer: highest round acknowledged

  std::vector<Message> msgs_;
  std::vector<ReadState> reads_;
};

}  // namespace mydfs::raft
