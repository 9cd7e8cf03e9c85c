// StorageDaemon: one storage node (what mydfs-storage runs). StorageConfig holds its options
// with their defaults; validate() checks them the way the command line does; the daemon opens
// the data directory, the store and the replicator, serves RPC and HTTP (/status, /metrics),
// heartbeats to the tracker, and shuts down cleanly.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "common/async.h"
#include "common/daemon.h"
#include "common/parse.h"
#include "common/http_status.h"
#include "common/metrics.h"
#include "common/result.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "raft/types.h"
#include "storage/group_replicator.h"
#include "storage/replicator.h"
#include "storage/service.h"
#include "storage/slice_stats.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

// Every option of a storage node, as the flags of mydfs-storage set them (same defaults).
struct StorageConfig {
  std::string listen = "127.0.0.1:7100";
  std::string http = "127.0.0.1:8100";
  std::string data;
  std::string backend = "volume";
  uint32_t node_id = 1;
  uint32_t group_id = 1;
  uint64_t cluster_id = 1;
  // Most bytes the store takes on disk ("auto": as much as the disk has free, less the reserve).
  std::string capacity = "auto";
  std::string reserve = "1GiB";       // free space on the data directory's file system left alone
  std::string log_level = "info";
  std::string log_file;
  uint32_t io_threads = 4;
  uint64_t checkpoint_mb = 64;
  uint32_t max_in_flight = 64;
  uint32_t frame_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 600000;
  std::string max_frame = "1MiB";
  uint32_t max_batch = 256;
  std::string tracker;    // heartbeats go here ("" = none)
  std::string advertise;  // address the tracker knows this node by (default: --listen)
  uint32_t tx_timeout_ms = 10000;
  std::vector<std::string> members;  // "ID=HOST:PORT" for every member of the group, this one included
  uint32_t tick_ms = 50;
  uint32_t election_ticks = 10;
  uint64_t compact_after = 4096;
  bool join = false;
  std::string metrics = "on";         // on | off: the RPC dispatcher's counting, read counts, hot cache
  uint64_t hot_after = 20;            // reads since start that make a slice hot
  std::string hot_cache = "256MiB";   // memory for hot slices
  uint32_t read_counts_save_s = 60;   // persist all-time read counts this often
  double stats_interval = 0;          // log a stats line this often (0 = never)

  // What validate() reads out of the strings above.
  struct Parsed {
    HostPort listen;
    HostPort http;
    Backend backend = Backend::VOLUME;
    uint32_t positions = 0;                      // address space of the store (the backend's most)
    uint64_t capacity = 0;                       // bytes; 0 = auto
    uint64_t reserve = 0;                        // bytes
    uint64_t max_frame = 0;                      // bytes
    uint64_t hot_cache = 0;                      // bytes
    std::optional<HostPort> tracker;
    std::map<raft::NodeId, std::string> members;  // empty: a group of one
  };
  // Checks every option (not the data directory: open() does). The error's message is the
  // one line mydfs-storage prints before it exits with status 2.
  Result<Parsed> validate() const;
};

class StorageDaemon {
 public:
  explicit StorageDaemon(StorageConfig config);
  StorageDaemon(const StorageDaemon&) = delete;
  StorageDaemon& operator=(const StorageDaemon&) = delete;
  ~StorageDaemon();

  // Validates the config, locks the data directory, opens the store and the replicator, binds
  // the RPC and HTTP ports and starts serving, the periodic work and heartbeats (all on run()).
  // The data directory stays locked until the process exits (lock_data_dir).
  Status open();
  // SIGTERM and SIGINT call stop().
  void stop_on_signals();
  // Runs until stop(), then finishes the shutdown: drains the disk pool, stops the replicator
  // (checkpointing the store) and saves the read counts.
  void run();
  // Stops serving and makes run() return; may be called from any thread, also before run().
  void stop();

  // The /status document (after a successful open(); on the io thread once run() runs).
  nlohmann::json status_json() const;
  // The bound ports (after open(); useful with port 0).
  uint16_t rpc_port() const { return server_ ? server_->port() : 0; }
  uint16_t http_port() const { return http_.port(); }

 private:
  Status open_store();
  void open_slice_stats();
  Status open_replicator();
  void register_gauges();
  Status open_servers();
  void add_http_routes();
  void start_periodic();
  void start_heartbeats();
  boost::asio::awaitable<void> heartbeat_loop(std::shared_ptr<proto::RpcClient> tracker);
  proto::HeartbeatReq heartbeat(double qps);
  void fill_load(proto::NodeLoad& l) const;
  void add_slice_stats_json(nlohmann::json& j) const;
  void save_read_counts();
  void log_stats();
  void shutdown();
  double uptime_seconds() const;

  const StorageConfig config_;
  StorageConfig::Parsed parsed_;
  bool metered_ = false;
  std::unique_ptr<SliceStore> store_;
  Metrics metrics_;
  std::unique_ptr<SliceStats> slice_stats_;
  boost::asio::io_context io_{1};
  std::unique_ptr<Replicator> repl_;
  GroupReplicator* group_ = nullptr;  // repl_, if the group replicates by Raft
  std::unique_ptr<MeteredPool> io_pool_;
  std::unique_ptr<proto::RpcServer> server_;
  std::unique_ptr<StorageService> service_;
  HttpStatusServer http_{io_};
  std::chrono::steady_clock::time_point started_;
  std::string advertise_;
  boost::asio::steady_timer save_timer_{io_};
  std::atomic<bool> saving_{false};
  boost::asio::steady_timer stats_timer_{io_};
  boost::asio::steady_timer trim_timer_{io_};
  std::atomic<bool> trimming_{false};
  bool open_trims_released_ = false;  // touched on the pool while trimming_ is held, and at stop
  void release_open_trims();
  boost::asio::steady_timer heartbeat_timer_{io_};
  boost::asio::signal_set signals_{io_};
};

}  // namespace mydfs::storage
