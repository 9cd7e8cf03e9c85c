// mydfs-tracker: the cluster's namespace, group registry and placement.
#include <csignal>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/daemon.h"
#include "common/parse.h"
#include "common/http_status.h"
#include "common/logging.h"
#include "proto/rpc.h"
#include "tracker/dashboard.h"
#include "tracker/service.h"
#include "tracker/state.h"

using namespace mydfs;
namespace asio = boost::asio;

namespace {

int fail(const std::string& msg) {
  fmt::print(stderr, "mydfs-tracker: {}\n", msg);
  return 2;
}

// "ID=HOST:PORT,HOST:PORT,..." -> id, addresses
Result<std::pair<uint32_t, std::vector<std::string>>> parse_group(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || s.substr(0, eq).find_first_not_of("0123456789") != std::string::npos)
    return make_error(Code::BAD_REQUEST, fmt::format("bad --group '{}': expected ID=HOST:PORT[,HOST:PORT...]", s));
  if (eq > 10) return make_error(Code::BAD_REQUEST, fmt::format("bad --group '{}': group id too large", s));
  uint64_t id64 = std::stoull(s.substr(0, eq));
  if (id64 == 0 || id64 > UINT32_MAX) return make_error(Code::BAD_REQUEST, fmt::format("bad --group '{}': id must be 1..4294967295", s));
  uint32_t id = static_cast<uint32_t>(id64);
  std::vector<std::string> addrs;
  size_t pos = eq + 1;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    addrs.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return std::make_pair(id, addrs);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:7000", http = "127.0.0.1:8000", data, log_level = "info", log_file;
  std::vector<std::string> group_specs;
  uint32_t heartbeat_ms = 1000, missed = 3, default_run = 3, read_threads = 4;
  uint64_t checkpoint_ops = 1000000, checkpoint_seconds = 3600;
  double stats_interval = 0;
  CLI::App app{"mydfs-tracker: the mydfs namespace, storage group registry and placement"};
  app.set_config("--config", "", "Read options from this file (key = value lines, same names as the flags)");
  app.allow_config_extras(false);
  app.add_option("--listen", listen, "RPC address HOST:PORT")->capture_default_str();
  app.add_option("--http", http, "HTTP status address HOST:PORT (/status, /metrics)")->capture_default_str();
  app.add_option("--data", data, "Data directory (fsimage-*, edits/, LOCK)")->required();
  app.add_option("--group", group_specs, "Storage group to bootstrap: ID=HOST:PORT[,HOST:PORT...] (repeatable)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat interval the storage nodes are told")->capture_default_str();
  app.add_option("--missed-heartbeats", missed, "A member is down after this many missed heartbeats")->capture_default_str();
  app.add_option("--default-run", default_run, "Consecutive slices per group (K) unless a directory says otherwise")->capture_default_str();
  app.add_option("--checkpoint-ops", checkpoint_ops, "Write an fsimage after this many logged changes")->capture_default_str();
  app.add_option("--checkpoint-seconds", checkpoint_seconds, "... or this long after the last one")->capture_default_str();
  app.add_option("--read-threads", read_threads, "Threads serving namespace reads")->capture_default_str();
  app.add_option("--stats-interval", stats_interval, "Log a line of load figures every this many seconds (0 = never)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-file", log_file, "Log to this file instead of stderr");
  CLI11_PARSE(app, argc, argv);

  auto logs = setup_logging("tracker", log_level, log_file);
  if (!logs.ok()) return fail(logs.error().message);
  auto listen_addr = parse_host_port(listen);
  if (!listen_addr.ok()) return fail(listen_addr.error().message);
  auto http_addr = parse_host_port(http);
  if (!http_addr.ok()) return fail(http_addr.error().message);
  if (heartbeat_ms < 10 || missed < 1 || default_run < 1 || default_run > 64 || read_threads < 1 || checkpoint_ops < 1)
    return fail("--heartbeat-ms >= 10, --missed-heartbeats >= 1, --default-run 1..64, --read-threads >= 1 and "
                "--checkpoint-ops >= 1 are required");
  if (stats_interval < 0 || stats_interval > 86400) return fail("--stats-interval must be 0..86400 seconds");
  std::vector<std::pair<uint32_t, std::vector<std::string>>> groups;
  for (const auto& g : group_specs) {
    auto p = parse_group(g);
    if (!p.ok()) return fail(p.error().message);
    groups.push_back(*p);
  }
  auto locked = lock_data_dir(data);
  if (!locked.ok()) return fail(locked.error().message);

  Metrics metrics;
  register_process_metrics(metrics);
  tracker::StateOptions so;
  so.dir = data;
  so.checkpoint_ops = checkpoint_ops;
  so.checkpoint_age = std::chrono::seconds(checkpoint_seconds);
  so.groups.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  so.groups.missed_heartbeats = missed;
  so.groups.promise_ttl = std::chrono::milliseconds(3 * heartbeat_ms);
  so.groups.default_run = default_run;
  auto state = tracker::TrackerState::open(so, &metrics);
  if (!state.ok()) return fail(state.error().message);
  auto& st = **state;

