#include "storage/daemon.h"

#include <charconv>
#include <csignal>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace mydfs::storage {

namespace asio = boost::asio;

namespace {

// "1=127.0.0.1:7101" -> (1, "127.0.0.1:7101")
Result<std::map<raft::NodeId, std::string>> parse_members(const std::vector<std::string>& items) {
  std::map<raft::NodeId, std::string> out;
  for (const auto& item : items) {
    auto eq = item.find('=');
    uint64_t id = 0;
    if (eq == std::string::npos || eq == 0 ||
        std::from_chars(item.data(), item.data() + eq, id).ptr != item.data() + eq || id == 0)
      return make_error(Code::BAD_REQUEST, fmt::format("--members item '{}' is not ID=HOST:PORT (ID a positive number)", item));
    if (auto hp = parse_host_port(item.substr(eq + 1)); !hp.ok()) return hp.take_error();
    if (!out.emplace(id, item.substr(eq + 1)).second)
      return make_error(Code::BAD_REQUEST, fmt::format("--members names member {} twice", id));
  }
  return out;
}

Error bad(std::string msg) { return make_error(Code::BAD_REQUEST, std::move(msg)); }

// The checks of the numeric options (validate() does the strings).
Status check_numbers(const StorageConfig& c) {
  if (c.io_threads < 1 || c.io_threads > 256) return bad("--io-threads must be 1..256");
  if (c.node_id == 0 || c.group_id == 0) return bad("--node-id and --group-id must be positive");
  return ok_status();
}

Status check_limits(const StorageConfig& c, uint64_t max_frame) {
  if (max_frame < 4096 || max_frame > (64u << 20)) return bad("--max-frame must be between 4KiB and 64MiB");
  if (c.max_batch < 1 || c.max_in_flight < 1 || c.frame_timeout_ms < 1 || c.idle_timeout_ms < 1)
    return bad("--max-batch, --max-in-flight and the timeouts must be positive");
  if (c.tx_timeout_ms < 100) return bad("--tx-timeout-ms must be at least 100");
  if (c.metrics != "on" && c.metrics != "off") return bad(fmt::format("--metrics must be on or off, not '{}'", c.metrics));
  return ok_status();
}

Status check_tail(const StorageConfig& c) {
  if (c.read_counts_save_s < 1) return bad("--read-counts-save-seconds must be positive");
  if (c.stats_interval < 0 || c.stats_interval > 86400) return bad("--stats-interval must be 0..86400 seconds");
  return ok_status();
}

// --tracker, --advertise, --members and --join.
Status check_peers(const StorageConfig& c, StorageConfig::Parsed& p) {
  if (!c.tracker.empty()) {
    MYDFS_ASSIGN(p.tracker, parse_host_port(c.tracker));
  }
  if (!c.advertise.empty()) MYDFS_TRY(parse_host_port(c.advertise));
  if (!c.members.empty()) {
    MYDFS_ASSIGN(p.members, parse_members(c.members));
    if (!p.members.count(c.node_id))
      return bad(fmt::format("--members does not name this node (--node-id {})", c.node_id));
    if (c.tick_ms < 1 || c.election_ticks < 2) return bad("--raft-tick-ms must be positive and --election-ticks at least 2");
  } else if (c.join) {
    return bad("--join needs --members");
  }
  return ok_status();
}

}  // namespace

