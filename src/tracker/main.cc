// mydfs-tracker: the cluster's namespace, group registry and placement. The tracker itself is
// tracker::TrackerDaemon.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/logging.h"
#include "tracker/daemon.h"

using namespace mydfs;

namespace {

int fail(const std::string& msg) {
  fmt::print(stderr, "mydfs-tracker: {}\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  tracker::TrackerConfig c;
  CLI::App app{"mydfs-tracker: the mydfs namespace, storage group registry and placement"};
  app.set_config("--config", "", "Read options from this file (key = value lines, same names as the flags)");
  app.allow_config_extras(false);
  app.add_option("--listen", c.listen, "RPC address HOST:PORT")->capture_default_str();
  app.add_option("--http", c.http, "HTTP status address HOST:PORT (/status, /metrics)")->capture_default_str();
  app.add_option("--data", c.data, "Data directory (fsimage-*, edits/, LOCK)")->required();
  app.add_option("--group", c.groups, "Storage group to bootstrap: ID=HOST:PORT[,HOST:PORT...] (repeatable)");
  app.add_option("--heartbeat-ms", c.heartbeat_ms, "Heartbeat interval the storage nodes are told")->capture_default_str();
  app.add_option("--missed-heartbeats", c.missed_heartbeats, "A member is down after this many missed heartbeats")
      ->capture_default_str();
  app.add_option("--default-run", c.default_run, "Consecutive slices per group (K) unless a directory says otherwise")
      ->capture_default_str();
  app.add_option("--checkpoint-ops", c.checkpoint_ops, "Write an fsimage after this many logged changes")->capture_default_str();
  app.add_option("--checkpoint-seconds", c.checkpoint_seconds, "... or this long after the last one")->capture_default_str();
  app.add_option("--sync-delay-ms", c.sync_delay_ms,
                 "Changes are answered once written to the edit log (a kill -9 loses none) and fsynced at most this "
                 "long after; a mount's fsync waits for it. 0 = fsync before answering")
      ->capture_default_str();
  app.add_option("--read-threads", c.read_threads, "Threads serving namespace reads")->capture_default_str();
  app.add_option("--stats-interval", c.stats_interval, "Log a line of load figures every this many seconds (0 = never)")
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-file", c.log_file, "Log to this file instead of stderr");
  CLI11_PARSE(app, argc, argv);

  // Logging first: a bad --log-level is reported before the other options, as it always was.
  if (auto logs = setup_logging("tracker", c.log_level, c.log_file); !logs.ok()) return fail(logs.error().message);
  if (auto v = c.validate(); !v.ok()) return fail(v.error().message);
  tracker::TrackerDaemon daemon(std::move(c));
  if (auto s = daemon.open(); !s.ok()) return fail(s.error().message);
  daemon.stop_on_signals();
  daemon.run();
  return 0;
}
