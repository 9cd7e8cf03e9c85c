// A real cluster for client tests: one tracker and N storage groups of R members on loopback,
// started as processes and always stopped by PID when the Cluster goes away (even when a test
// fails). Group g (1-based) is storage((g - 1) * R) ... storage(g * R - 1); node ids are the
// storage index + 1.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "harness.h"
#include "proto/messages.h"

namespace mydfs::testing {

struct ClusterOptions {
  int groups = 2;
  std::string capacity = "512MiB";  // per storage node
  uint32_t tx_timeout_ms = 10000;   // --tx-timeout-ms of the storage nodes
  int replicas = 1;                 // members per group (more than one: Raft)
  std::vector<std::string> storage_args;  // extra flags for every storage node
};

class Cluster {
 public:
  Cluster(std::filesystem::path dir, ClusterOptions opt);
  ~Cluster();

  std::string tracker() const;
  uint16_t tracker_http_port() const { return thttp_; }  // the tracker's HTTP port (/, /status, /metrics)
  std::unique_ptr<client::Client> client(client::ClientOptions o = {}) const;
  Daemon& storage(int i) { return *storage_[i]; }
  int storage_count() const { return static_cast<int>(storage_.size()); }
  uint16_t storage_port(int i) const { return sport_[i]; }
  std::filesystem::path storage_dir(int i) const;
  // The storage index of group g's leader (one that a majority confirms), -1 if none answers
  // within timeout.
  int leader(uint32_t group, std::chrono::milliseconds timeout) const;
  // Starts a new node (id node_id, a new port) that joins group g (--join), its --members naming
  // the group's current members and itself; returns its storage index. It becomes a member once
  // `mydfs admin replace-member` (or a MEMBER_CHANGE) adds it.
  int add_member(uint32_t group, uint32_t node_id);
  uint32_t group_of(int i) const { return groups_[i]; }
  uint32_t node_id(int i) const { return ids_[i]; }
  void start_storage(int i);  // after kill9(): start again on the same port and data
  // INFO of node i (slots, pending transaction slots, recorded decisions).
  Result<proto::InfoResp> info(int i) const;
  // Runs the mydfs CLI against this cluster with a shell command line; returns its exit code and
  // puts stdout+stderr in *out. env: "NAME=value ..." prefix.
  int cli(const std::string& args, std::string* out = nullptr, const std::string& env = "") const;

 private:
  std::filesystem::path dir_;
  ClusterOptions opt_;
  uint16_t tport_ = 0;
  uint16_t thttp_ = 0;
  std::vector<uint16_t> sport_;
  std::vector<uint32_t> groups_;  // by storage index
  std::vector<uint32_t> ids_;     // node id by storage index
  std::vector<std::string> storage_args(int i, const std::string& members) const;
  std::unique_ptr<Daemon> tracker_;
  std::vector<std::unique_ptr<Daemon>> storage_;
};

std::string random_bytes(size_t n, uint64_t seed);
Result<Attr> put_bytes(client::Client& c, const std::string& path, const std::string& data);
Result<std::string> get_bytes(client::Client& c, const std::string& path);

}  // namespace mydfs::testing
