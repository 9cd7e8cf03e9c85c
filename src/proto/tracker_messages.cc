#include "proto/tracker_messages.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace mydfs::proto {

void NsReply::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(err));
  attr.encode(w);
  w.boolean(created);
  w.u32(static_cast<uint32_t>(released.size()));
  for (const auto& l : released) w.loc(l);
  w.u32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    w.str(e.name);
    w.u64(e.ino);
    w.u8(static_cast<uint8_t>(e.type));
    w.u64(e.cookie);
  }
  w.boolean(eof);
  w.str(data);
  w.u32(static_cast<uint32_t>(names.size()));
  for (const auto& n : names) w.str(n);
  w.u64(total_slots); w.u64(free_slots); w.u64(inodes); w.u64(files); w.u64(total_bytes); w.u64(free_bytes);
  w.u32(static_cast<uint32_t>(dirs.size()));
  for (const auto& d : dirs) d.encode(w);
}

void NsReply::decode(Reader& r) {
  err = static_cast<int32_t>(r.u32());
  attr.decode(r);
  created = r.boolean();
  uint32_t nr = r.count(12, 1u << 20);
  released.resize(nr);
  for (auto& l : released) l = r.loc();
  uint32_t ne = r.count(21, kMaxReaddir + 2);
  entries.resize(ne);
  for (auto& e : entries) {
    e.name = r.str(kMaxName);
    e.ino = r.u64();
    uint8_t t = r.u8();
    if (t < 1 || t > 7) r.fail();
    e.type = static_cast<FileType>(t);
    e.cookie = r.u64();
  }
  eof = r.boolean();
  data = r.str(kMaxXattrValue);
  uint32_t nn = r.count(4, 1024);
  names.resize(nn);
  for (auto& n : names) n = r.str(kMaxXattrName);
  total_slots = r.u64(); free_slots = r.u64(); inodes = r.u64(); files = r.u64(); total_bytes = r.u64();
  free_bytes = r.u64();
  uint32_t nd = r.count(64, 2);
  dirs.resize(nd);
  for (auto& d : dirs) d.decode(r);
}

void AllocateResp::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(err));
  w.u32(static_cast<uint32_t>(runs.size()));
  for (const auto& run : runs) { w.u32(run.group); w.u32(run.count); w.str(run.leader); }
}

void AllocateResp::decode(Reader& r) {
  err = static_cast<int32_t>(r.u32());
  uint32_t n = r.count(12, 1u << 20);
  runs.resize(n);
  for (auto& run : runs) { run.group = r.u32(); run.count = r.u32(); run.leader = r.str(256); }
}

void HeartbeatReq::encode(Writer& w) const {
  w.u32(node_id); w.u32(group_id); w.str(address); w.str(http); w.str(role); w.u64(term);
  w.u32(free_slots); w.u32(high_water); w.u32(capacity_slots); w.u32(in_flight);
  w.u64(free_bytes); w.u64(used_bytes); w.u64(live_bytes);
  w.f64(qps);
  if (has_load) load.encode(w);
}

void HeartbeatReq::decode(Reader& r) {
  node_id = r.u32(); group_id = r.u32(); address = r.str(256); http = r.str(256); role = r.str(32);
  term = r.u64(); free_slots = r.u32(); high_water = r.u32(); capacity_slots = r.u32(); in_flight = r.u32();
  free_bytes = r.u64(); used_bytes = r.u64(); live_bytes = r.u64();
  qps = r.f64();
  has_load = r.remaining() > 0;  // a node from before load reports sends none
  if (has_load) load.decode(r);
}

void NodeLoad::encode(Writer& w) const {
  for (double d : {qps_1m, bytes_in_per_s, bytes_out_per_s, pool_utilization, cpu_seconds, uptime_seconds}) w.f64(d);
  for (uint64_t v : {commit_index, applied_index, rss_bytes, hot_cache_hits, hot_cache_misses, hot_cache_bytes}) w.u64(v);
  w.u32(static_cast<uint32_t>(hot.size()));
  for (const auto& h : hot) {
    w.u32(h.slot); w.u32(h.gen); w.u64(h.file_id); w.u64(h.reads); w.u64(h.reads_all_time); w.boolean(h.cached);
  }
}

void NodeLoad::decode(Reader& r) {
  for (double* d : {&qps_1m, &bytes_in_per_s, &bytes_out_per_s, &pool_utilization, &cpu_seconds, &uptime_seconds})
    *d = r.f64();
  for (uint64_t* v : {&commit_index, &applied_index, &rss_bytes, &hot_cache_hits, &hot_cache_misses, &hot_cache_bytes})
    *v = r.u64();
  uint32_t n = r.count(33, kMaxHot);
  hot.resize(n);
  for (auto& h : hot) {
    h.slot = r.u32(); h.gen = r.u32(); h.file_id = r.u64(); h.reads = r.u64(); h.reads_all_time = r.u64();
    h.cached = r.boolean();
  }
}

void AddGroupReq::encode(Writer& w) const {
  w.u32(id);
  w.u32(static_cast<uint32_t>(addresses.size()));
  for (const auto& a : addresses) w.str(a);
}

void AddGroupReq::decode(Reader& r) {
  id = r.u32();
  uint32_t n = r.count(4, 64);
  addresses.resize(n);
  for (auto& a : addresses) a = r.str(512);
}

Result<std::map<uint32_t, std::string>> usable_group_leaders(const ClusterStatusResp& status) {
  auto j = nlohmann::json::parse(status.json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("groups") || !j["groups"].is_array())
    return make_error(Code::BAD_REQUEST, "tracker sent a malformed cluster status");
  std::map<uint32_t, std::string> out;
  for (auto& g : j["groups"]) {
    if (!g.is_object()) continue;
    if (g.value("usable", false) && g.contains("id") && g["id"].is_number_unsigned())
      out[g["id"].get<uint32_t>()] = g.value("leader", std::string());
  }
  return out;
}

std::map<uint32_t, std::vector<std::string>> group_members(const ClusterStatusResp& status) {
  auto j = nlohmann::json::parse(status.json, nullptr, false);
  std::map<uint32_t, std::vector<std::string>> out;
  if (j.is_discarded() || !j.is_object() || !j.contains("groups") || !j["groups"].is_array()) return out;
  for (auto& g : j["groups"]) {
    if (!g.is_object() || !g.contains("id") || !g["id"].is_number_unsigned() || !g.contains("members") ||
        !g["members"].is_array())
      continue;
    auto& list = out[g["id"].get<uint32_t>()];
    for (auto& m : g["members"])
      if (m.is_object() && m.contains("address") && m["address"].is_string()) list.push_back(m["address"].get<std::string>());
  }
  return out;
}

}  // namespace mydfs::proto