// The checks run in the order mydfs-storage always ran them, so the first bad option is named.
Result<StorageConfig::Parsed> StorageConfig::validate() const {
  Parsed p;
  MYDFS_ASSIGN(p.listen, parse_host_port(listen));
  MYDFS_ASSIGN(p.http, parse_host_port(http));
  MYDFS_ASSIGN(p.backend, parse_backend(backend));
  if (capacity != "auto") {
    MYDFS_ASSIGN(p.capacity, parse_size(capacity));
    if (p.capacity < kSlotSize) return bad(fmt::format("capacity '{}' must be at least 4MiB (or auto)", capacity));
  }
  MYDFS_ASSIGN(p.reserve, parse_size(reserve));
  p.positions = max_positions(p.backend);
  MYDFS_TRY(check_numbers(*this));
  MYDFS_ASSIGN(p.max_frame, parse_size(max_frame));
  MYDFS_TRY(check_limits(*this, p.max_frame));
  auto hot = hot_cache == "0" ? Result<uint64_t>(uint64_t{0}) : parse_size(hot_cache);
  if (!hot.ok()) return bad("--hot-cache: " + hot.error().message);
  p.hot_cache = *hot;
  MYDFS_TRY(check_tail(*this));
  MYDFS_TRY(check_peers(*this, p));
  return p;
}

StorageDaemon::StorageDaemon(StorageConfig config) : config_(std::move(config)) {}

StorageDaemon::~StorageDaemon() = default;

Status StorageDaemon::open() {
  MYDFS_ASSIGN(parsed_, config_.validate());
  MYDFS_TRY(lock_data_dir(config_.data));
  MYDFS_TRY(open_store());
  register_process_metrics(metrics_);
  metered_ = config_.metrics == "on";
  if (metered_) open_slice_stats();
  MYDFS_TRY(open_replicator());
  io_pool_ = std::make_unique<MeteredPool>(config_.io_threads);
  io_pool_->meter().export_to(metrics_, "disk");
  io_pool_->meter().set_enabled(metered_);
  register_gauges();
  MYDFS_TRY(open_servers());
  start_periodic();
  server_->start();
  http_.start();
  if (group_) group_->start();
  service_->start_tx_recovery(io_, config_.tracker, std::chrono::milliseconds(config_.tx_timeout_ms));
  advertise_ = config_.advertise.empty() ? fmt::format("{}:{}", parsed_.listen.host, server_->port()) : config_.advertise;
  if (parsed_.tracker) start_heartbeats();
  spdlog::info("storage node {} (group {}) listening on {}:{}, http {}:{}, data {}", config_.node_id,
               config_.group_id, parsed_.listen.host, server_->port(), parsed_.http.host, http_.port(), config_.data);
  return ok_status();
}

Status StorageDaemon::open_store() {
  const auto& c = config_;
  bool volume = parsed_.backend == Backend::VOLUME;
  // The log in DATA/wal belongs to the store that is there: never start a second store of the
  // other backend beside it.
  std::string other = c.data + (volume ? "/store" : "/store.vol");
  if (std::filesystem::exists(other))
    return bad(fmt::format("'{}' holds a store of the other backend ({}); use --backend {}", c.data, other,
                           volume ? "files" : "volume"));
  StoreOptions so;
  so.backend = parsed_.backend;
  so.path = c.data + (volume ? "/store.vol" : "/store");
  so.capacity_slots = parsed_.positions;
  so.capacity_bytes = parsed_.capacity;
  so.reserve_bytes = parsed_.reserve;
  so.cluster_id = c.cluster_id;
  so.group_id = c.group_id;
  so.node_id = c.node_id;
  MYDFS_ASSIGN(store_, SliceStore::open(so));
  return ok_status();
}

void StorageDaemon::open_slice_stats() {
  SliceStatsOptions sso;
  sso.path = config_.data + "/slice-reads";
  sso.hot_after = config_.hot_after;
  sso.cache_bytes = parsed_.hot_cache;
  slice_stats_ = std::make_unique<SliceStats>(sso, &metrics_);
  if (auto s = slice_stats_->load(); !s.ok()) spdlog::warn("{}", s.error().message);
  store_->set_change_hook([p = slice_stats_.get()](uint32_t slot) { p->invalidate(slot); });
}

