#include "tracker/groups.h"

#include <cerrno>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/parse.h"

namespace mydfs::tracker {
namespace {

constexpr size_t kMaxHostLen = 253;      // longest DNS name
constexpr size_t kMaxAddressLen = 512;   // decode() refuses longer strings outright
constexpr uint32_t kMaxDecodedMembers = 1024;

double seconds(TimePoint::duration d) { return std::chrono::duration<double>(d).count(); }

bool known_role(const std::string& r) { return r == "leader" || r == "follower" || r == "candidate"; }

Status check_address(const std::string& a) {
  auto hp = parse_host_port(a);
  if (!hp.ok()) return hp.take_error();
  // parse_host_port reads ":PORT" as localhost; members must name their host so that the address
  // a node heartbeats with is the one configured, character for character.
  if (a.rfind(':') == 0) return make_error(Code::BAD_REQUEST, fmt::format("address '{}' has no host", a));
  if (hp->host.size() > kMaxHostLen ||
      hp->host.find_first_of(" \t\r\n") != std::string::npos)
    return make_error(Code::BAD_REQUEST, fmt::format("bad host in address '{}'", a));
  if (hp->port == 0) return make_error(Code::BAD_REQUEST, fmt::format("address '{}' has port 0", a));
  return ok_status();
}

}  // namespace

GroupRegistry::GroupRegistry(GroupsConfig cfg) : cfg_(cfg) {}

// ---------------------------------------------------------------- membership

Status GroupRegistry::validate_group(uint32_t id, const std::vector<std::string>& addresses,
                                     bool check_size) const {
  if (id == 0) return make_error(Code::BAD_REQUEST, "group id 0 is reserved (ids start at 1)");
  if (addresses.empty())
    return make_error(Code::BAD_REQUEST, fmt::format("group {} has no members", id));
  if (check_size && addresses.size() > cfg_.max_members)
    return make_error(Code::BAD_REQUEST, fmt::format("group {} has {} members; at most {} allowed", id,
                                                     addresses.size(), cfg_.max_members));
  std::set<std::string> seen;
  for (const auto& a : addresses) {
    MYDFS_TRY(check_address(a));
    if (!seen.insert(a).second)
      return make_error(Code::BAD_REQUEST, fmt::format("group {} lists {} twice", id, a));
  }
  if (groups_.count(id)) return make_error(Code::CONFLICT, fmt::format("group {} already exists", id));
  for (const auto& a : addresses) {
    auto it = group_of_.find(a);
    if (it != group_of_.end())
      return make_error(Code::CONFLICT,
                        fmt::format("address {} already belongs to group {}", a, it->second));
  }
  return ok_status();
}

void GroupRegistry::insert_group(uint32_t id, std::vector<std::string> addresses) {
  Group& g = groups_[id];
  for (auto& a : addresses) {
    group_of_[a] = id;
    Member m;
    m.address = std::move(a);
    m.last.group_id = id;
    m.last.address = m.address;
    g.members.push_back(std::move(m));
  }
}

Status GroupRegistry::add_group(uint32_t id, std::vector<std::string> addresses) {
  MYDFS_TRY(validate_group(id, addresses, /*check_size=*/true));
  insert_group(id, std::move(addresses));
  return ok_status();
}

Status GroupRegistry::replace_member(uint32_t id, const std::string& old_address, const std::string& new_address) {
  auto g = groups_.find(id);
  if (g == groups_.end()) return make_error(Code::NOT_FOUND, fmt::format("no group {}", id));
  if (old_address == new_address) return ok_status();
  MYDFS_TRY(check_address(new_address));
  auto m = std::find_if(g->second.members.begin(), g->second.members.end(),
                        [&](const Member& x) { return x.address == old_address; });
  if (m == g->second.members.end())
    return make_error(Code::NOT_FOUND, fmt::format("{} is not a member of group {}", old_address, id));
  if (auto other = group_of_.find(new_address); other != group_of_.end())
    return make_error(Code::CONFLICT, fmt::format("address {} already belongs to group {}", new_address, other->second));
  group_of_.erase(old_address);
  group_of_[new_address] = id;
  Member fresh;
  fresh.address = new_address;
  fresh.last.group_id = id;
  fresh.last.address = new_address;
  *m = std::move(fresh);
  return ok_status();
}

std::vector<uint32_t> GroupRegistry::group_ids() const {
  std::vector<uint32_t> ids;
  for (const auto& [id, g] : groups_) ids.push_back(id);
  return ids;
}

std::vector<std::string> GroupRegistry::members(uint32_t id) const {
  std::vector<std::string> out;
  auto it = groups_.find(id);
  if (it == groups_.end()) return out;
  for (const auto& m : it->second.members) out.push_back(m.address);
  return out;
}

// Layout: u32 group count, then per group: u32 id, u32 member count, that many str addresses.
void GroupRegistry::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(groups_.size()));
  for (const auto& [id, g] : groups_) {
    w.u32(id);
    w.u32(static_cast<uint32_t>(g.members.size()));
    for (const auto& m : g.members) w.str(m.address);
  }
}

