// The storage node's RPC service: a thin adapter from wire messages to the Replicator (mutations)
// and the SliceStore (reads). Blocking disk work runs on io_pool, never on the network thread.
#pragma once
#include <chrono>
#include <optional>
#include <string>

#include <boost/asio.hpp>

#include "common/async.h"
#include "common/metrics.h"
#include "proto/rpc.h"
#include "storage/replicator.h"
#include "storage/slice_stats.h"
#include "storage/slice_store.h"
#include "storage/tx_recovery.h"

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
  // unless it committed; then this group's slots are finished. Runs on io until stopped
  // (TxRecovery, tx_recovery.h).
  void start_tx_recovery(boost::asio::io_context& io, std::string tracker, std::chrono::milliseconds timeout) {
    recovery_.start(io, std::move(tracker), timeout);
  }
  void stop_tx_recovery() { recovery_.stop(); }

 private:
  void register_mutations(proto::RpcServer& s);
  void register_transactions(proto::RpcServer& s);
  void register_reads(proto::RpcServer& s);
  boost::asio::awaitable<Result<SlotMeta>> mutate(Command cmd, AlignedBuffer data);
  // A slot command answered as a SlotResp, a transaction command as a TxDecideResp.
  boost::asio::awaitable<Result<proto::SlotResp>> slot_command(Command cmd, AlignedBuffer data);
  boost::asio::awaitable<Result<proto::TxDecideResp>> tx_command(Command cmd);
  boost::asio::awaitable<Result<proto::ReserveResp>> reserve(const proto::ReserveReq& req);
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
  TxRecovery recovery_;
};

}  // namespace mydfs::storage