Status StorageDaemon::open_replicator() {
  const auto& c = config_;
  if (parsed_.members.empty()) {
    LocalReplicatorOptions ro;
    ro.log_dir = c.data + "/wal";
    ro.checkpoint_bytes = c.checkpoint_mb << 20;
    ro.max_batch = c.max_batch;
    ro.io_threads = c.io_threads;
    MYDFS_ASSIGN(repl_, open_local_replicator(*store_, ro, &metrics_));
    return ok_status();
  }
  if (std::filesystem::exists(c.data + "/wal"))
    return bad(fmt::format("'{}' holds the log of a group of one ({}/wal); it cannot join a Raft group", c.data, c.data));
  GroupOptions go;
  go.dir = c.data + "/raft";
  go.group = c.group_id;
  go.self = c.node_id;
  go.members = parsed_.members;
  go.tick = std::chrono::milliseconds(c.tick_ms);
  go.election_ticks = static_cast<int>(c.election_ticks);
  go.io_threads = c.io_threads;
  go.compact_after = std::max<uint64_t>(c.compact_after, 1);
  go.join = c.join;
  MYDFS_ASSIGN(auto r, open_group_replicator(*store_, go, io_, &metrics_));
  group_ = r.get();
  repl_ = std::move(r);
  return ok_status();
}

void StorageDaemon::register_gauges() {
  auto& st = *store_;
  metrics_.gauge_fn("mydfs_storage_slots_capacity", "Usable slots", [&st] { return st.slot_capacity(); });
  metrics_.gauge_fn("mydfs_storage_bytes_used", "Bytes the slices take on disk (an upper bound)",
                    [&st] { return static_cast<double>(st.used_bytes()); });
  metrics_.gauge_fn("mydfs_storage_bytes_live", "Valid bytes of the slices in use",
                    [&st] { return static_cast<double>(st.live_bytes()); });
  metrics_.gauge_fn("mydfs_storage_bytes_free", "Bytes new data may still take (capacity and the disk's free space)",
                    [&st] { return static_cast<double>(st.free_bytes()); });
  metrics_.gauge_fn("mydfs_storage_slots_used", "Slots in use", [&st] { return st.used_slots(); });
  metrics_.gauge_fn("mydfs_storage_slots_free", "Slots free (never used or deleted)", [&st] { return st.free_slots(); });
  metrics_.gauge_fn("mydfs_storage_high_water", "First never-used slot", [&st] { return st.high_water(); });
  auto& repl = *repl_;
  metrics_.gauge_fn("mydfs_raft_term", "Raft term this member is in (0: group of one)", [&repl] {
    return static_cast<double>(repl.role_info().term);
  });
  metrics_.gauge_fn("mydfs_raft_commit_index", "Highest log index known committed", [&repl] {
    return static_cast<double>(repl.role_info().commit);
  });
  metrics_.gauge_fn("mydfs_raft_applied_index", "Highest log index applied to the store", [&repl] {
    return static_cast<double>(repl.applied_index());
  });
  for (const char* role : {"leader", "follower", "candidate"})
    metrics_.gauge_fn("mydfs_raft_role", fmt::format("role=\"{}\"", role), "1 for the role this member has now",
                      [&repl, role] { return repl.role_info().role == role ? 1.0 : 0.0; });
}

Status StorageDaemon::open_servers() {
  const auto& c = config_;
  proto::ServerOptions sopt;
  sopt.metrics = metered_;
  sopt.max_in_flight = c.max_in_flight;
  sopt.frame_timeout = std::chrono::milliseconds(c.frame_timeout_ms);
  sopt.idle_timeout = std::chrono::milliseconds(c.idle_timeout_ms);
  sopt.max_payload = static_cast<uint32_t>(parsed_.max_frame);
  // Raft messages carry PATCH bytes (up to a slot) on top of up to 1 MiB of other entries.
  if (group_) sopt.max_payload = std::max<uint32_t>(sopt.max_payload, 2 * kSlotSize);
  sopt.max_bulk = kPayloadCapacity;
  server_ = std::make_unique<proto::RpcServer>(io_, sopt, &metrics_, "storage");
  service_ = std::make_unique<StorageService>(*store_, *repl_, *io_pool_, c.node_id);
  service_->set_slice_stats(slice_stats_.get());
  service_->register_routes(*server_);
  if (group_) group_->register_routes(*server_);
  MYDFS_TRY(server_->listen(parsed_.listen.host, parsed_.listen.port));
  MYDFS_TRY(http_.listen(parsed_.http.host, parsed_.http.port));
  started_ = std::chrono::steady_clock::now();
  add_http_routes();
  return ok_status();
}

