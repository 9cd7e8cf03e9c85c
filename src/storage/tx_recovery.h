// A participant's recovery of transactions (docs/ARCHITECTURE.md "Recovery of a transaction"):
// every transaction holding slots here longer than the timeout since this node first saw it
// (after a restart: since then) is resolved by asking its primary group — found through the
// tracker — for TX_DECIDE(abort): the primary answers the recorded decision if there is one, else
// records the abort. This group's slots are then finished with that decision. Only the group's
// leader resolves (the others would only hear NOT_LEADER).
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio.hpp>

#include "common/async.h"
#include "proto/messages.h"
#include "proto/rpc.h"
#include "storage/replicator.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

class TxRecovery {
 public:
  TxRecovery(SliceStore& store, Replicator& repl, MeteredPool& io_pool);
  // Checks every quarter of timeout (50 ms to 1 s) on io until stopped. tracker: its address.
  void start(boost::asio::io_context& io, std::string tracker, std::chrono::milliseconds timeout);
  void stop();

 private:
  boost::asio::awaitable<void> loop();
  // One check: resolves the transactions pending here for the whole timeout.
  boost::asio::awaitable<void> check();
  boost::asio::awaitable<Result<proto::TxDecideResp>> resolve(uint64_t txid, uint32_t primary);
  boost::asio::awaitable<Result<std::shared_ptr<proto::RpcClient>>> leader_of(uint32_t group);
  // leaders_ from the tracker (when a group is not in it).
  boost::asio::awaitable<Status> refresh_leaders();
  boost::asio::awaitable<Result<proto::TxDecideResp>> submit(Command cmd);

  SliceStore& store_;
  Replicator& repl_;
  MeteredPool& io_pool_;
  // Touched only on the io_context's thread.
  std::string tracker_address_;
  std::chrono::milliseconds timeout_{10000};
  std::optional<boost::asio::steady_timer> timer_;
  std::map<uint64_t, std::chrono::steady_clock::time_point> first_seen_;
  std::shared_ptr<proto::RpcClient> tracker_;
  std::map<uint32_t, std::string> leaders_;
  std::map<std::string, std::shared_ptr<proto::RpcClient>> peers_;
};

}  // namespace mydfs::storage
