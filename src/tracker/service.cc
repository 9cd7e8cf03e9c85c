#include "tracker/service.h"

#include <algorithm>
#include <cerrno>

#include "common/async.h"

namespace mydfs::tracker {

namespace asio = boost::asio;
using namespace mydfs::proto;
using SteadyClock = std::chrono::steady_clock;

NsReply TrackerService::read(const NsReadReq& req) const {
  NsReply r;
  state_.read([&](const Namespace& ns, const GroupRegistry& groups) {
    switch (req.op) {
      case NsReadOp::LOOKUP: r.err = ns.lookup(req.ino, req.name, &r.attr); break;
      case NsReadOp::GETATTR: r.err = ns.getattr(req.ino, &r.attr); break;
      case NsReadOp::READLINK: r.err = ns.readlink(req.ino, &r.data); break;
      case NsReadOp::READDIR:
        r.err = ns.readdir(req.ino, req.cookie, std::min(req.max, kMaxReaddir), &r.entries, &r.eof);
        break;
      case NsReadOp::GETXATTR: r.err = ns.getxattr(req.ino, req.name, &r.data); break;
      case NsReadOp::LISTXATTR: r.err = ns.listxattr(req.ino, &r.names); break;
      case NsReadOp::SYNC: break;  // answered by the route, never here
      case NsReadOp::STATFS:
        r.total_slots = groups.total_capacity_slots();
        r.free_slots = groups.total_free_slots();
        r.total_bytes = groups.total_capacity_bytes();
        r.free_bytes = groups.total_free_bytes();
        r.inodes = ns.inode_count();
        r.files = ns.file_count();
        break;
    }
  });
  return r;
}

void TrackerService::register_routes(RpcServer& s) {
  register_namespace_routes(s);
  register_cluster_routes(s);
}

void TrackerService::register_namespace_routes(RpcServer& s) {
  s.route<NsReadReq>([this](NsReadReq req, Inbound&, Outbound&) -> asio::awaitable<Result<NsReply>> {
    if (req.op == NsReadOp::SYNC) {
      Status st = co_await await_completion<Status>([&](auto done) {
        state_.sync([done](Status s) mutable { done(std::move(s)); });
      });
      if (!st.ok()) co_return st.take_error();
      co_return NsReply{};
    }
    co_return co_await run_on(pool_, [&] { return Result<NsReply>(read(req)); });
  });

  s.route<NsWriteReq>([this](NsWriteReq req, Inbound&, Outbound&) -> asio::awaitable<Result<NsReply>> {
    auto [err, res] = co_await await_completion<std::pair<int, OpResult>>([&](auto done) {
      state_.submit(std::move(req.op), [done](int e, OpResult r) mutable { done(std::make_pair(e, std::move(r))); });
    });
    NsReply r;
    r.err = err;
    r.attr = res.attr;
    r.created = res.created;
    r.released = std::move(res.released);
    r.dirs = std::move(res.dirs);
    co_return r;
  });

  s.route<AllocateReq>([this](AllocateReq req, Inbound&, Outbound&) -> asio::awaitable<Result<AllocateResp>> {
    co_return co_await allocate(req);
  });
}

asio::awaitable<Result<AllocateResp>> TrackerService::allocate(const AllocateReq& req) {
  AllocateResp resp;
  Attr file;
  int err = co_await run_on(pool_, [&] {
    return state_.read([&](const Namespace& ns, const GroupRegistry&) { return ns.getattr(req.ino, &file); });
  });
  if (err == 0 && file.type != FileType::REG) err = file.type == FileType::DIR ? EISDIR : EINVAL;
  if (err) {
    resp.err = err;
    co_return resp;
  }
  // Placement takes the state lock, which a group commit holds through its fsync: not on the
  // network thread.
  auto runs = co_await run_on(pool_, [&] {
    return state_.with_groups([&](GroupRegistry& g) { return g.allocate(req.ino, req.n_slices, req.bytes, file.run, SteadyClock::now()); });
  });
  if (!runs.ok()) {
    resp.err = to_errno(runs.error());
    co_return resp;
  }
  for (auto& r : *runs) resp.runs.push_back(RunInfo{r.group, r.count, r.leader});
  co_return resp;
}

namespace {
Heartbeat to_heartbeat(HeartbeatReq req) {
  Heartbeat hb;
  hb.node_id = req.node_id;
  hb.group_id = req.group_id;
  hb.address = std::move(req.address);
  hb.http = std::move(req.http);
  hb.role = req.role;
  hb.term = req.term;
  hb.free_slots = req.free_slots;
  hb.high_water = req.high_water;
  hb.capacity_slots = req.capacity_slots;
  hb.free_bytes = req.free_bytes;
  hb.used_bytes = req.used_bytes;
  hb.live_bytes = req.live_bytes;
  hb.in_flight = req.in_flight;
  hb.qps = req.qps;
  hb.load = std::move(req.load);
  return hb;
}
}  // namespace

void TrackerService::register_cluster_routes(RpcServer& s) {
  s.route<HeartbeatReq>([this](HeartbeatReq req, Inbound&, Outbound&) -> asio::awaitable<Result<HeartbeatResp>> {
    Heartbeat hb = to_heartbeat(std::move(req));
    auto interval = std::chrono::milliseconds(0);
    Status st = co_await run_on(pool_, [&] {
      return state_.with_groups([&](GroupRegistry& g) {
        interval = g.config().heartbeat_interval;
        return g.heartbeat(hb, SteadyClock::now());
      });
    });
    if (!st.ok()) co_return st.take_error();
    co_return HeartbeatResp{static_cast<uint32_t>(interval.count())};
  });

  s.route<AddGroupReq>([this](AddGroupReq req, Inbound&, Outbound&) -> asio::awaitable<Result<AddGroupResp>> {
    Status st = co_await await_completion<Status>([&](auto done) {
      state_.add_group(req.id, req.addresses, [done](Status s) mutable { done(std::move(s)); });
    });
    if (!st.ok()) co_return st.take_error();
    co_return AddGroupResp{};
  });

  s.route<ReplaceMemberReq>([this](ReplaceMemberReq req, Inbound&, Outbound&) -> asio::awaitable<Result<ReplaceMemberResp>> {
    Status st = co_await await_completion<Status>([&](auto done) {
      state_.replace_member(req.id, req.old_address, req.new_address, [done](Status s) mutable { done(std::move(s)); });
    });
    if (!st.ok()) co_return st.take_error();
    co_return ReplaceMemberResp{};
  });

  s.route<ClusterStatusReq>([this](ClusterStatusReq, Inbound&, Outbound&) -> asio::awaitable<Result<ClusterStatusResp>> {
    co_return co_await run_on(pool_, [&] { return Result<ClusterStatusResp>(ClusterStatusResp{status_json().dump()}); });
  });
}

nlohmann::json TrackerService::status_json() const {
  using nlohmann::json;
  auto now = SteadyClock::now();
  json j;
  if (self_status_) {
    j["tracker"] = self_status_();
    j["uptime_seconds"] = j["tracker"]["uptime_seconds"];
  }
  state_.read([&](const Namespace& ns, const GroupRegistry& groups) {
    struct Hot {
      proto::HotSlice s;
      uint32_t group, node_id;
      std::string address;
    };
    std::vector<Hot> hot;
    uint64_t up = 0, down = 0;
    j["groups"] = json::array();
    for (const auto& g : groups.status(now)) {
      json jg = {{"id", g.id}, {"usable", g.usable}, {"leader", g.leader}, {"free_slots", g.free_slots},
                 {"capacity_slots", g.capacity_slots}, {"free_bytes", g.free_bytes}, {"used_bytes", g.used_bytes},
                 {"capacity_bytes", g.capacity_bytes}, {"promised", g.promised}, {"promised_bytes", g.promised_bytes},
                 {"members", json::array()}};
      for (const auto& m : g.members) {
        (m.up ? up : down) += 1;
        const proto::NodeLoad& l = m.load;
        jg["members"].push_back({{"address", m.address}, {"node_id", m.node_id}, {"role", m.role}, {"term", m.term},
                                 {"up", m.up}, {"heard", m.heard}, {"seconds_since_heartbeat", m.seconds_since_heartbeat},
                                 {"free_slots", m.free_slots}, {"capacity_slots", m.capacity_slots},
                                 {"free_bytes", m.free_bytes}, {"used_bytes", m.used_bytes},
                                 {"live_bytes", m.live_bytes},
                                 {"high_water", m.high_water}, {"in_flight", m.in_flight}, {"qps", m.qps},
                                 {"qps_1m", l.qps_1m}, {"bytes_in_per_s", l.bytes_in_per_s},
                                 {"bytes_out_per_s", l.bytes_out_per_s}, {"commit_index", l.commit_index},
                                 {"applied_index", l.applied_index}, {"pool_utilization", l.pool_utilization},
                                 {"rss_bytes", l.rss_bytes}, {"cpu_seconds", l.cpu_seconds},
                                 {"uptime_seconds", l.uptime_seconds}, {"hot_cache_hits", l.hot_cache_hits},
                                 {"hot_cache_misses", l.hot_cache_misses}, {"hot_cache_bytes", l.hot_cache_bytes},
                                 {"http", m.http}, {"is_leader", m.is_leader}});
        if (m.up)
          for (const auto& h : l.hot) hot.push_back(Hot{h, g.id, m.node_id, m.address});
      }
      j["groups"].push_back(std::move(jg));
    }
    j["members_up"] = up;
    j["members_down"] = down;
    std::sort(hot.begin(), hot.end(), [](const Hot& a, const Hot& b) { return a.s.reads > b.s.reads; });
    if (hot.size() > kMaxHotSlices) hot.resize(kMaxHotSlices);
    j["hot_slices"] = json::array();
    {
      std::lock_guard g(paths_mu_);
      std::vector<uint64_t> stale;
      for (const auto& h : hot) {
        auto it = paths_.find(h.s.file_id);
        if (it == paths_.end() || now - it->second.second > kPathTtl) stale.push_back(h.s.file_id);
      }
      if (!stale.empty()) {
        for (auto it = paths_.begin(); it != paths_.end();)  // forget files that are no longer hot
          it = now - it->second.second > 6 * kPathTtl ? paths_.erase(it) : std::next(it);
        for (auto& [ino, path] : ns.paths_of(stale)) paths_[ino] = {std::move(path), now};
      }
      for (const auto& h : hot)
        j["hot_slices"].push_back({{"group", h.group}, {"node_id", h.node_id}, {"address", h.address},
                                   {"slot", h.s.slot}, {"gen", h.s.gen}, {"file_id", h.s.file_id},
                                   {"path", paths_[h.s.file_id].first}, {"reads", h.s.reads},
                                   {"reads_all_time", h.s.reads_all_time}, {"cached", h.s.cached}});
    }
    j["events"] = json::array();
    for (const auto& e : groups.events())
      j["events"].push_back({{"seconds_ago", std::chrono::duration<double>(now - e.at).count()}, {"text", e.text}});
    j["inodes"] = ns.inode_count();
    j["files"] = ns.file_count();
  });
  j["edit_log_bytes"] = state_.log_bytes();
  j["applied_index"] = state_.applied_index();
  j["image_index"] = state_.image_index();
  double since = state_.seconds_since_image();
  j["last_checkpoint_seconds_ago"] = since < 0 ? json(nullptr) : json(since);
  return j;
}

}  // namespace mydfs::tracker