bool GroupRegistry::decode(Reader& r) {
  GroupRegistry fresh(cfg_);
  uint32_t n = r.count(8, kMaxGroups);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    uint32_t id = r.u32();
    uint32_t m = r.count(4, kMaxDecodedMembers);
    std::vector<std::string> addresses;
    for (uint32_t j = 0; j < m && r.ok(); ++j) addresses.push_back(r.str(kMaxAddressLen));
    if (!r.ok()) return false;
    // max_members is a limit on new groups; one persisted under an older config still loads.
    if (!fresh.validate_group(id, addresses, /*check_size=*/false).ok()) return false;
    fresh.insert_group(id, std::move(addresses));
  }
  if (!r.ok()) return false;
  *this = std::move(fresh);
  return true;
}

// ---------------------------------------------------------------- liveness

void GroupRegistry::add_event(TimePoint at, std::string text) {
  events_.push_back(GroupEvent{at, std::move(text)});
  while (events_.size() > kMaxEvents) events_.pop_front();
}

const GroupRegistry::Member* GroupRegistry::leader_of(const Group& g) const {
  const Member* best = nullptr;
  for (const auto& m : g.members) {
    if (!m.up || m.last.role != "leader") continue;
    if (!best || m.last.term > best->last.term ||
        (m.last.term == best->last.term && m.last.node_id < best->last.node_id))
      best = &m;
  }
  return best;
}

// Logs a leader change (new address or new term) or the loss of the leader, once per change.
void GroupRegistry::announce_leader(uint32_t id, Group& g, TimePoint now) {
  const Member* l = leader_of(g);
  std::string addr = l ? l->address : std::string();
  uint64_t term = l ? l->last.term : 0;
  if (addr == g.announced_leader && term == g.announced_term) return;
  if (l)
    add_event(now, fmt::format("group {} leader is now node {} at {} (term {})", id, l->last.node_id,
                               addr, term));
  else
    add_event(now, fmt::format("group {} has no leader", id));
  g.announced_leader = std::move(addr);
  g.announced_term = term;
}

Status GroupRegistry::heartbeat(const Heartbeat& hb, TimePoint now) {
  auto it = group_of_.find(hb.address);
  if (it == group_of_.end())
    return make_error(Code::NOT_FOUND,
                      fmt::format("heartbeat from {} (node {}): not a member of any group; add it "
                                  "with `mydfs admin add-group`",
                                  hb.address, hb.node_id));
  if (it->second != hb.group_id)
    return make_error(Code::NOT_FOUND,
                      fmt::format("heartbeat from {} (node {}) names group {}, but it is a member "
                                  "of group {}",
                                  hb.address, hb.node_id, hb.group_id, it->second));
  if (!known_role(hb.role))
    return make_error(Code::BAD_REQUEST,
                      fmt::format("heartbeat from {}: unknown role '{}'", hb.address, hb.role));
  Group& g = groups_.at(hb.group_id);  // group_of_ mirrors groups_: both lookups succeed
  auto m = std::find_if(g.members.begin(), g.members.end(),
                        [&](const Member& x) { return x.address == hb.address; });
  bool was_up = m->up;
  m->last = hb;
  m->last_seen = m->heard ? std::max(m->last_seen, now) : now;
  m->heard = true;
  m->up = true;
  if (!was_up) add_event(now, fmt::format("member {} of group {} is up", hb.address, hb.group_id));
  announce_leader(hb.group_id, g, now);
  return ok_status();
}

