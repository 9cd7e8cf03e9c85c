// The tracker's RPC service: thin adapters from wire messages to TrackerState. Reads run on a
// small pool (they may wait for a group commit's fsync to finish), never on the network thread.
#pragma once
#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "tracker/state.h"

namespace mydfs::tracker {

class TrackerService {
 public:
  TrackerService(TrackerState& state, boost::asio::thread_pool& pool) : state_(state), pool_(pool) {}
  void register_routes(proto::RpcServer& server);
  // The cluster as `mydfs admin status --json` and /status show it.
  nlohmann::json status_json() const;

 private:
  proto::NsReply read(const proto::NsReadReq& req) const;
  TrackerState& state_;
  boost::asio::thread_pool& pool_;
};

}  // namespace mydfs::tracker
