// GroupReplicator: the Replicator of a storage group of several members, on Raft (docs/RAFT.md
// "Storage groups"). Commands travel in the Raft log; slice bytes travel beside it:
//
//   leader   WRITE_SLOT: writes the slice into its (still invisible) slot and pushes it to every
//            follower (SLICE_PUSH) at the same time; once the slice is durable on a majority it
//            proposes the command (location, length, checksum). Apply makes the slot visible.
//   follower persists (and so acknowledges) a WRITE_SLOT entry only once the slice it names is
//            durable here: pushed earlier, or fetched now from any member (SLICE_FETCH) by
//            location + checksum.
//
// The leader keeps each slice's bytes in a registry until every follower confirmed it or a
// timeout passed, so a follower that missed the push usually fetches from memory.
// Reads are linearizable: read_barrier() is a Raft read index. Members that do not lead answer
// NOT_LEADER with the leader's RPC address as hint.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "common/metrics.h"
#include "proto/rpc.h"
#include "raft/node.h"
#include "storage/replicator.h"



namespace mydfs::storage {

using raft::NodeId;


struct GroupOptions {
  std::string dir;                             // the Raft log, the decision table, staged slices
  uint32_t group = 0;
  NodeId self = 0;
  std::map<NodeId, std::string> members;       // every member's RPC address, this one included
  bool join = false;                           // joining an existing group: no bootstrap configuration
  std::chrono::milliseconds tick{50};          // one Raft tick
  int election_ticks = 10;                     // election timeout: [10, 20) ticks
  uint64_t compact_after = 4096;               // applied entries between checkpoints (log cuts)
  std::chrono::milliseconds data_timeout{5000};  // a slice must be durable on a majority within this
  std::chrono::milliseconds registry_ttl{30000}; // the leader keeps unconfirmed slices this long
  uint64_t registry_bytes = 512u << 20;          // ... and at most this many bytes of them (oldest go first)
  uint32_t io_threads = 4;
};

class GroupReplicator;

// Opens the Raft log and the decision table; start() joins the group.
Result<std::unique_ptr<GroupReplicator>> open_group_replicator(SliceStore& store, GroupOptions opt,
                                                               boost::asio::io_context& net, Metrics* metrics);

class GroupReplicator final : public Replicator {
 public:
  ~GroupReplicator() override;
  // RAFT_MESSAGE, SLICE_PUSH and SLICE_FETCH for this group.
  void register_routes(proto::RpcServer& server);
  void start();

  boost::asio::awaitable<Result<SlotMeta>> submit(Command cmd, AlignedBuffer data) override;
  boost::asio::awaitable<Status> read_barrier() override;
  uint64_t applied_index() const override { return applied_.load(); }
  uint64_t open_log_end() const override { return replay_through_; }
  const StateMachine& state_machine() const override { return sm_; }
  RoleInfo role_info() const override;
  void stop() override;

  // On the leader: adds a member (cc.context = its RPC address) or removes one; returns the
  // index once the change is committed and applied here.
  boost::asio::awaitable<Result<uint64_t>> change_members(raft::ConfChange cc);
  // Hands leadership to another member (tests, operations).
  boost::asio::awaitable<Status> transfer(NodeId to);
  raft::RaftNode::Info raft_info() const { return node_->info(); }

 private:
  friend Result<std::unique_ptr<GroupReplicator>> open_group_replicator(SliceStore&, GroupOptions,
                                                                        boost::asio::io_context&, Metrics*);
  struct Impl;
  GroupReplicator(SliceStore& store, GroupOptions opt, boost::asio::io_context& net, Metrics* m);
  Status open();
  Error not_leader() const;
  boost::asio::awaitable<Result<SlotMeta>> propose(const Command& cmd, std::span<const std::byte> data);
  boost::asio::awaitable<Status> replicate_slice(const Command& cmd, AlignedBuffer data);
  boost::asio::awaitable<Status> push_to(NodeId id, Command cmd, std::shared_ptr<const AlignedBuffer> bytes);
  boost::asio::awaitable<Result<proto::SlicePushResp>> on_push(proto::SlicePushReq req, AlignedBuffer bulk);
  Result<std::pair<proto::SliceFetchResp, AlignedBuffer>> serve_fetch(const proto::SliceFetchReq& req);
  // Data-path calls to another member: from coroutines on the network thread, or blocking from
  // the Raft node's thread (call_peer).
  Result<std::shared_ptr<proto::RpcClient>> data_client(NodeId id);
  std::vector<NodeId> peers_leader_first() const;  // the other members, the known leader first
  std::string address_of(NodeId id) const;          // "" if unknown
  void learn_member(const raft::ConfChange& cc);
  Result<std::map<NodeId, std::string>> read_members() const;
  Status save_members() const;
  template <typename Req>
  Result<std::pair<typename Req::Response, AlignedBuffer>> call_peer(NodeId id, Req req);
  bool may_write(const Location& loc) const;
  bool newer_bytes(const Location& loc) const;  // a later gen's bytes were written into loc's slot
  void wrote_bytes(const Location& loc);
  bool has_slice(const Command& cmd, bool* sync);
  Status fetch_slice(const Command& cmd, uint64_t index);
  std::string staged_path(const Command& cmd) const;
  // Forgets registry entries older than registry_ttl, and the bytes of the oldest ones beyond
  // registry_bytes (a follower that is down must not make the leader hold every slice). held_mu held.
  void prune_registry(std::chrono::steady_clock::time_point now);
  Result<AlignedBuffer> read_staged(const std::string& path) const;
  // Raft node hooks (its thread).
  bool before_persist(const std::vector<raft::Entry>& entries);
  void apply(const raft::Entry& e);
  Status checkpoint_at(uint64_t index);
  Status install_snapshot(const raft::SnapshotMeta& meta);

  SliceStore& store_;
  StateMachine sm_;
  GroupOptions opt_;
  boost::asio::io_context& net_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<raft::RaftNode> node_;
  std::atomic<uint64_t> applied_{0};
  uint64_t replay_through_ = 0;  // the Raft log's last index when this member opened
  mutable std::mutex members_mu_;
  std::map<NodeId, std::string> members_;  // address book: id -> RPC address (self included)
};

}  // namespace mydfs::storage