void GroupRegistry::check(TimePoint now) {
  const auto timeout = cfg_.heartbeat_interval * cfg_.missed_heartbeats;
  for (auto& [id, g] : groups_) {
    for (auto& m : g.members) {
      if (!m.up || now - m.last_seen <= timeout) continue;
      m.up = false;
      add_event(now, fmt::format("member {} of group {} is down (no heartbeat for {:.1f} s)",
                                 m.address, id, seconds(now - m.last_seen)));
    }
    announce_leader(id, g, now);
  }
  prune_promises(now);
}

std::optional<std::string> GroupRegistry::leader_address(uint32_t group) const {
  auto it = groups_.find(group);
  if (it == groups_.end()) return std::nullopt;
  const Member* l = leader_of(it->second);
  if (!l) return std::nullopt;
  return l->address;
}

// ---------------------------------------------------------------- placement

// A promise counts while it is younger than promise_ttl; after that the members' reports are
// assumed to include the allocation.
std::map<uint32_t, GroupRegistry::Promised> GroupRegistry::promised(TimePoint now) const {
  std::map<uint32_t, Promised> out;
  for (const auto& p : promises_)
    if (now - p.at < cfg_.promise_ttl) {
      out[p.group].slices += p.count;
      out[p.group].bytes += p.bytes;
    }
  return out;
}

void GroupRegistry::prune_promises(TimePoint now) {
  std::erase_if(promises_, [&](const Promise& p) { return now - p.at >= cfg_.promise_ttl; });
}

// Every member keeps a copy of every slice: the group has the room of its fullest up member.
GroupRegistry::Room GroupRegistry::room_of(const Group& g) const {
  const Member* l = leader_of(g);
  if (!l) return {};
  Room r{l->last.free_bytes, l->last.free_bytes + l->last.used_bytes, l->last_seen};
  for (const auto& m : g.members)
    if (m.up && m.heard && m.last.free_bytes < r.free_bytes)
      r = Room{m.last.free_bytes, m.last.free_bytes + m.last.used_bytes, m.last_seen};
  return r;
}

Result<std::vector<Run>> GroupRegistry::allocate(uint64_t file_id, uint32_t n_slices, uint64_t bytes, uint32_t k,
                                                 TimePoint now) {
  if (n_slices > kMaxSlicesPerAllocate)
    return make_error(Code::BAD_REQUEST, fmt::format("file {}: {} slices in one allocation; at most {}",
                                                     file_id, n_slices, kMaxSlicesPerAllocate));
  std::vector<Run> runs;
  if (n_slices == 0) return runs;
  if (k == 0) k = cfg_.default_run;
  k = std::max<uint32_t>(k, 1);
  prune_promises(now);
  // What one slice is expected to take on disk: whole 4 KiB blocks, at most a full slot.
  constexpr uint64_t kBlock = 4096, kSlot = 4u << 20;
  if (bytes == 0 || bytes > uint64_t{n_slices} * kSlot) bytes = uint64_t{n_slices} * kSlot;
  uint64_t per = std::max<uint64_t>(kBlock, (bytes / n_slices + kBlock - 1) / kBlock * kBlock);

  // Candidates in ascending id order (the round-robin order), with the slices they have room for.
  struct Cand {
    uint32_t id;
    uint64_t free;  // slices
    std::string leader;
  };
  std::vector<Cand> cands;
  uint64_t total = 0;
  for (const auto& [id, g] : groups_) {
    const Member* l = leader_of(g);
    if (!l) continue;
    // A promise counts until a report that came after it (which includes what was written for
    // it, as slices are written right after they are placed), or until promise_ttl passes.
    Room rm = room_of(g);
    uint64_t p_slices = 0, p_bytes = 0;
    for (const auto& p : promises_) {
      if (p.group != id || now - p.at >= cfg_.promise_ttl) continue;
      if (p.at >= l->last_seen) p_slices += p.count;
      if (p.at >= rm.reported) p_bytes += p.bytes;
    }
    uint64_t slots = l->last.free_slots > p_slices ? l->last.free_slots - p_slices : 0;
    uint64_t room = rm.free_bytes > p_bytes ? rm.free_bytes - p_bytes : 0;
    uint64_t eff = std::min(slots, room / per);
    cands.push_back(Cand{id, eff, l->address});
    total += eff;
  }
  // No group has a leader: the cluster is starting or every group is electing one. That passes.
  if (cands.empty() && !groups_.empty()) {
    Error e = make_error(Code::UNAVAILABLE, fmt::format("no storage group has a leader right now ({} group(s) known); "
                                                        "retry in a moment", groups_.size()));
    e.sys_errno = EAGAIN;  // the client waits for the election
    return e;
  }
  // Runs shrink down to one slice when needed, so the request fits iff the total does; checking
  // first keeps a failed allocation free of side effects.
  if (total < n_slices)
    return make_error(Code::NO_SPACE,
                      fmt::format("no space: file {} needs {} slices ({} bytes), room for {} in {} usable of {} "
                                  "groups (room = members' free space and slots less recent promises)",
                                  file_id, n_slices, bytes, total, cands.size(), groups_.size()));

  std::map<uint32_t, uint64_t> taken;
  uint32_t left = n_slices;
  while (left > 0) {
    uint64_t best = 0;
    for (const auto& c : cands) best = std::max(best, c.free);
    // Among groups with the most free, the first after the cursor, wrapping around.
    Cand* pick = nullptr;
    for (auto& c : cands) {
      if (c.free != best) continue;
      if (!pick) pick = &c;
      if (c.id > rr_cursor_) { pick = &c; break; }
    }
    uint32_t count = static_cast<uint32_t>(std::min<uint64_t>({k, left, best}));
    pick->free -= count;  // best >= 1 because total >= left
    left -= count;
    rr_cursor_ = pick->id;
    taken[pick->id] += count;
    runs.push_back(Run{pick->id, count, pick->leader});
  }
  for (const auto& [id, n] : taken) promises_.push_back(Promise{now, id, n, n * per});
  return runs;
}

