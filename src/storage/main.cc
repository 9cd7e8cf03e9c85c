// mydfs-storage: one storage node. Holds slots on local disk and serves them over RPC; every
// mutation goes through the group's replicator: Raft among the members given by --members, or a
// single-node write-ahead log without them.
#include <charconv>
#include <csignal>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/daemon.h"
#include "common/parse.h"
#include "common/http_status.h"
#include "common/logging.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "storage/group_replicator.h"
#include "storage/replicator.h"
#include "storage/service.h"
#include "storage/slice_store.h"

using namespace mydfs;
namespace asio = boost::asio;

namespace {

struct Config {
  std::string listen = "127.0.0.1:7100";
  std::string http = "127.0.0.1:8100";
  std::string data;
  std::string backend = "volume";
  uint32_t node_id = 1;
  uint32_t group_id = 1;
  uint64_t cluster_id = 1;
  std::string capacity = "1GiB";
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
};

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

int fail(const std::string& msg) {
  fmt::print(stderr, "mydfs-storage: {}\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
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
  app.add_option("--capacity", c.capacity, "Store size, e.g. 1GiB (rounded down to 4 MiB slots)")->capture_default_str();
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

  auto logs = setup_logging("storage", c.log_level, c.log_file);
  if (!logs.ok()) return fail(logs.error().message);
  auto listen = parse_host_port(c.listen);
  if (!listen.ok()) return fail(listen.error().message);
  auto http_addr = parse_host_port(c.http);
  if (!http_addr.ok()) return fail(http_addr.error().message);
  auto backend = storage::parse_backend(c.backend);
  if (!backend.ok()) return fail(backend.error().message);
  auto cap_bytes = parse_size(c.capacity);
  if (!cap_bytes.ok()) return fail(cap_bytes.error().message);
  uint64_t slots = *cap_bytes / storage::kSlotSize;
  if (slots < 1 || slots > (1u << 30)) return fail(fmt::format("capacity '{}' must be between 4MiB and 4PiB", c.capacity));
  if (c.io_threads < 1 || c.io_threads > 256) return fail("--io-threads must be 1..256");
  if (c.node_id == 0 || c.group_id == 0) return fail("--node-id and --group-id must be positive");
  auto max_frame = parse_size(c.max_frame);
  if (!max_frame.ok()) return fail(max_frame.error().message);
  if (*max_frame < 4096 || *max_frame > (64u << 20)) return fail("--max-frame must be between 4KiB and 64MiB");
  if (c.max_batch < 1 || c.max_in_flight < 1 || c.frame_timeout_ms < 1 || c.idle_timeout_ms < 1)
    return fail("--max-batch, --max-in-flight and the timeouts must be positive");
  if (c.tx_timeout_ms < 100) return fail("--tx-timeout-ms must be at least 100");
  if (c.metrics != "on" && c.metrics != "off") return fail(fmt::format("--metrics must be on or off, not '{}'", c.metrics));
  auto hot_cache = c.hot_cache == "0" ? Result<uint64_t>(uint64_t{0}) : parse_size(c.hot_cache);
  if (!hot_cache.ok()) return fail("--hot-cache: " + hot_cache.error().message);
  if (c.read_counts_save_s < 1) return fail("--read-counts-save-seconds must be positive");
  if (c.stats_interval < 0 || c.stats_interval > 86400) return fail("--stats-interval must be 0..86400 seconds");
  std::optional<HostPort> tracker_addr;
  if (!c.tracker.empty()) {
    auto t = parse_host_port(c.tracker);
    if (!t.ok()) return fail(t.error().message);
    tracker_addr = *t;
  }
  if (!c.advertise.empty()) {
    if (auto a = parse_host_port(c.advertise); !a.ok()) return fail(a.error().message);
  }
  std::map<raft::NodeId, std::string> members;
  if (!c.members.empty()) {
    auto m = parse_members(c.members);
    if (!m.ok()) return fail(m.error().message);
    members = std::move(*m);
    if (!members.count(c.node_id))
      return fail(fmt::format("--members does not name this node (--node-id {})", c.node_id));
    if (c.tick_ms < 1 || c.election_ticks < 2) return fail("--raft-tick-ms must be positive and --election-ticks at least 2");
  } else if (c.join) {
    return fail("--join needs --members");
  }
  auto locked = lock_data_dir(c.data);
  if (!locked.ok()) return fail(locked.error().message);

  {
    // The log in DATA/wal belongs to the store that is there: never start a second store of the
    // other backend beside it.
    std::string other = c.data + (*backend == storage::Backend::VOLUME ? "/store" : "/store.vol");
    if (std::filesystem::exists(other))
      return fail(fmt::format("'{}' holds a store of the other backend ({}); use --backend {}", c.data, other,
                              *backend == storage::Backend::VOLUME ? "files" : "volume"));
  }
  storage::StoreOptions so;
  so.backend = *backend;
  so.path = c.data + (*backend == storage::Backend::VOLUME ? "/store.vol" : "/store");
  so.capacity_slots = static_cast<uint32_t>(slots);
  so.cluster_id = c.cluster_id;
  so.group_id = c.group_id;
  so.node_id = c.node_id;
  auto store = storage::SliceStore::open(so);
  if (!store.ok()) return fail(store.error().message);

  Metrics metrics;
  register_process_metrics(metrics);
  const bool metered = c.metrics == "on";
  std::unique_ptr<storage::SliceStats> slice_stats;
  if (metered) {
    storage::SliceStatsOptions sso;
    sso.path = c.data + "/slice-reads";
    sso.hot_after = c.hot_after;
    sso.cache_bytes = *hot_cache;
    slice_stats = std::make_unique<storage::SliceStats>(sso, &metrics);
    if (auto s = slice_stats->load(); !s.ok()) spdlog::warn("{}", s.error().message);
    (*store)->set_change_hook([p = slice_stats.get()](uint32_t slot) { p->invalidate(slot); });
  }
  asio::io_context io(1);
  std::unique_ptr<storage::Replicator> repl;
  storage::GroupReplicator* group = nullptr;
  if (members.empty()) {
    storage::LocalReplicatorOptions ro;
    ro.log_dir = c.data + "/wal";
    ro.checkpoint_bytes = c.checkpoint_mb << 20;
    ro.max_batch = c.max_batch;
    ro.io_threads = c.io_threads;
    auto r = storage::open_local_replicator(**store, ro, &metrics);
    if (!r.ok()) return fail(r.error().message);
    repl = std::move(*r);
  } else {
    if (std::filesystem::exists(c.data + "/wal"))
      return fail(fmt::format("'{}' holds the log of a group of one ({}/wal); it cannot join a Raft group", c.data, c.data));
    storage::GroupOptions go;
    go.dir = c.data + "/raft";
    go.group = c.group_id;
    go.self = c.node_id;
    go.members = members;
    go.tick = std::chrono::milliseconds(c.tick_ms);
    go.election_ticks = static_cast<int>(c.election_ticks);
    go.io_threads = c.io_threads;
    go.compact_after = std::max<uint64_t>(c.compact_after, 1);
    go.join = c.join;
    auto r = storage::open_group_replicator(**store, go, io, &metrics);
    if (!r.ok()) return fail(r.error().message);
    group = r->get();
    repl = std::move(*r);
  }

  auto& st = **store;
  metrics.gauge_fn("mydfs_storage_slots_capacity", "Usable slots", [&] { return st.capacity(); });
  metrics.gauge_fn("mydfs_storage_slots_used", "Slots in use", [&] { return st.used_slots(); });
  metrics.gauge_fn("mydfs_storage_slots_free", "Slots free (never used or deleted)", [&] { return st.free_slots(); });
  metrics.gauge_fn("mydfs_storage_high_water", "First never-used slot", [&] { return st.high_water(); });

  MeteredPool io_pool(c.io_threads);
  io_pool.meter().export_to(metrics, "disk");
  io_pool.meter().set_enabled(metered);
  metrics.gauge_fn("mydfs_raft_term", "Raft term this member is in (0: group of one)", [&] {
    return static_cast<double>(repl->role_info().term);
  });
  metrics.gauge_fn("mydfs_raft_commit_index", "Highest log index known committed", [&] {
    return static_cast<double>(repl->role_info().commit);
  });
  metrics.gauge_fn("mydfs_raft_applied_index", "Highest log index applied to the store", [&] {
    return static_cast<double>(repl->applied_index());
  });
  for (const char* role : {"leader", "follower", "candidate"})
    metrics.gauge_fn("mydfs_raft_role", fmt::format("role=\"{}\"", role), "1 for the role this member has now",
                     [&, role] { return repl->role_info().role == role ? 1.0 : 0.0; });
  proto::ServerOptions sopt;
  sopt.metrics = metered;
  sopt.max_in_flight = c.max_in_flight;
  sopt.frame_timeout = std::chrono::milliseconds(c.frame_timeout_ms);
  sopt.idle_timeout = std::chrono::milliseconds(c.idle_timeout_ms);
  sopt.max_payload = static_cast<uint32_t>(*max_frame);
  // Raft messages carry PATCH bytes (up to a slot) on top of up to 1 MiB of other entries.
  if (group) sopt.max_payload = std::max<uint32_t>(sopt.max_payload, 2 * storage::kSlotSize);
  sopt.max_bulk = storage::kPayloadCapacity;
  proto::RpcServer server(io, sopt, &metrics, "storage");
  storage::StorageService service(st, *repl, io_pool, c.node_id);
  service.set_slice_stats(slice_stats.get());
  service.register_routes(server);
  if (group) group->register_routes(server);
  if (auto s = server.listen(listen->host, listen->port); !s.ok()) return fail(s.error().message);

  HttpStatusServer http(io);
  if (auto s = http.listen(http_addr->host, http_addr->port); !s.ok()) return fail(s.error().message);
  auto started = std::chrono::steady_clock::now();
  http.route("/metrics", [&] {
    return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics.prometheus()};
  });
  http.route("/status", [&] {
    nlohmann::json j;
    j["daemon"] = "storage";
    j["node_id"] = c.node_id;
    j["group_id"] = c.group_id;
    j["listen"] = fmt::format("{}:{}", listen->host, server.port());
    j["backend"] = c.backend;
    auto ri = repl->role_info();
    j["role"] = ri.role;
    j["term"] = ri.term;
    j["leader"] = ri.leader;
    j["members"] = c.members;
    j["slots"] = {{"capacity", st.capacity()}, {"used", st.used_slots()}, {"free", st.free_slots()},
                  {"high_water", st.high_water()}, {"corrupt", st.corrupt_slots()}};
    j["applied_index"] = repl->applied_index();
    j["commit_index"] = ri.commit;
    j["metrics"] = metered;
    j["requests_total"] = metrics.value("mydfs_rpc_requests_total");
    j["in_flight"] = metrics.value("mydfs_rpc_in_flight");
    j["bytes_in"] = metrics.value("mydfs_rpc_bytes_in_total");
    j["bytes_out"] = metrics.value("mydfs_rpc_bytes_out_total");
    auto r = server.rates();
    j["qps"] = r.qps_1s;
    j["qps_1m"] = r.qps_1m;
    j["bytes_in_per_s"] = r.bytes_in_1s;
    j["bytes_out_per_s"] = r.bytes_out_1s;
    j["pool_utilization"] = io_pool.meter().utilization_1s();
    j["process"] = {{"rss_bytes", metrics.value("process_resident_memory_bytes")},
                    {"cpu_seconds", metrics.value("process_cpu_seconds")},
                    {"threads", metrics.value("process_threads")},
                    {"open_fds", metrics.value("process_open_fds")}};
    if (slice_stats) {
      j["slice_reads_total"] = slice_stats->reads_total();
      j["hot_cache"] = {{"hits", slice_stats->cache_hits()}, {"misses", slice_stats->cache_misses()},
                        {"bytes", slice_stats->cache_bytes_used()}, {"entries", slice_stats->cache_entries()},
                        {"budget_bytes", *hot_cache}, {"hot_after", c.hot_after}};
      j["slices"] = nlohmann::json::array();  // most read since start first
      for (const auto& sr : slice_stats->top(50))
        j["slices"].push_back({{"slot", sr.loc.slot}, {"gen", sr.loc.gen}, {"file_id", sr.file_id},
                               {"reads", sr.since_start}, {"reads_all_time", sr.all_time},
                               {"hot", slice_stats->hot(sr.since_start)}, {"cached", sr.cached}});
    }
    j["uptime_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return HttpReply{200, "application/json", j.dump(2) + "\n"};
  });

  // What heartbeats and the stats line report besides the basics.
  auto fill_load = [&](proto::NodeLoad& l) {
    auto r = server.rates();
    l.qps_1m = r.qps_1m;
    l.bytes_in_per_s = r.bytes_in_1s;
    l.bytes_out_per_s = r.bytes_out_1s;
    l.pool_utilization = io_pool.meter().utilization_1s();
    l.cpu_seconds = metrics.value("process_cpu_seconds");
    l.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    l.commit_index = repl->role_info().commit;
    l.applied_index = repl->applied_index();
    l.rss_bytes = static_cast<uint64_t>(metrics.value("process_resident_memory_bytes"));
    l.hot.clear();
    if (!slice_stats) return;
    l.hot_cache_hits = slice_stats->cache_hits();
    l.hot_cache_misses = slice_stats->cache_misses();
    l.hot_cache_bytes = slice_stats->cache_bytes_used();
    for (const auto& sr : slice_stats->top(proto::NodeLoad::kMaxHot)) {
      if (!slice_stats->hot(sr.since_start)) break;
      auto m = st.meta(sr.loc.slot);  // only slices that still exist
      if (!m.ok() || m->loc.gen != sr.loc.gen || m->state != proto::SlotState::LIVE) continue;
      l.hot.push_back(proto::HotSlice{sr.loc.slot, sr.loc.gen, sr.file_id, sr.since_start, sr.all_time, sr.cached});
    }
  };
  // All-time read counts persist now and then (and at shutdown, below).
  asio::steady_timer save_timer(io);
  std::atomic<bool> saving{false};
  if (slice_stats)
    repeat_every(save_timer, std::chrono::seconds(c.read_counts_save_s), [&] {
      if (!saving.exchange(true))  // a save still running (a slow disk) is not doubled
        asio::post(io_pool.pool(), [&] {
          if (auto s = slice_stats->save(); !s.ok()) spdlog::warn("cannot save slice read counts: {}", s.error().message);
          saving = false;
        });
    });
  asio::steady_timer stats_timer(io);
  repeat_every(stats_timer, std::chrono::milliseconds(static_cast<int64_t>(c.stats_interval * 1000)), [&] {
    proto::NodeLoad l;
    fill_load(l);
    auto ri = repl->role_info();
    spdlog::info("stats: {} term {}, qps {:.1f} (1m {:.1f}), in flight {}, in {:.1f} MB/s, out {:.1f} MB/s, "
                 "disk pool {:.0f}%, commit {} applied {}, slots free {}/{}, hot cache {} hits {} misses, "
                 "rss {:.1f} MiB",
                 ri.role, ri.term, server.rates().qps_1s, l.qps_1m, metrics.value("mydfs_rpc_in_flight"),
                 l.bytes_in_per_s / 1e6, l.bytes_out_per_s / 1e6, l.pool_utilization * 100, l.commit_index,
                 l.applied_index, st.free_slots(), st.capacity(), l.hot_cache_hits, l.hot_cache_misses,
                 static_cast<double>(l.rss_bytes) / (1 << 20));
  });

  server.start();
  http.start();
  if (group) group->start();
  service.start_tx_recovery(io, c.tracker, std::chrono::milliseconds(c.tx_timeout_ms));
  std::string advertise = c.advertise.empty() ? fmt::format("{}:{}", listen->host, server.port()) : c.advertise;
  asio::steady_timer heartbeat_timer(io);
  if (tracker_addr) {
    // Heartbeats: every interval the tracker asks for, report role, space and load.
    proto::ClientOptions co;
    co.connect_timeout = std::chrono::milliseconds(1000);
    co.call_timeout = std::chrono::milliseconds(2000);
    auto tc = std::make_shared<proto::RpcClient>(io.get_executor(), tracker_addr->host, tracker_addr->port, co);
    asio::co_spawn(io, [&, tc]() -> asio::awaitable<void> {
      uint32_t interval_ms = 1000;
      bool failing = false;
      double last_requests = metrics.value("mydfs_rpc_requests_total");
      auto last_time = std::chrono::steady_clock::now();
      for (;;) {
        auto now = std::chrono::steady_clock::now();
        double requests = metrics.value("mydfs_rpc_requests_total");
        double secs = std::chrono::duration<double>(now - last_time).count();
        proto::HeartbeatReq hb;
        hb.node_id = c.node_id;
        hb.group_id = c.group_id;
        hb.address = advertise;
        hb.http = fmt::format("{}:{}", http_addr->host, http.port());
        auto ri = repl->role_info();
        hb.role = ri.role;
        hb.term = ri.term;
        hb.free_slots = st.free_slots();
        hb.high_water = st.high_water();
        hb.capacity_slots = st.capacity();
        hb.in_flight = static_cast<uint32_t>(metrics.value("mydfs_rpc_in_flight"));
        hb.qps = secs > 0 ? (requests - last_requests) / secs : 0;
        last_requests = requests;
        last_time = now;
        fill_load(hb.load);
        auto r = co_await tc->call(hb);
        if (r.ok()) {
          if (failing) spdlog::info("heartbeats to tracker {} go through again", c.tracker);
          failing = false;
          interval_ms = std::clamp<uint32_t>(r->interval_ms, 10, 60000);
        } else if (!failing) {
          spdlog::warn("heartbeat to tracker {} failed: {}", c.tracker, r.error().to_string());
          failing = true;
        }
        heartbeat_timer.expires_after(std::chrono::milliseconds(interval_ms));
        boost::system::error_code ec;
        co_await heartbeat_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
      }
    }, asio::detached);
  }
  spdlog::info("storage node {} (group {}) listening on {}:{}, http {}:{}, data {}", c.node_id, c.group_id,
               listen->host, server.port(), http_addr->host, http.port(), c.data);

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    server.stop();
    http.stop();
    heartbeat_timer.cancel();
    save_timer.cancel();
    stats_timer.cancel();
    service.stop_tx_recovery();
    io.stop();
  });
  std::signal(SIGPIPE, SIG_IGN);
  io.run();
  io_pool.join();
  repl->stop();  // drains the committer (or stops the Raft member) and checkpoints the store
  if (slice_stats) {
    st.set_change_hook(nullptr);
    if (auto s = slice_stats->save(); !s.ok()) spdlog::warn("cannot save slice read counts: {}", s.error().message);
  }
  spdlog::info("stopped cleanly");
  return 0;
}
