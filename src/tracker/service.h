// The tracker's RPC service: thin adapters from wire messages to TrackerState. Reads run on a
// small pool (they may wait for a group commit's fsync to finish), never on the network thread.
#pragma once
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/async.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "tracker/state.h"

namespace mydfs::tracker {

class TrackerService {
 public:
  TrackerService(TrackerState& state, MeteredPool& pool) : state_(state), pool_(pool) {}
  void register_routes(proto::RpcServer& server);
  // The cluster as `mydfs admin status --json` and /status show it.
  nlohmann::json status_json() const;
  // The tracker process's own figures (rates, memory), added to status_json() as "tracker".
  void set_self_status(std::function<nlohmann::json()> f) { self_status_ = std::move(f); }
  static constexpr size_t kMaxHotSlices = 20;  // status_json()'s hot_slices list at most

 private:
  proto::NsReply read(const proto::NsReadReq& req) const;
  void register_namespace_routes(proto::RpcServer& server);  // NS_READ, NS_WRITE, ALLOCATE
  void register_cluster_routes(proto::RpcServer& server);    // HEARTBEAT, groups, status
  boost::asio::awaitable<Result<proto::AllocateResp>> allocate(const proto::AllocateReq& req);
  TrackerState& state_;
  MeteredPool& pool_;
  std::function<nlohmann::json()> self_status_;
  // Paths of hot slices' files, looked up again at most every kPathTtl: naming an inode scans
  // every directory, and the dashboard asks every second.
  static constexpr std::chrono::seconds kPathTtl{10};
  mutable std::mutex paths_mu_;
  mutable std::map<uint64_t, std::pair<std::string, std::chrono::steady_clock::time_point>> paths_;
};

}  // namespace mydfs::tracker