  // Bootstrap groups from the configuration; what the edit log already holds wins.
  for (auto& [id, addrs] : groups) {
    auto known = st.read([&](const tracker::Namespace&, const tracker::GroupRegistry& g) { return g.members(id); });
    if (!known.empty()) {
      if (known != addrs) spdlog::warn("group {} in the configuration differs from the recorded one; keeping the recorded members", id);
      continue;
    }
    std::promise<Status> p;
    st.add_group(id, addrs, [&p](Status s) { p.set_value(std::move(s)); });
    Status s = p.get_future().get();
    if (!s.ok()) return fail(fmt::format("cannot add group {}: {}", id, s.error().message));
  }
  metrics.gauge_fn("mydfs_tracker_inodes", "Inodes in the namespace", [&] {
    return static_cast<double>(st.read([](const tracker::Namespace& ns, const tracker::GroupRegistry&) { return ns.inode_count(); }));
  });
  metrics.gauge_fn("mydfs_tracker_edit_log_bytes", "Bytes in the edit log", [&] { return static_cast<double>(st.log_bytes()); });
  metrics.gauge_fn("mydfs_tracker_applied_index", "Last edit applied", [&] { return static_cast<double>(st.applied_index()); });
  metrics.gauge_fn("mydfs_tracker_files", "Regular files in the namespace", [&] {
    return static_cast<double>(st.read([](const tracker::Namespace& ns, const tracker::GroupRegistry&) { return ns.file_count(); }));
  });
  metrics.gauge_fn("mydfs_tracker_image_index", "Edit the newest fsimage holds", [&] { return static_cast<double>(st.image_index()); });
  metrics.gauge_fn("mydfs_tracker_seconds_since_checkpoint", "Age of the newest fsimage (-1: none)",
                   [&] { return st.seconds_since_image(); });
  auto member_count = [&st](bool want_up) {
    return static_cast<double>(st.read([&](const tracker::Namespace&, const tracker::GroupRegistry& g) {
      uint64_t n = 0;
      for (const auto& gs : g.status(std::chrono::steady_clock::now()))
        for (const auto& m : gs.members) n += m.up == want_up;
      return n;
    }));
  };
  metrics.gauge_fn("mydfs_tracker_groups", "Storage groups", [&] {
    return static_cast<double>(st.read([](const tracker::Namespace&, const tracker::GroupRegistry& g) {
      return g.status(std::chrono::steady_clock::now()).size();
    }));
  });
  metrics.gauge_fn("mydfs_tracker_members", "state=\"up\"", "Storage group members by liveness", [=] { return member_count(true); });
  metrics.gauge_fn("mydfs_tracker_members", "state=\"down\"", "Storage group members by liveness", [=] { return member_count(false); });

  asio::io_context io(1);
  MeteredPool pool(read_threads);
  pool.meter().export_to(metrics, "tracker");
  proto::RpcServer server(io, proto::ServerOptions{}, &metrics, "tracker");
  tracker::TrackerService service(st, pool);
  auto started = std::chrono::steady_clock::now();
  service.set_self_status([&] {
    auto r = server.rates();
    return nlohmann::json{{"qps", r.qps_1s}, {"qps_1m", r.qps_1m}, {"in_flight", metrics.value("mydfs_rpc_in_flight")},
                          {"bytes_in_per_s", r.bytes_in_1s}, {"bytes_out_per_s", r.bytes_out_1s},
                          {"pool_utilization", pool.meter().utilization_1s()},
                          {"rss_bytes", metrics.value("process_resident_memory_bytes")},
                          {"cpu_seconds", metrics.value("process_cpu_seconds")},
                          {"threads", metrics.value("process_threads")}, {"open_fds", metrics.value("process_open_fds")},
                          {"uptime_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()}};
  });
  service.register_routes(server);
  if (auto s = server.listen(listen_addr->host, listen_addr->port); !s.ok()) return fail(s.error().message);
  HttpStatusServer status(io);
  if (auto s = status.listen(http_addr->host, http_addr->port); !s.ok()) return fail(s.error().message);
  status.route("/metrics", [&] { return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics.prometheus()}; });
  status.route("/", [&] { return HttpReply{200, "text/html; charset=utf-8", std::string(tracker::kDashboardHtml)}; });
  status.route("/status", [&] {
    auto j = service.status_json();
    j["daemon"] = "tracker";
    return HttpReply{200, "application/json", j.dump(2) + "\n"};
  });

  // The checker: marks members down after missed heartbeats.
  asio::steady_timer checker(io);
  repeat_every(checker, std::chrono::milliseconds(std::max<uint32_t>(heartbeat_ms / 4, 10)), [&] {
    asio::post(pool.pool(), [&st] { st.with_groups([](tracker::GroupRegistry& g) { g.check(std::chrono::steady_clock::now()); }); });
  });

  asio::steady_timer stats_timer(io);
  repeat_every(stats_timer, std::chrono::milliseconds(static_cast<int64_t>(stats_interval * 1000)), [&] {
    auto r = server.rates();
    spdlog::info("stats: qps {:.1f} (1m {:.1f}), in flight {}, in {:.1f} MB/s, out {:.1f} MB/s, pool {:.0f}%, "
                 "inodes {}, members up {} down {}, edit log {} bytes, rss {:.1f} MiB",
                 r.qps_1s, r.qps_1m, metrics.value("mydfs_rpc_in_flight"), r.bytes_in_1s / 1e6, r.bytes_out_1s / 1e6,
                 pool.meter().utilization_1s() * 100, metrics.value("mydfs_tracker_inodes"),
                 metrics.value("mydfs_tracker_members", "state=\"up\""),
                 metrics.value("mydfs_tracker_members", "state=\"down\""), st.log_bytes(),
                 metrics.value("process_resident_memory_bytes") / (1 << 20));
  });

  server.start();
  status.start();
  spdlog::info("tracker listening on {}:{}, http {}:{}, data {}", listen_addr->host, server.port(), http_addr->host,
               status.port(), data);
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    server.stop();
    status.stop();
    checker.cancel();
    stats_timer.cancel();
    io.stop();
  });
  std::signal(SIGPIPE, SIG_IGN);
  io.run();
  pool.join();
  st.stop();  // drains queued changes and writes a final image
  spdlog::info("stopped cleanly");
  return 0;
}
