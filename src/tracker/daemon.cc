#include "tracker/daemon.h"

#include <csignal>
#include <cstring>
#include <future>

#include <spdlog/spdlog.h>

#include "tracker/dashboard.h"

namespace mydfs::tracker {

namespace asio = boost::asio;

namespace {

Error bad(std::string msg) { return make_error(Code::BAD_REQUEST, std::move(msg)); }

// "ID=HOST:PORT,HOST:PORT,..." -> id, addresses
Result<std::pair<uint32_t, std::vector<std::string>>> parse_group(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || s.substr(0, eq).find_first_not_of("0123456789") != std::string::npos)
    return bad(fmt::format("bad --group '{}': expected ID=HOST:PORT[,HOST:PORT...]", s));
  if (eq > 10) return bad(fmt::format("bad --group '{}': group id too large", s));
  uint64_t id64 = std::stoull(s.substr(0, eq));
  if (id64 == 0 || id64 > UINT32_MAX) return bad(fmt::format("bad --group '{}': id must be 1..4294967295", s));
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

// Members of every group that are up (want_up) or down.
double member_count(const TrackerState& st, bool want_up) {
  return static_cast<double>(st.read([&](const Namespace&, const GroupRegistry& g) {
    uint64_t n = 0;
    for (const auto& gs : g.status(std::chrono::steady_clock::now()))
      for (const auto& m : gs.members) n += m.up == want_up;
    return n;
  }));
}

}  // namespace

// The checks run in the order mydfs-tracker always ran them, so the first bad option is named.
Result<TrackerConfig::Parsed> TrackerConfig::validate() const {
  Parsed p;
  MYDFS_ASSIGN(p.listen, parse_host_port(listen));
  MYDFS_ASSIGN(p.http, parse_host_port(http));
  if (heartbeat_ms < 10 || missed_heartbeats < 1 || default_run < 1 || default_run > 64 || read_threads < 1 ||
      checkpoint_ops < 1)
    return bad("--heartbeat-ms >= 10, --missed-heartbeats >= 1, --default-run 1..64, --read-threads >= 1 and "
               "--checkpoint-ops >= 1 are required");
  if (stats_interval < 0 || stats_interval > 86400) return bad("--stats-interval must be 0..86400 seconds");
  if (sync_delay_ms > 10000) return bad("--sync-delay-ms must be 0..10000");
  for (const auto& g : groups) {
    MYDFS_ASSIGN(auto group, parse_group(g));
    p.groups.push_back(std::move(group));
  }
  return p;
}

TrackerDaemon::TrackerDaemon(TrackerConfig config) : config_(std::move(config)) {}

TrackerDaemon::~TrackerDaemon() = default;

Status TrackerDaemon::open() {
  MYDFS_ASSIGN(parsed_, config_.validate());
  MYDFS_TRY(lock_data_dir(config_.data));
  register_process_metrics(metrics_);
  MYDFS_TRY(open_state());
  MYDFS_TRY(stamp_new_root());
  MYDFS_TRY(add_groups());
  register_gauges();
  MYDFS_TRY(open_servers());
  start_periodic();
  server_->start();
  http_.start();
  spdlog::info("tracker listening on {}:{}, http {}:{}, data {}", parsed_.listen.host, server_->port(),
               parsed_.http.host, http_.port(), config_.data);
  return ok_status();
}

Status TrackerDaemon::open_state() {
  const auto& c = config_;
  StateOptions so;
  so.dir = c.data;
  so.checkpoint_ops = c.checkpoint_ops;
  so.checkpoint_age = std::chrono::seconds(c.checkpoint_seconds);
  so.sync_delay = std::chrono::milliseconds(c.sync_delay_ms);
  so.groups.heartbeat_interval = std::chrono::milliseconds(c.heartbeat_ms);
  so.groups.missed_heartbeats = c.missed_heartbeats;
  so.groups.promise_ttl = std::chrono::milliseconds(3 * c.heartbeat_ms);
  so.groups.default_run = c.default_run;
  MYDFS_ASSIGN(state_, TrackerState::open(so, &metrics_));
  return ok_status();
}

// A new namespace's root gets the time it was made (a logged change, like any other), not 1970.
Status TrackerDaemon::stamp_new_root() {
  auto& st = *state_;
  if (st.applied_index() != 0) return ok_status();
  NsOp op = NsOp::setattr(kRootIno);
  op.flags = SET_ATIME_NOW | SET_MTIME_NOW;
  std::promise<int> p;
  st.submit(std::move(op), [&p](int err, OpResult) { p.set_value(err); });
  int err = p.get_future().get();
  if (err) return make_error(Code::IO_ERROR, fmt::format("cannot record the new namespace: {}", std::strerror(err)));
  return ok_status();
}

// Bootstrap groups from the configuration; what the edit log already holds wins.
Status TrackerDaemon::add_groups() {
  auto& st = *state_;
  for (auto& [id, addrs] : parsed_.groups) {
    auto known = st.read([id = id](const Namespace&, const GroupRegistry& g) { return g.members(id); });
    if (!known.empty()) {
      if (known != addrs) spdlog::warn("group {} in the configuration differs from the recorded one; keeping the recorded members", id);
      continue;
    }
    std::promise<Status> p;
    st.add_group(id, addrs, [&p](Status s) { p.set_value(std::move(s)); });
    Status s = p.get_future().get();
    if (!s.ok()) return bad(fmt::format("cannot add group {}: {}", id, s.error().message));
  }
  return ok_status();
}

void TrackerDaemon::register_gauges() {
  const auto& st = *state_;
  metrics_.gauge_fn("mydfs_tracker_inodes", "Inodes in the namespace", [&st] {
    return static_cast<double>(st.read([](const Namespace& ns, const GroupRegistry&) { return ns.inode_count(); }));
  });
  metrics_.gauge_fn("mydfs_tracker_edit_log_bytes", "Bytes in the edit log", [&st] { return static_cast<double>(st.log_bytes()); });
  metrics_.gauge_fn("mydfs_tracker_applied_index", "Last edit applied", [&st] { return static_cast<double>(st.applied_index()); });
  metrics_.gauge_fn("mydfs_tracker_files", "Regular files in the namespace", [&st] {
    return static_cast<double>(st.read([](const Namespace& ns, const GroupRegistry&) { return ns.file_count(); }));
  });
  metrics_.gauge_fn("mydfs_tracker_image_index", "Edit the newest fsimage holds", [&st] { return static_cast<double>(st.image_index()); });
  metrics_.gauge_fn("mydfs_tracker_seconds_since_checkpoint", "Age of the newest fsimage (-1: none)",
                    [&st] { return st.seconds_since_image(); });
  metrics_.gauge_fn("mydfs_tracker_groups", "Storage groups", [&st] {
    return static_cast<double>(st.read([](const Namespace&, const GroupRegistry& g) {
      return g.status(std::chrono::steady_clock::now()).size();
    }));
  });
  metrics_.gauge_fn("mydfs_tracker_members", "state=\"up\"", "Storage group members by liveness",
                    [&st] { return member_count(st, true); });
  metrics_.gauge_fn("mydfs_tracker_members", "state=\"down\"", "Storage group members by liveness",
                    [&st] { return member_count(st, false); });
}

Status TrackerDaemon::open_servers() {
  pool_ = std::make_unique<MeteredPool>(config_.read_threads);
  pool_->meter().export_to(metrics_, "tracker");
  server_ = std::make_unique<proto::RpcServer>(io_, proto::ServerOptions{}, &metrics_, "tracker");
  service_ = std::make_unique<TrackerService>(*state_, *pool_);
  started_ = std::chrono::steady_clock::now();
  service_->set_self_status([this] { return self_status(); });
  service_->register_routes(*server_);
  MYDFS_TRY(server_->listen(parsed_.listen.host, parsed_.listen.port));
  MYDFS_TRY(http_.listen(parsed_.http.host, parsed_.http.port));
  add_http_routes();
  return ok_status();
}

// The tracker process's own figures, /status's "tracker".
nlohmann::json TrackerDaemon::self_status() const {
  auto r = server_->rates();
  return nlohmann::json{{"qps", r.qps_1s}, {"qps_1m", r.qps_1m}, {"in_flight", metrics_.value("mydfs_rpc_in_flight")},
                        {"bytes_in_per_s", r.bytes_in_1s}, {"bytes_out_per_s", r.bytes_out_1s},
                        {"pool_utilization", pool_->meter().utilization_1s()},
                        {"rss_bytes", metrics_.value("process_resident_memory_bytes")},
                        {"cpu_seconds", metrics_.value("process_cpu_seconds")},
                        {"threads", metrics_.value("process_threads")}, {"open_fds", metrics_.value("process_open_fds")},
                        {"uptime_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count()}};
}

nlohmann::json TrackerDaemon::status_json() const {
  auto j = service_->status_json();
  j["daemon"] = "tracker";
  return j;
}

void TrackerDaemon::add_http_routes() {
  http_.route("/metrics", [this] { return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.prometheus()}; });
  http_.route("/", [] { return HttpReply{200, "text/html; charset=utf-8", std::string(kDashboardHtml)}; });
  http_.route("/status", [this] { return HttpReply{200, "application/json", status_json().dump(2) + "\n"}; });
}

// The checker marks members down after missed heartbeats; the stats line, if asked for.
void TrackerDaemon::start_periodic() {
  repeat_every(checker_, std::chrono::milliseconds(std::max<uint32_t>(config_.heartbeat_ms / 4, 10)), [this] {
    asio::post(pool_->pool(), [st = state_.get()] {
      st->with_groups([](GroupRegistry& g) { g.check(std::chrono::steady_clock::now()); });
    });
  });
  repeat_every(stats_timer_, std::chrono::milliseconds(static_cast<int64_t>(config_.stats_interval * 1000)),
               [this] { log_stats(); });
}

void TrackerDaemon::log_stats() {
  auto r = server_->rates();
  spdlog::info("stats: qps {:.1f} (1m {:.1f}), in flight {}, in {:.1f} MB/s, out {:.1f} MB/s, pool {:.0f}%, "
               "inodes {}, members up {} down {}, edit log {} bytes, rss {:.1f} MiB",
               r.qps_1s, r.qps_1m, metrics_.value("mydfs_rpc_in_flight"), r.bytes_in_1s / 1e6, r.bytes_out_1s / 1e6,
               pool_->meter().utilization_1s() * 100, metrics_.value("mydfs_tracker_inodes"),
               metrics_.value("mydfs_tracker_members", "state=\"up\""),
               metrics_.value("mydfs_tracker_members", "state=\"down\""), state_->log_bytes(),
               metrics_.value("process_resident_memory_bytes") / (1 << 20));
}

void TrackerDaemon::stop_on_signals() {
  on_stop_signals(signals_, [this] { shutdown(); });
}

void TrackerDaemon::stop() {
  asio::post(io_, [this] { shutdown(); });
}

// On the io_context's thread: stop serving and the periodic work, and make run() return.
void TrackerDaemon::shutdown() {
  if (server_) server_->stop();
  http_.stop();
  checker_.cancel();
  stats_timer_.cancel();
  io_.stop();
}

void TrackerDaemon::run() {
  std::signal(SIGPIPE, SIG_IGN);
  io_.run();
  if (pool_) pool_->join();
  if (state_) state_->stop();  // drains queued changes and writes a final image
  spdlog::info("stopped cleanly");
}

}  // namespace mydfs::tracker
