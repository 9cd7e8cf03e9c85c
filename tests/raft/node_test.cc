// RaftNode over real loopback sockets: three members elect a leader, replicate and apply in the
// same order, survive the leader's stop, and a restarted member catches up from its log.
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "common/metrics.h"
#include "raft/rpc_transport.h"
#include "../support/temp_dir.h"

namespace mydfs::raft {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

uint16_t pick_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// One member: an RPC server and transport on a network thread, and its RaftNode.
struct Member {
  Member(NodeId id, const std::string& dir, const std::map<NodeId, uint16_t>& ports) : id(id) {
    std::map<NodeId, std::string> peers;
    for (auto [p, port] : ports)
      if (p != id) peers[p] = fmt::format("127.0.0.1:{}", port);
    transport = std::make_unique<RpcTransport>(io, 1, peers);
    server = std::make_unique<proto::RpcServer>(io, proto::ServerOptions{}, &metrics, "test");
    NodeOptions o;
    o.raft.id = id;
    o.raft.seed = 7;
    o.dir = dir;
    for (auto [p, port] : ports) o.bootstrap.voters.push_back(p);
    o.tick = 20ms;
    auto n = RaftNode::open(o, *transport, [this](const Entry& e) {
      std::lock_guard g(mu);
      applied.push_back(e.data);
    });
    if (!n.ok()) throw std::runtime_error(n.error().to_string());
    node = std::move(n).value();
    route_raft_messages(*server, 1, *node);
    if (!server->listen("127.0.0.1", ports.at(id)).ok()) throw std::runtime_error("listen");
    server->start();
    work.emplace(io.get_executor());
    net = std::thread([this] { io.run(); });
    node->start();
  }
  ~Member() {
    node->stop();
    asio::post(io, [this] {
      server->stop();
      transport->close();
    });
    work.reset();
    io.stop();
    net.join();
  }
  std::vector<std::string> log() {
    std::lock_guard g(mu);
    return applied;
  }
  Result<uint64_t> propose(std::string s) {
    std::promise<Result<uint64_t>> p;
    node->propose(std::move(s), [&](Result<uint64_t> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  Status barrier() {
    std::promise<Status> p;
    node->read_barrier([&](Status s) { p.set_value(std::move(s)); });
    return p.get_future().get();
  }

  NodeId id;
  Metrics metrics;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<RpcTransport> transport;
  std::unique_ptr<proto::RpcServer> server;
  std::unique_ptr<RaftNode> node;
  std::thread net;
  std::mutex mu;
  std::vector<std::string> applied;
};

class RaftNodeTest : public ::testing::Test {
 protected:
  RaftNodeTest() {
    for (NodeId id = 1; id <= 3; ++id) ports_[id] = pick_port();
    for (NodeId id = 1; id <= 3; ++id) start(id);
  }
  void start(NodeId id) { members_[id] = std::make_unique<Member>(id, dir_.path() + fmt::format("/n{}", id), ports_); }
  // The one leader all live members agree on, within the timeout.
  NodeId wait_leader(std::chrono::milliseconds timeout = 5s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      for (auto& [id, m] : members_)
        if (m && m->node->info().role == Role::LEADER) return id;
      std::this_thread::sleep_for(10ms);
    }
    return 0;
  }
  bool wait_applied(NodeId id, size_t n, std::chrono::milliseconds timeout = 5s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (members_[id]->log().size() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  mydfs::testing::TempDir dir_;
  std::map<NodeId, uint16_t> ports_;
  std::map<NodeId, std::unique_ptr<Member>> members_;
};

TEST_F(RaftNodeTest, electsReplicatesAndAppliesInOneOrder) {
  NodeId leader = wait_leader();
  ASSERT_NE(leader, 0u);
  for (int i = 0; i < 200; ++i) {
    auto r = members_[leader]->propose("cmd-" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
  for (NodeId id = 1; id <= 3; ++id) {
    ASSERT_TRUE(wait_applied(id, 200)) << "member " << id;
    EXPECT_EQ(members_[id]->log(), members_[leader]->log());
  }
  EXPECT_TRUE(members_[leader]->barrier().ok());
  NodeId follower = leader % 3 + 1;
  auto r = members_[follower]->propose("not here");
  EXPECT_EQ(r.code(), Code::NOT_LEADER);
  EXPECT_EQ(r.error().hint, std::to_string(leader));
  EXPECT_EQ(members_[follower]->barrier().code(), Code::NOT_LEADER);
}

TEST_F(RaftNodeTest, leaderStops_othersElectAndGoOn_restartedMemberCatchesUp) {
  NodeId old = wait_leader();
  ASSERT_NE(old, 0u);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(members_[old]->propose("a" + std::to_string(i)).ok());
  members_[old].reset();  // stopped: its log stays on disk
  NodeId now = wait_leader();
  ASSERT_NE(now, 0u);
  ASSERT_NE(now, old);
  for (int i = 0; i < 50; ++i) {
    auto r = members_[now]->propose("b" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
  start(old);
  ASSERT_TRUE(wait_applied(old, 100, 10s));
  EXPECT_EQ(members_[old]->log(), members_[now]->log());
}

}  // namespace
}  // namespace mydfs::raft
