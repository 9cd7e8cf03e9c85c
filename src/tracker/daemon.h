// TrackerDaemon: the tracker process (what mydfs-tracker runs). TrackerConfig holds its options
// with their defaults; validate() checks them the way the command line does; the daemon opens
// the namespace state, bootstraps the configured groups, serves RPC and HTTP (/status, /metrics,
// the dashboard at /), marks silent members down, and shuts down cleanly.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
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
#include "tracker/service.h"
#include "tracker/state.h"

namespace mydfs::tracker {

// Every option of the tracker, as the flags of mydfs-tracker set them (same defaults).
struct TrackerConfig {
  std::string listen = "127.0.0.1:7000";
  std::string http = "127.0.0.1:8000";
  std::string data;
  std::string log_level = "info";
  std::string log_file;
  std::vector<std::string> groups;  // "ID=HOST:PORT[,HOST:PORT...]": groups to bootstrap
  uint32_t heartbeat_ms = 1000;
  uint32_t missed_heartbeats = 3;
  uint32_t default_run = 3;
  uint32_t read_threads = 4;
  uint64_t checkpoint_ops = 1000000;
  uint64_t checkpoint_seconds = 3600;
  uint32_t sync_delay_ms = 50;  // the edit log is fsynced at most this long after a change is answered (0: before)
  double stats_interval = 0;  // log a stats line this often (0 = never)

  // What validate() reads out of the strings above.
  struct Parsed {
    HostPort listen;
    HostPort http;
    std::vector<std::pair<uint32_t, std::vector<std::string>>> groups;  // id, member addresses
  };
  // Checks every option (not the data directory: open() does). The error's message is the
  // one line mydfs-tracker prints before it exits with status 2.
  Result<Parsed> validate() const;
};

class TrackerDaemon {
 public:
  explicit TrackerDaemon(TrackerConfig config);
  TrackerDaemon(const TrackerDaemon&) = delete;
  TrackerDaemon& operator=(const TrackerDaemon&) = delete;
  ~TrackerDaemon();

  // Validates the config, locks the data directory, opens the state (image + edit log), adds
  // the configured groups the log does not know yet, binds the RPC and HTTP ports and starts
  // serving and the periodic work (all on run()).
  // The data directory stays locked until the process exits (lock_data_dir).
  Status open();
  // SIGTERM and SIGINT call stop().
  void stop_on_signals();
  // Runs until stop(), then finishes the shutdown: drains the read pool, then the state's
  // queued changes, and writes a final image.
  void run();
  // Stops serving and makes run() return; may be called from any thread, also before run().
  void stop();

  // The /status document (after a successful open(); on the io thread once run() runs).
  nlohmann::json status_json() const;
  // The bound ports (after open(); useful with port 0).
  uint16_t rpc_port() const { return server_ ? server_->port() : 0; }
  uint16_t http_port() const { return http_.port(); }

 private:
  Status open_state();
  Status stamp_new_root();
  Status add_groups();
  void register_gauges();
  Status open_servers();
  nlohmann::json self_status() const;
  void add_http_routes();
  void start_periodic();
  void log_stats();
  void shutdown();

  const TrackerConfig config_;
  TrackerConfig::Parsed parsed_;
  Metrics metrics_;
  std::unique_ptr<TrackerState> state_;
  boost::asio::io_context io_{1};
  std::unique_ptr<MeteredPool> pool_;
  std::unique_ptr<proto::RpcServer> server_;
  std::unique_ptr<TrackerService> service_;
  HttpStatusServer http_{io_};
  std::chrono::steady_clock::time_point started_;
  boost::asio::steady_timer checker_{io_};
  boost::asio::steady_timer stats_timer_{io_};
  boost::asio::signal_set signals_{io_};
};

}  // namespace mydfs::tracker
