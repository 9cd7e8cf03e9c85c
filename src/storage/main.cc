// mydfs-storage: one storage node. Holds slots on local disk and serves them over RPC; every
// mutation goes through the group's replicator: Raft among the members given by --members, or a
// single-node write-ahead log without them. The node itself is storage::StorageDaemon.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/logging.h"
#include "storage/daemon.h"

using namespace mydfs;

namespace {

int fail(const std::string& msg) {
  fmt::print(stderr, "mydfs-storage: {}\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  storage::StorageConfig c;
  CLI::App app{"mydfs-storage: a mydfs storage node (slots on local disk, served over RPC)"};
  app.set_config("--config", "", "Read options from this file (key = value lines, same names as the flags)");
  app.allow_config_extras(false);  // a misspelt key in the file is an error, not ignored
  app.add_option("--listen", c.listen, "RPC address HOST:PORT")->capture_default_str();
  app.add_option("--http", c.http, "HTTP status address HOST:PORT (/status, /metrics)")->capture_default_str();
  app.add_option("--data", c.data, "Data directory (store, write-ahead log, LOCK)")->required();
  app.add_option("--backend", c.backend, "Slice store backend: volume | files")->capture_default_str();
  app.add_option("--node-id", c.node_id, "This node's id")->capture_default_str();
  app.add_option("--group-id", c.group_id, "Storage group id")->capture_default_str();
  app.add_option("--cluster-id", c.cluster_id, "Cluster id")->capture_default_str();
  app.add_option("--capacity", c.capacity,
                 "Most bytes the store may take on disk, e.g. 100GiB; auto: what the disk has free, less --reserve")
      ->capture_default_str();
  app.add_option("--reserve", c.reserve, "Free space on the data directory's file system the store never takes")
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-file", c.log_file, "Log to this file instead of stderr");
  app.add_option("--io-threads", c.io_threads, "Threads for disk reads, and as many for slice writes")->capture_default_str();
  app.add_option("--checkpoint-mb", c.checkpoint_mb, "Checkpoint the store when the log passes this size")->capture_default_str();
  app.add_option("--max-in-flight", c.max_in_flight, "Requests in flight per connection")->capture_default_str();
  app.add_option("--frame-timeout-ms", c.frame_timeout_ms, "Time for the rest of a frame after its header")->capture_default_str();
  app.add_option("--idle-timeout-ms", c.idle_timeout_ms, "Close connections idle this long")->capture_default_str();
  app.add_option("--max-frame", c.max_frame, "Largest message accepted (bulk is one slot at most)")->capture_default_str();
  app.add_option("--max-batch", c.max_batch, "Commands per group commit at most")->capture_default_str();
  app.add_option("--tracker", c.tracker, "Tracker HOST:PORT to send heartbeats to (none if empty)");
  app.add_option("--advertise", c.advertise, "RPC address the tracker knows this node by (default: --listen)");
  app.add_option("--tx-timeout-ms", c.tx_timeout_ms,
                 "A transaction holding slots here this long is resolved with its primary group (aborted unless committed)")
      ->capture_default_str();
  app.add_option("--members", c.members,
                 "The group's members as ID=HOST:PORT (RPC addresses, this node included, comma or space separated); "
                 "with them the group replicates by Raft, without them this node is a group of one")
      ->delimiter(',');
  app.add_option("--metrics", c.metrics,
                 "on | off: count requests, rates, latency and per-slice reads, and cache hot slices")
      ->capture_default_str();
  app.add_option("--hot-after", c.hot_after, "Reads since start that make a slice hot (0 = never)")->capture_default_str();
  app.add_option("--hot-cache", c.hot_cache, "Memory for hot slices, e.g. 256MiB (0 = no cache)")->capture_default_str();
  app.add_option("--read-counts-save-seconds", c.read_counts_save_s,
                 "Persist the all-time per-slice read counts this often (and at shutdown)")->capture_default_str();
  app.add_option("--stats-interval", c.stats_interval, "Log a line of load figures every this many seconds (0 = never)")
      ->capture_default_str();
  app.add_option("--raft-tick-ms", c.tick_ms, "Raft tick")->capture_default_str();
  app.add_option("--election-ticks", c.election_ticks, "Election timeout in ticks (randomized up to twice this)")
      ->capture_default_str();
  app.add_option("--raft-compact-after", c.compact_after,
                 "Checkpoint the store and cut the Raft log after this many applied entries")
      ->capture_default_str();
  app.add_flag("--join", c.join,
               "Join an existing group as a new member (it is added with `mydfs admin replace-member`); "
               "--members must name the group's members and this node");
  CLI11_PARSE(app, argc, argv);

  // Logging first: a bad --log-level is reported before the other options, as it always was.
  if (auto logs = setup_logging("storage", c.log_level, c.log_file); !logs.ok()) return fail(logs.error().message);
  if (auto v = c.validate(); !v.ok()) return fail(v.error().message);
  storage::StorageDaemon daemon(std::move(c));
  if (auto s = daemon.open(); !s.ok()) return fail(s.error().message);
  daemon.stop_on_signals();
  daemon.run();
  return 0;
}
