// The storage node's RPC service: a thin adapter from wire messages to the Replicator (mutations)
// and the SliceStore (reads). Blocking disk work runs on io_pool, never on the network thread.
#pragma once
#include <chrono>
#include <map>
#include <optional>

#include <boost/asio.hpp>

#include "common/async.h"
#include "common/metrics.h"
#include "proto/rpc.h"
#include "storage/replicator.h"
#include "storage/slice_stats.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

class StorageService {
 public:
  StorageService(SliceStore& store, Replicator& repl, MeteredPool& io_pool, uint32_t node_id);
  void register_routes(proto::RpcServer& server);
  // Counts reads per slice and answers hot slices from memory (null: neither). Set before start.
  void set_slice_stats(SliceStats* stats) { stats_ = stats; }

  // Walk logic, shared with tests: headers of consecutive local slices from loc.
  proto::WalkResp walk(Location loc, uint32_t max) const;

  // Participant recovery: every transaction holding slots here longer than timeout is resolved
  // by asking its primary group (found through the tracker) for the decision, aborting it there
  // unless it committed; then this group's slots are finished. Runs on io until stopped.
  void start_tx_recovery(boost::asio::io_context& io, std::string tracker, std::chrono::milliseconds timeout);
  void stop_tx_recovery();

 private:
  boost::asio::awaitable<Result<proto::TxDecideResp>> decide(uint64_t txid, proto::TxDecision want);
  boost::asio::awaitable<Result<proto::TxDecideResp>> finish(uint64_t txid, proto::TxDecision d);
  boost::asio::awaitable<void> tx_recovery_loop();
  boost::asio::awaitable<Result<proto::TxDecideResp>> resolve(uint64_t txid, uint32_t primary);
  boost::asio::awaitable<Result<std::shared_ptr<proto::RpcClient>>> leader_of(uint32_t group);

  boost::asio::awaitable<Result<SlotMeta>> mutate(Command cmd, AlignedBuffer data);
  boost::asio::awaitable<Result<proto::ReadResp>> read(const proto::ReadReq& req, proto::Outbound& out);
  // A read of a hot slice: from the cache, loading it there first if needed. nullopt: serve it
  // from the store instead (the slice changed under the load, or is not cacheable).
  boost::asio::awaitable<std::optional<Result<proto::ReadResp>>> read_hot(const proto::ReadReq& req,
                                                                           const proto::SlotMeta& m,
                                                                           proto::Outbound& out);

  SliceStore& store_;
  Replicator& repl_;
  MeteredPool& io_pool_;
  uint32_t node_id_;
  SliceStats* stats_ = nullptr;
  // Recovery state, touched only on the io_context's thread.
  std::string tracker_address_;
  std::chrono::milliseconds tx_timeout_{10000};
  std::optional<boost::asio::steady_timer> recovery_timer_;
  std::map<uint64_t, std::chrono::steady_clock::time_point> first_seen_;
  std::shared_ptr<proto::RpcClient> tracker_;
  std::map<uint32_t, std::string> leaders_;
  std::map<std::string, std::shared_ptr<proto::RpcClient>> peers_;
};

}  // namespace mydfs::storage
