#include "cluster.h"

#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "proto/rpc.h"
#include "proto/tracker_messages.h"

namespace mydfs::testing {

using namespace std::chrono_literals;

Cluster::Cluster(std::filesystem::path dir, ClusterOptions opt) : dir_(std::move(dir)), opt_(std::move(opt)) {
  tport_ = free_port();
  thttp_ = free_port();
  std::vector<std::string> targs{"--data", dir_ / "tracker", "--listen", fmt::format("127.0.0.1:{}", tport_),
                                 "--http", fmt::format("127.0.0.1:{}", thttp_), "--heartbeat-ms", "100"};
  int nodes = opt_.groups * opt_.replicas;
  for (int i = 0; i < nodes; ++i) sport_.push_back(free_port());
  for (int g = 0; g < opt_.groups; ++g) {
    std::string addrs;
    for (int k = 0; k < opt_.replicas; ++k)
      addrs += fmt::format("{}127.0.0.1:{}", k ? "," : "", sport_[g * opt_.replicas + k]);
    targs.push_back("--group");
    targs.push_back(fmt::format("{}={}", g + 1, addrs));
  }
  tracker_ = std::make_unique<Daemon>(binary("MYDFS_TRACKER_BIN"), targs, dir_ / "tracker.log");
  tracker_->start();
  if (!wait_for_port(tport_, 20s)) throw std::runtime_error("tracker did not start: " + tracker_->log());
  for (int i = 0; i < nodes; ++i) {
    int g = i / opt_.replicas;
    groups_.push_back(static_cast<uint32_t>(g + 1));
    ids_.push_back(static_cast<uint32_t>(i + 1));
    std::string members;
    if (opt_.replicas > 1) {
      for (int k = 0; k < opt_.replicas; ++k) {
        int j = g * opt_.replicas + k;
        members += fmt::format("{}{}=127.0.0.1:{}", k ? "," : "", j + 1, sport_[j]);
      }
    }
    storage_.push_back(std::make_unique<Daemon>(binary("MYDFS_STORAGE_BIN"), storage_args(i, members),
                                                dir_ / fmt::format("s{}.log", i + 1)));
    start_storage(i);
  }
  // Wait until every group is usable (its heartbeats are in).
  proto::SyncClient t("127.0.0.1", tport_);
  for (int i = 0; i < 400; ++i) {
    auto r = t.call(proto::ClusterStatusReq{});
    if (r.ok()) {
      auto leaders = proto::usable_group_leaders(*r);
      if (leaders.ok() && leaders->size() == static_cast<size_t>(opt_.groups)) return;
    }
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("the storage groups did not become usable");
}

Cluster::~Cluster() = default;

void Cluster::start_storage(int i) {
  storage_[i]->start();
  if (!wait_for_port(sport_[i], 20s)) throw std::runtime_error("storage did not start: " + storage_[i]->log());
}

std::vector<std::string> Cluster::storage_args(int i, const std::string& members) const {
  std::vector<std::string> args{"--data", storage_dir(i), "--listen", fmt::format("127.0.0.1:{}", sport_[i]),
                                "--http", "127.0.0.1:0", "--node-id", std::to_string(ids_[i]), "--group-id",
                                std::to_string(groups_[i]), "--capacity", opt_.capacity, "--tracker",
                                fmt::format("127.0.0.1:{}", tport_), "--tx-timeout-ms",
                                std::to_string(opt_.tx_timeout_ms)};
  if (!members.empty()) args.insert(args.end(), {"--members", members, "--raft-tick-ms", "20"});
  args.insert(args.end(), opt_.storage_args.begin(), opt_.storage_args.end());
  return args;
}

int Cluster::add_member(uint32_t group, uint32_t node_id) {
  int i = static_cast<int>(storage_.size());
  sport_.push_back(free_port());
  groups_.push_back(group);
  ids_.push_back(node_id);
  std::string members;
  for (int j = 0; j <= i; ++j)
    if (groups_[j] == group) members += fmt::format("{}{}=127.0.0.1:{}", members.empty() ? "" : ",", ids_[j], sport_[j]);
  auto args = storage_args(i, members);
  args.push_back("--join");
  storage_.push_back(std::make_unique<Daemon>(binary("MYDFS_STORAGE_BIN"), args, dir_ / fmt::format("s{}.log", i + 1)));
  start_storage(i);
  return i;
}

std::filesystem::path Cluster::storage_dir(int i) const { return dir_ / fmt::format("s{}", i + 1); }

int Cluster::leader(uint32_t group, std::chrono::milliseconds timeout) const {
  auto until = std::chrono::steady_clock::now() + timeout;
  do {
    for (int i = 0; i < static_cast<int>(storage_.size()); ++i) {
      if (groups_[i] != group || !storage_[i]->running()) continue;
      proto::ClientOptions co;
      co.connect_timeout = 200ms;
      co.call_timeout = 500ms;
      proto::SyncClient s("127.0.0.1", sport_[i], co);
      // A STAT passes the read barrier only on a leader a majority confirms; NOT_FOUND is fine.
      auto r = s.call(proto::StatReq{Location{group, 1, 1}});
      if (r.ok() || r.code() == Code::NOT_FOUND || r.code() == Code::STALE || r.code() == Code::DELETED ||
          r.code() == Code::REDIRECT)
        return i;
    }
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < until);
  return -1;
}

std::string Cluster::tracker() const { return fmt::format("127.0.0.1:{}", tport_); }

std::unique_ptr<client::Client> Cluster::client(client::ClientOptions o) const {
  o.tracker = tracker();
  return std::make_unique<client::Client>(o);
}

Result<proto::InfoResp> Cluster::info(int i) const {
  proto::SyncClient s("127.0.0.1", sport_[i]);
  return s.call(proto::InfoReq{});
}

int Cluster::cli(const std::string& args, std::string* out, const std::string& env) const {
  std::string file = dir_ / "cli.out";
  std::string cmd = fmt::format("{} {} --tracker {} {} > {} 2>&1", env, binary("MYDFS_CLI_BIN"), tracker(), args, file);
  int rc = std::system(cmd.c_str());
  if (out) {
    std::ifstream f(file);
    *out = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

Result<Attr> put_bytes(client::Client& c, const std::string& path, const std::string& data) {
  return c.put(path, data.size(), [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
    size_t n = std::min<size_t>(out.size(), data.size() - off);
    std::memcpy(out.data(), data.data() + off, n);
    return n;
  });
}

Result<std::string> get_bytes(client::Client& c, const std::string& path) {
  MYDFS_ASSIGN(Attr a, c.stat(path));
  std::string out;
  MYDFS_ASSIGN(uint64_t total, c.get(a, [&](uint64_t off, std::span<const std::byte> d) -> Status {
    if (out.size() < off + d.size()) out.resize(off + d.size());
    std::memcpy(out.data() + off, d.data(), d.size());
    return ok_status();
  }));
  out.resize(total);
  return out;
}

}  // namespace mydfs::testing