void StorageDaemon::add_http_routes() {
  http_.route("/metrics", [this] {
    return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.prometheus()};
  });
  http_.route("/status", [this] { return HttpReply{200, "application/json", status_json().dump(2) + "\n"}; });
}

double StorageDaemon::uptime_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

nlohmann::json StorageDaemon::status_json() const {
  const auto& st = *store_;
  nlohmann::json j;
  j["daemon"] = "storage";
  j["node_id"] = config_.node_id;
  j["group_id"] = config_.group_id;
  j["listen"] = fmt::format("{}:{}", parsed_.listen.host, server_->port());
  j["backend"] = config_.backend;
  auto ri = repl_->role_info();
  j["role"] = ri.role;
  j["term"] = ri.term;
  j["leader"] = ri.leader;
  j["members"] = config_.members;
  j["slots"] = {{"capacity", st.slot_capacity()}, {"used", st.used_slots()}, {"free", st.free_slots()},
                {"high_water", st.high_water()}, {"corrupt", st.corrupt_slots()}};
  j["bytes"] = {{"used", st.used_bytes()}, {"live", st.live_bytes()}, {"free", st.free_bytes()}, {"capacity", st.capacity_bytes()},
                {"trimmable", st.trimmable_bytes()}};
  j["applied_index"] = repl_->applied_index();
  j["commit_index"] = ri.commit;
  j["metrics"] = metered_;
  j["requests_total"] = metrics_.value("mydfs_rpc_requests_total");
  j["in_flight"] = metrics_.value("mydfs_rpc_in_flight");
  j["bytes_in"] = metrics_.value("mydfs_rpc_bytes_in_total");
  j["bytes_out"] = metrics_.value("mydfs_rpc_bytes_out_total");
  auto r = server_->rates();
  j["qps"] = r.qps_1s;
  j["qps_1m"] = r.qps_1m;
  j["bytes_in_per_s"] = r.bytes_in_1s;
  j["bytes_out_per_s"] = r.bytes_out_1s;
  j["pool_utilization"] = io_pool_->meter().utilization_1s();
  j["process"] = {{"rss_bytes", metrics_.value("process_resident_memory_bytes")},
                  {"cpu_seconds", metrics_.value("process_cpu_seconds")},
                  {"threads", metrics_.value("process_threads")},
                  {"open_fds", metrics_.value("process_open_fds")}};
  if (slice_stats_) add_slice_stats_json(j);
  j["uptime_seconds"] = uptime_seconds();
  return j;
}

void StorageDaemon::add_slice_stats_json(nlohmann::json& j) const {
  const auto& ss = *slice_stats_;
  j["slice_reads_total"] = ss.reads_total();
  j["hot_cache"] = {{"hits", ss.cache_hits()}, {"misses", ss.cache_misses()},
                    {"bytes", ss.cache_bytes_used()}, {"entries", ss.cache_entries()},
                    {"budget_bytes", parsed_.hot_cache}, {"hot_after", config_.hot_after}};
  j["slices"] = nlohmann::json::array();  // most read since start first
  for (const auto& sr : ss.top(50))
    j["slices"].push_back({{"slot", sr.loc.slot}, {"gen", sr.loc.gen}, {"file_id", sr.file_id},
                           {"reads", sr.since_start}, {"reads_all_time", sr.all_time},
                           {"hot", ss.hot(sr.since_start)}, {"cached", sr.cached}});
}

