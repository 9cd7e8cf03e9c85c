// Replicator: how a storage group agrees on the order of slot commands. The service hands every
// mutation to submit(); it returns once the command is durable (on this node for the single-node
// replicator, on a majority for Raft) and applied. Reads go to the store directly, after
// read_barrier() says this node may serve them.
#pragma once
#include <mutex>
#include <optional>
#include <unordered_set>

#include <boost/asio.hpp>

#include "common/buffer.h"
#include "common/metrics.h"
#include "common/result.h"
#include "storage/command.h"
#include "storage/slice_store.h"
#include "storage/state_machine.h"

namespace mydfs::storage {

class Replicator {
 public:
  virtual ~Replicator() = default;
  // RESERVE: cmd.loc is chosen here. WRITE_SLOT: data is the slice (written beside the command).
  // PATCH: data is the patch bytes. Others: data is empty.
  virtual boost::asio::awaitable<Result<SlotMeta>> submit(Command cmd, AlignedBuffer data) = 0;
  // OK if this node may serve a linearizable read now; NOT_LEADER (with hint) otherwise.
  virtual boost::asio::awaitable<Status> read_barrier() = 0;
  virtual uint64_t applied_index() const = 0;
  // The log's last index when this member opened: once applied_index() reaches it, no entry
  // written before a restart still waits for bytes in the store (SliceStore::release_open_trims).
  // A replicator that applies its whole log while opening answers 0.
  virtual uint64_t open_log_end() const { return 0; }
  // For reads of transaction state (decisions, pending slots); mutations go through submit().
  virtual const StateMachine& state_machine() const = 0;
  // This member's part in its group, as heartbeats report it.
  struct RoleInfo {
    std::string role = "leader";  // leader | follower | candidate
    uint64_t term = 0;
    std::string leader;           // RPC address of the leader this member knows ("" if none)
    uint64_t commit = 0;          // highest log index known committed
  };
  virtual RoleInfo role_info() const {
    RoleInfo r;
    r.commit = applied_index();  // one node: what is applied is what is committed
    return r;
  }
  virtual void stop() = 0;
};

// What every replicator checks before a mutation is logged: one WRITE_SLOT per slot at a time,
// a repeated identical WRITE_SLOT answered from the slot, the state machine's precheck, and
// room on disk for what the command adds.
class WriteGate {
 public:
  // A SlotMeta: the command is answered already (sent again after a lost answer). nullopt: go on;
  // a WRITE_SLOT then holds its slot until leave().
  Result<std::optional<SlotMeta>> enter(const StateMachine& sm, const Command& cmd, size_t data_len) {
    std::lock_guard g(mu_);
    if (writing_.count(cmd.loc.slot))
      return make_error(Code::CONFLICT, fmt::format("{} is being written", cmd.loc));
    if (auto same = sm.already_written(cmd)) return same;
    MYDFS_TRY(sm.precheck(cmd, data_len));
    MYDFS_TRY(sm.admit(cmd, data_len));
    if (cmd.type == CmdType::WRITE_SLOT) writing_.insert(cmd.loc.slot);
    return std::optional<SlotMeta>{};
  }
  void leave(uint32_t slot) {
    std::lock_guard g(mu_);
    writing_.erase(slot);
  }

 private:
  std::mutex mu_;
  std::unordered_set<uint32_t> writing_;  // slots with a WRITE_SLOT in progress
};

struct LocalReplicatorOptions {
  std::string log_dir;
  uint64_t checkpoint_bytes = 64u << 20;  // checkpoint the store and cut the log past this size
  uint32_t max_batch = 256;               // commands per group commit at most
  uint32_t io_threads = 4;                // threads writing slice payloads
};

// Single node: a write-ahead log with group-commit fsync, a committer thread that logs and
// applies in order, and a small pool for payload writes.
// Opens the log, replays it into the store, and checkpoints; then ready for submit().
Result<std::unique_ptr<Replicator>> open_local_replicator(SliceStore& store, LocalReplicatorOptions opt,
                                                          Metrics* metrics);

}  // namespace mydfs::storage
