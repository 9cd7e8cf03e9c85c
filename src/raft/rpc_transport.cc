#include "raft/rpc_transport.h"

#include "common/parse.h"

namespace mydfs::raft {

namespace asio = boost::asio;

namespace {
constexpr size_t kMaxInFlight = 256;
}

RpcTransport::RpcTransport(asio::io_context& io, uint32_t group, std::map<NodeId, std::string> peers)
    : io_(io), group_(group), addresses_(std::move(peers)) {}

void RpcTransport::send(const Message& m) {
  Writer w;
  m.encode(w);
  proto::RaftMessageReq req{group_, w.take()};
  asio::post(io_, [this, to = m.to, req = std::move(req)]() mutable {
    auto addr = addresses_.find(to);
    if (addr == addresses_.end()) return;
    Peer& p = peers_[to];
    if (!p.client) {
      auto hp = parse_host_port(addr->second);
      if (!hp.ok()) return;
      proto::ClientOptions co;
      co.connect_timeout = std::chrono::milliseconds(500);
      co.call_timeout = std::chrono::milliseconds(2000);
      co.max_payload = 96u << 20;
      p.client = std::make_shared<proto::RpcClient>(io_.get_executor(), hp->host, hp->port, co);
    }
    if (p.in_flight >= kMaxInFlight) return;
    ++p.in_flight;
    auto client = p.client;
    asio::co_spawn(io_, client->call(req), [this, to](std::exception_ptr, Result<proto::RaftMessageResp>) {
      auto it = peers_.find(to);
      if (it != peers_.end() && it->second.in_flight) --it->second.in_flight;
    });
  });
}

void RpcTransport::set_peer(NodeId id, std::string address) {
  asio::post(io_, [this, id, address = std::move(address)]() mutable {
    auto it = addresses_.find(id);
    if (it != addresses_.end() && it->second == address) return;
    addresses_[id] = std::move(address);
    if (auto p = peers_.find(id); p != peers_.end()) {
      if (p->second.client) p->second.client->close();
      peers_.erase(p);
    }
  });
}

void RpcTransport::close() {
  for (auto& [id, p] : peers_)
    if (p.client) p.client->close();
}

void route_raft_messages(proto::RpcServer& server, uint32_t group, RaftNode& node) {
  server.route<proto::RaftMessageReq>(
      [group, &node](proto::RaftMessageReq req, proto::Inbound&, proto::Outbound&)
          -> asio::awaitable<Result<proto::RaftMessageResp>> {
        if (req.group != group)
          co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}, not {}", group, req.group));
        Reader r(req.message);
        Message m;
        m.decode(r);
        if (!r.done()) co_return make_error(Code::BAD_REQUEST, "malformed Raft message");
        node.receive(std::move(m));
        co_return proto::RaftMessageResp{};
      });
}

}  // namespace mydfs::raft
