// RaftNode: a Raft core with its clock, its durable log and its network. One thread runs an
// io_context that owns the core: the tick timer, received messages, proposals and read
// barriers are all posted to it, and after each of them the node processes the core's Ready —
// persist (one write + fdatasync for everything batched since the last one: group commit), send,
// apply — exactly as core.h prescribes.
//
// The application gives three things: a Transport to send messages to peers, an apply function
// (called on the node's thread, in log order, for NORMAL entries), and the snapshot hooks.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include <boost/asio.hpp>

#include "common/result.h"
#include "raft/core.h"
#include "raft/log_store.h"

namespace mydfs::raft {

class Transport {
 public:
  virtual ~Transport() = default;
  // Best effort, must not block: a lost message is Raft's normal business.
  virtual void send(const Message& m) = 0;
};

struct NodeOptions {
  Config raft;
  std::string dir;                              // the Raft log store
  ConfState bootstrap;                          // the members of a new group
  uint64_t applied = 0;                         // the application already holds entries up to here
  std::chrono::milliseconds tick{100};          // one Raft tick
  uint64_t compact_after = 10000;               // entries applied beyond the last snapshot before compacting
  // Application hooks, all called on the node's thread:
  // before_persist(entries) returns once whatever these entries refer to outside the log is
  // durable on this node (storage groups: the slices of WRITE_SLOT entries), so that persisting
  // them, and so acknowledging them, never promises data this node does not have.
  // Returns false only when the member is stopping without the data: then nothing is persisted.
  std::function<bool(const std::vector<Entry>&)> before_persist;
  // before_compact(index): the application makes its state up to index durable; the log is cut
  // there only if it returns OK.
  std::function<Status(uint64_t index)> before_compact;
  // install_snapshot(meta): the application brings its state up to at least meta.index from the
  // leader (entries after meta.index are re-applied on top, so they must be idempotent). The
  // node retries it on failure and persists nothing of that Ready until it succeeds.
  std::function<Status(const SnapshotMeta& meta)> install_snapshot;
  // on_conf(change): a configuration change is about to be persisted here (it takes effect as
  // soon as it is in the log), e.g. to learn an added member's address before messages go to it.
  std::function<void(const ConfChange& change)> on_conf;
};

using ApplyFn = std::function<void(const Entry& e)>;

class RaftNode {
 public:
  static Result<std::unique_ptr<RaftNode>> open(NodeOptions opt, Transport& transport, ApplyFn apply);
  ~RaftNode();

  void start();
  void stop();  // fails every waiting proposal and read; the log stays as it is

  // From any thread.
  void receive(Message m);
  // Appends data; done(index) once the entry is applied on this node, or an error: NOT_LEADER
  // (hint: leader id), or CONFLICT if another entry took its place (a new leader overwrote it:
  // the command did not happen), or UNAVAILABLE when stopping.
  void propose(std::string data, std::function<void(Result<uint64_t>)> done);
  // done(OK) once this node may serve a linearizable read: it is the leader, a majority
  // confirmed it after the call, and everything committed before the call is applied.
  void read_barrier(std::function<void(Status)> done);
  void transfer_leadership(NodeId to, std::function<void(Status)> done);
  void propose_conf(ConfChange cc, std::function<void(Result<uint64_t>)> done);

  struct Info {
    Role role = Role::FOLLOWER;
    uint64_t term = 0;
    NodeId leader = 0;
    uint64_t commit = 0, applied = 0, last_index = 0;
    std::vector<NodeId> voters;  // the configuration in this member's log
  };
  Info info() const;  // any thread
  uint64_t last_index_at_open() const { return last_at_open_; }

 private:
  RaftNode(NodeOptions opt, Transport& transport, ApplyFn apply);
  void on_tick();
  void process();  // drains every Ready
  void fail_waiters(const Error& e);

  NodeOptions opt_;
  Transport& transport_;
  ApplyFn apply_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<Core> core_;  // touched only on io_'s thread

  boost::asio::io_context io_;
  boost::asio::steady_timer ticker_{io_};
  std::thread thread_;
  std::atomic<bool> stopped_{false};

  // Waiters, on io_'s thread only.
  struct Proposal {
    uint64_t term;
    std::function<void(Result<uint64_t>)> done;
  };
  std::map<uint64_t, Proposal> proposals_;  // by log index
  struct Read {
    uint64_t index = 0;  // 0 until the core confirmed it
    std::function<void(Status)> done;
  };
  std::map<uint64_t, Read> reads_;  // by request id
  uint64_t next_read_ = 1;
  uint64_t applied_ = 0;
  uint64_t last_at_open_ = 0;
  Role last_role_ = Role::FOLLOWER;

  mutable std::mutex info_mu_;
  Info info_;
};

}  // namespace mydfs::raft
