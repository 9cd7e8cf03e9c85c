// The storage node's RPC service: a thin adapter from wire messages to the Replicator (mutations)
// and the SliceStore (reads). Blocking disk work runs on io_pool, never on the network thread.
#pragma once
#include <boost/asio.hpp>

#include "common/metrics.h"
#include "proto/rpc.h"
#include "storage/replicator.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

class StorageService {
 public:
  StorageService(SliceStore& store, Replicator& repl, boost::asio::thread_pool& io_pool, uint32_t node_id);
  void register_routes(proto::RpcServer& server);

  // Walk logic, shared with tests: headers of consecutive local slices from loc.
  proto::WalkResp walk(Location loc, uint32_t max) const;

 private:
  boost::asio::awaitable<Result<SlotMeta>> mutate(Command cmd, AlignedBuffer data);
  boost::asio::awaitable<Result<proto::ReadResp>> read(const proto::ReadReq& req, proto::Outbound& out);

  SliceStore& store_;
  Replicator& repl_;
  boost::asio::thread_pool& io_pool_;
  uint32_t node_id_;
};

}  // namespace mydfs::storage