// What heartbeats and the stats line report besides the basics.
void StorageDaemon::fill_load(proto::NodeLoad& l) const {
  auto r = server_->rates();
  l.qps_1m = r.qps_1m;
  l.bytes_in_per_s = r.bytes_in_1s;
  l.bytes_out_per_s = r.bytes_out_1s;
  l.pool_utilization = io_pool_->meter().utilization_1s();
  l.cpu_seconds = metrics_.value("process_cpu_seconds");
  l.uptime_seconds = uptime_seconds();
  l.commit_index = repl_->role_info().commit;
  l.applied_index = repl_->applied_index();
  l.rss_bytes = static_cast<uint64_t>(metrics_.value("process_resident_memory_bytes"));
  l.hot.clear();
  if (!slice_stats_) return;
  l.hot_cache_hits = slice_stats_->cache_hits();
  l.hot_cache_misses = slice_stats_->cache_misses();
  l.hot_cache_bytes = slice_stats_->cache_bytes_used();
  for (const auto& sr : slice_stats_->top(proto::NodeLoad::kMaxHot)) {
    if (!slice_stats_->hot(sr.since_start)) break;
    auto m = store_->meta(sr.loc.slot);  // only slices that still exist
    if (!m.ok() || m->loc.gen != sr.loc.gen || m->state != proto::SlotState::LIVE) continue;
    l.hot.push_back(proto::HotSlice{sr.loc.slot, sr.loc.gen, sr.file_id, sr.since_start, sr.all_time, sr.cached});
  }
}

// All-time read counts persist now and then (and at shutdown); the stats line, if asked for.
void StorageDaemon::start_periodic() {
  if (slice_stats_)
    repeat_every(save_timer_, std::chrono::seconds(config_.read_counts_save_s), [this] {
      if (!saving_.exchange(true))  // a save still running (a slow disk) is not doubled
        asio::post(io_pool_->pool(), [this] {
          save_read_counts();
          saving_ = false;
        });
    });
  repeat_every(stats_timer_, std::chrono::milliseconds(static_cast<int64_t>(config_.stats_interval * 1000)),
               [this] { log_stats(); });
  // Deleted slices give their blocks back to the disk, a bounded number at a time.
  repeat_every(trim_timer_, std::chrono::milliseconds(200), [this] {
    if (!trimming_.exchange(true))
      asio::post(io_pool_->pool(), [this] {
        release_open_trims();
        store_->trim(4096);
        trimming_ = false;
      });
  });
}

// Deletes a crash cut off before their trim are trimmed once the log from before the restart is
// applied (SliceStore::release_open_trims).
void StorageDaemon::release_open_trims() {
  if (open_trims_released_ || !repl_ || repl_->applied_index() < repl_->open_log_end()) return;
  store_->release_open_trims();
  open_trims_released_ = true;
}

void StorageDaemon::save_read_counts() {
  if (auto s = slice_stats_->save(); !s.ok()) spdlog::warn("cannot save slice read counts: {}", s.error().message);
}

void StorageDaemon::log_stats() {
  proto::NodeLoad l;
  fill_load(l);
  auto ri = repl_->role_info();
  spdlog::info("stats: {} term {}, qps {:.1f} (1m {:.1f}), in flight {}, in {:.1f} MB/s, out {:.1f} MB/s, "
               "disk pool {:.0f}%, commit {} applied {}, slots free {}/{}, bytes used {} free {}, "
               "hot cache {} hits {} misses, "
               "rss {:.1f} MiB",
               ri.role, ri.term, server_->rates().qps_1s, l.qps_1m, metrics_.value("mydfs_rpc_in_flight"),
               l.bytes_in_per_s / 1e6, l.bytes_out_per_s / 1e6, l.pool_utilization * 100, l.commit_index,
               l.applied_index, store_->free_slots(), store_->slot_capacity(), store_->used_bytes(),
               store_->free_bytes(), l.hot_cache_hits, l.hot_cache_misses,
               static_cast<double>(l.rss_bytes) / (1 << 20));
}

