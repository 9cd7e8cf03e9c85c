// Raft messages over the storage RPC protocol (method RAFT_MESSAGE, docs/PROTOCOL.md): one
// connection per peer, fire and forget. A peer that is down costs a bounded number of calls in
// flight; beyond that messages are dropped, which Raft tolerates.
#pragma once
#include <map>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "proto/rpc.h"
#include "raft/node.h"

namespace mydfs::raft {

class RpcTransport final : public Transport {
 public:
  // peers: node id -> RPC address (HOST:PORT). Calls run on io (the RPC network thread).
  RpcTransport(boost::asio::io_context& io, uint32_t group, std::map<NodeId, std::string> peers);
  void send(const Message& m) override;
  // Adds or moves a peer (a member added by a configuration change); any thread.
  void set_peer(NodeId id, std::string address);
  void close();  // on io's thread or after it stopped

 private:
  struct Peer {
    std::shared_ptr<proto::RpcClient> client;
    size_t in_flight = 0;
  };
  boost::asio::io_context& io_;
  uint32_t group_;
  std::map<NodeId, std::string> addresses_;
  std::map<NodeId, Peer> peers_;  // on io's thread only
};

// Routes RAFT_MESSAGE calls for `group` on server to node.
void route_raft_messages(proto::RpcServer& server, uint32_t group, RaftNode& node);

}  // namespace mydfs::raft