// ---------------------------------------------------------------- reporting

std::vector<GroupStatus> GroupRegistry::status(TimePoint now) const {
  auto prom = promised(now);
  std::vector<GroupStatus> out;
  for (const auto& [id, g] : groups_) {
    GroupStatus s;
    s.id = id;
    const Member* l = leader_of(g);
    for (const auto& m : g.members) {
      MemberStatus ms;
      static_cast<Heartbeat&>(ms) = m.last;
      ms.up = m.up;
      ms.heard = m.heard;
      ms.seconds_since_heartbeat = m.heard ? std::max(0.0, seconds(now - m.last_seen)) : -1;
      ms.is_leader = &m == l;
      s.members.push_back(std::move(ms));
    }
    if (l) {
      s.leader = l->address;
      s.free_slots = l->last.free_slots;
      s.capacity_slots = l->last.capacity_slots;
      Room r = room_of(g);
      s.free_bytes = r.free_bytes;
      s.capacity_bytes = r.capacity_bytes;
      s.used_bytes = l->last.used_bytes;
      s.usable = true;
    }
    auto p = prom.find(id);
    if (p != prom.end()) {
      s.promised = p->second.slices;
      s.promised_bytes = p->second.bytes;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<GroupEvent> GroupRegistry::events() const { return {events_.begin(), events_.end()}; }

uint64_t GroupRegistry::total_free_slots() const {
  uint64_t n = 0;
  for (const auto& [id, g] : groups_)
    if (const Member* l = leader_of(g)) n += l->last.free_slots;
  return n;
}

uint64_t GroupRegistry::total_free_bytes() const {
  uint64_t n = 0;
  for (const auto& [id, g] : groups_) n += room_of(g).free_bytes;
  return n;
}

uint64_t GroupRegistry::total_capacity_bytes() const {
  uint64_t n = 0;
  for (const auto& [id, g] : groups_) n += room_of(g).capacity_bytes;
  return n;
}

uint64_t GroupRegistry::total_capacity_slots() const {
  uint64_t n = 0;
  for (const auto& [id, g] : groups_)
    if (const Member* l = leader_of(g)) n += l->last.capacity_slots;
  return n;
}

}  // namespace mydfs::tracker