// Heartbeats: every interval the tracker asks for, report role, space and load.
void StorageDaemon::start_heartbeats() {
  proto::ClientOptions co;
  co.connect_timeout = std::chrono::milliseconds(1000);
  co.call_timeout = std::chrono::milliseconds(2000);
  auto tc = std::make_shared<proto::RpcClient>(io_.get_executor(), parsed_.tracker->host, parsed_.tracker->port, co);
  asio::co_spawn(io_, heartbeat_loop(std::move(tc)), asio::detached);
}

proto::HeartbeatReq StorageDaemon::heartbeat(double qps) {
  proto::HeartbeatReq hb;
  hb.node_id = config_.node_id;
  hb.group_id = config_.group_id;
  hb.address = advertise_;
  hb.http = fmt::format("{}:{}", parsed_.http.host, http_.port());
  auto ri = repl_->role_info();
  hb.role = ri.role;
  hb.term = ri.term;
  hb.free_slots = store_->free_slots();
  hb.high_water = store_->high_water();
  hb.capacity_slots = store_->slot_capacity();
  hb.free_bytes = store_->free_bytes();
  hb.used_bytes = store_->used_bytes();
  hb.live_bytes = store_->live_bytes();
  hb.in_flight = static_cast<uint32_t>(metrics_.value("mydfs_rpc_in_flight"));
  hb.qps = qps;
  fill_load(hb.load);
  return hb;
}

asio::awaitable<void> StorageDaemon::heartbeat_loop(std::shared_ptr<proto::RpcClient> tracker) {
  uint32_t interval_ms = 1000;
  bool failing = false;
  double last_requests = metrics_.value("mydfs_rpc_requests_total");
  auto last_time = std::chrono::steady_clock::now();
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    double requests = metrics_.value("mydfs_rpc_requests_total");
    double secs = std::chrono::duration<double>(now - last_time).count();
    auto hb = heartbeat(secs > 0 ? (requests - last_requests) / secs : 0);
    last_requests = requests;
    last_time = now;
    auto r = co_await tracker->call(hb);
    if (r.ok()) {
      if (failing) spdlog::info("heartbeats to tracker {} go through again", config_.tracker);
      failing = false;
      interval_ms = std::clamp<uint32_t>(r->interval_ms, 10, 60000);
    } else if (!failing) {
      spdlog::warn("heartbeat to tracker {} failed: {}", config_.tracker, r.error().to_string());
      failing = true;
    }
    heartbeat_timer_.expires_after(std::chrono::milliseconds(interval_ms));
    boost::system::error_code ec;
    co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

void StorageDaemon::stop_on_signals() {
  on_stop_signals(signals_, [this] { shutdown(); });
}

void StorageDaemon::stop() {
  asio::post(io_, [this] { shutdown(); });
}

// On the io_context's thread: stop serving and the periodic work, and make run() return.
void StorageDaemon::shutdown() {
  if (server_) server_->stop();
  http_.stop();
  heartbeat_timer_.cancel();
  save_timer_.cancel();
  stats_timer_.cancel();
  trim_timer_.cancel();
  if (service_) service_->stop_tx_recovery();
  io_.stop();
}

void StorageDaemon::run() {
  std::signal(SIGPIPE, SIG_IGN);
  io_.run();
  if (io_pool_) io_pool_->join();
  if (repl_) repl_->stop();  // drains the committer (or stops the Raft member) and checkpoints the store
  if (store_) {
    release_open_trims();
    store_->trim();
  }
  if (slice_stats_) {
    store_->set_change_hook(nullptr);
    save_read_counts();
  }
  spdlog::info("stopped cleanly");
}

}  // namespace mydfs::storage
