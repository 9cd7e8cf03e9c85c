// GroupRegistry: membership, persistence, heartbeats and liveness, leader choice, placement.
// Time is a plain TimePoint the tests advance; nothing here sleeps.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "tracker/groups.h"

namespace mydfs::tracker {

// For readable failure messages (found by ADL, so outside the anonymous namespace).
void PrintTo(const Run& r, std::ostream* os) { *os << r.count << "@g" << r.group << "(" << r.leader << ")"; }

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Member i (0-based) of group g listens on 127.0.0.1:7{g}0{i}; its node id is 10*g + i.
std::string addr(uint32_t g, uint32_t i) { return fmt::format("127.0.0.1:{}", 7000 + 100 * g + i); }
uint32_t node(uint32_t g, uint32_t i) { return 10 * g + i; }

Heartbeat beat(uint32_t g, uint32_t i, std::string role, uint64_t term, uint32_t free_slots = 100) {
  Heartbeat hb;
  hb.node_id = node(g, i);
  hb.group_id = g;
  hb.address = addr(g, i);
  hb.http = fmt::format("127.0.0.1:{}", 8000 + 100 * g + i);
  hb.role = std::move(role);
  hb.term = term;
  hb.free_slots = free_slots;
  hb.high_water = 1000 - free_slots;
  hb.capacity_slots = 1000;
  hb.free_bytes = uint64_t{free_slots} << 22;  // as many full slices as free slots
  hb.used_bytes = uint64_t{1000 - free_slots} << 22;
  hb.in_flight = 2;
  hb.qps = 12.5;
  return hb;
}

std::vector<std::string> texts(const GroupRegistry& r) {
  std::vector<std::string> out;
  for (const auto& e : r.events()) out.push_back(e.text);
  return out;
}

class GroupsTest : public ::testing::Test {
 protected:
  // Groups 1..n, three members each.
  void add_groups(uint32_t n) {
    for (uint32_t g = 1; g <= n; ++g)
      ASSERT_TRUE(reg.add_group(g, {addr(g, 0), addr(g, 1), addr(g, 2)}).ok());
  }
  // A full round of heartbeats from group g: member 0 leads in `term` and reports `free_slots`.
  void beat_group(uint32_t g, uint32_t free_slots, uint64_t term = 1) {
    ASSERT_TRUE(reg.heartbeat(beat(g, 0, "leader", term, free_slots), now).ok());
    ASSERT_TRUE(reg.heartbeat(beat(g, 1, "follower", term, free_slots), now).ok());
    ASSERT_TRUE(reg.heartbeat(beat(g, 2, "follower", term, free_slots), now).ok());
  }
  // Allocates and returns the runs as (group, count) pairs; fails the test on error.
  std::vector<std::pair<uint32_t, uint32_t>> place(uint32_t n, uint32_t k = 0) {
    auto r = reg.allocate(42, n, 0, k, now);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    std::vector<std::pair<uint32_t, uint32_t>> out;
    if (r.ok())
      for (const auto& run : *r) out.emplace_back(run.group, run.count);
    return out;
  }
  uint64_t promised(uint32_t g) const {
    for (const auto& s : reg.status(now))
      if (s.id == g) return s.promised;
    ADD_FAILURE() << "no group " << g;
    return 0;
  }

  GroupsConfig cfg;
  GroupRegistry reg{cfg};
  TimePoint now = TimePoint{} + std::chrono::hours(1);
};

using P = std::vector<std::pair<uint32_t, uint32_t>>;

// ------------------------------------------------------------------ membership

TEST_F(GroupsTest, AddGroup_rejectsBadInput) {
  auto code = [&](uint32_t id, std::vector<std::string> a) { return reg.add_group(id, a).code(); };
  EXPECT_EQ(code(0, {addr(1, 0)}), Code::BAD_REQUEST);
  EXPECT_EQ(code(1, {}), Code::BAD_REQUEST);
  for (const char* bad : {"nohost", "host:", "host:99999", "host:12a", ":7101", "h:0", "a b:1", ""})
    EXPECT_EQ(code(1, {addr(1, 0), bad}), Code::BAD_REQUEST) << "'" << bad << "'";
  EXPECT_EQ(code(1, {addr(1, 0), addr(1, 1), addr(1, 0)}), Code::BAD_REQUEST);
  std::vector<std::string> eight;
  for (uint32_t i = 0; i < 8; ++i) eight.push_back(addr(1, i));
  EXPECT_EQ(code(1, eight), Code::BAD_REQUEST);
  EXPECT_TRUE(reg.group_ids().empty());

  eight.pop_back();  // seven is the limit
  EXPECT_TRUE(reg.add_group(1, eight).ok());
  EXPECT_EQ(reg.members(1), eight);
}

TEST_F(GroupsTest, AddGroup_conflicts) {
  ASSERT_TRUE(reg.add_group(2, {addr(2, 0), addr(2, 1)}).ok());
  auto again = reg.add_group(2, {addr(3, 0)});
  EXPECT_EQ(again.code(), Code::CONFLICT);
  EXPECT_EQ(again.error().message, "group 2 already exists");
  auto taken = reg.add_group(3, {addr(3, 0), addr(2, 1)});
  EXPECT_EQ(taken.code(), Code::CONFLICT);
  EXPECT_EQ(taken.error().message, "address 127.0.0.1:7201 already belongs to group 2");
  // The failed add claimed nothing: 127.0.0.1:7300 is still free.
  EXPECT_EQ(reg.group_ids(), std::vector<uint32_t>({2}));
  EXPECT_TRUE(reg.add_group(3, {addr(3, 0)}).ok());
  EXPECT_EQ(reg.group_ids(), std::vector<uint32_t>({2, 3}));
  EXPECT_EQ(reg.members(2), std::vector<std::string>({addr(2, 0), addr(2, 1)}));
  EXPECT_TRUE(reg.members(9).empty());
}

TEST_F(GroupsTest, ReplaceMember_newAddressHeard_oldOneRefused_errorsClear) {
  add_groups(2);
  beat_group(1, 100);
  std::string fresh = "127.0.0.1:7199";
  ASSERT_TRUE(reg.replace_member(1, addr(1, 2), fresh).ok());
  EXPECT_EQ(reg.members(1), (std::vector<std::string>{addr(1, 0), addr(1, 1), fresh})) << "same place in the order";
  Heartbeat hb = beat(1, 2, "follower", 1);
  EXPECT_EQ(reg.heartbeat(hb, now).code(), Code::NOT_FOUND) << "the replaced address is no member any more";
  hb.address = fresh;
  hb.node_id = 4;
  EXPECT_TRUE(reg.heartbeat(hb, now).ok());
  auto st = reg.status(now);
  EXPECT_TRUE(st[0].members[2].up);
  EXPECT_EQ(st[0].members[2].node_id, 4u);
  EXPECT_TRUE(reg.replace_member(1, fresh, fresh).ok()) << "a no-op";
  EXPECT_EQ(reg.replace_member(9, addr(1, 0), "127.0.0.1:1").code(), Code::NOT_FOUND);
  EXPECT_EQ(reg.replace_member(1, "127.0.0.1:1", "127.0.0.1:2").code(), Code::NOT_FOUND);
  EXPECT_EQ(reg.replace_member(1, addr(1, 0), addr(2, 0)).code(), Code::CONFLICT);
  EXPECT_EQ(reg.replace_member(1, addr(1, 0), "nohost").code(), Code::BAD_REQUEST);
  // The definition persists in the image like any other.
  Writer w;
  reg.encode(w);
  GroupRegistry back(cfg);
  std::string bytes = w.take();
  Reader r(bytes);
  ASSERT_TRUE(back.decode(r));
  EXPECT_EQ(back.members(1), reg.members(1));
}

TEST_F(GroupsTest, EncodeDecode_roundTripsDefinitionsOnly) {
  add_groups(2);
  ASSERT_TRUE(reg.add_group(7, {"storage-a.example:9000"}).ok());
  beat_group(1, 50);
  Writer w;
  reg.encode(w);

  GroupRegistry back(cfg);
  ASSERT_TRUE(back.add_group(99, {addr(9, 0)}).ok());  // replaced by decode
  Reader r(w.data());
  ASSERT_TRUE(back.decode(r));
  EXPECT_TRUE(r.done());
  EXPECT_EQ(back.group_ids(), std::vector<uint32_t>({1, 2, 7}));
  for (uint32_t g : {1u, 2u, 7u}) EXPECT_EQ(back.members(g), reg.members(g));
  Writer w2;
  back.encode(w2);
  EXPECT_EQ(w2.data(), w.data());
  // Liveness is not persisted: everyone is down until heard from again.
  EXPECT_FALSE(back.leader_address(1).has_value());
  EXPECT_EQ(back.total_free_slots(), 0u);
  EXPECT_TRUE(back.events().empty());

  // Every strict prefix fails and leaves the registry as it was.
  for (size_t n = 0; n < w.size(); ++n) {
    Reader p(std::string_view(w.data()).substr(0, n));
    EXPECT_FALSE(back.decode(p)) << "prefix " << n;
  }
  EXPECT_EQ(back.group_ids(), std::vector<uint32_t>({1, 2, 7}));
}

TEST_F(GroupsTest, Decode_rejectsInvalidDefinitions) {
  auto decodes = [&](auto fill) {
    Writer w;
    fill(w);
    Reader r(w.data());
    GroupRegistry g(cfg);
    return g.decode(r);
  };
  EXPECT_FALSE(decodes([](Writer& w) { w.u32(1); w.u32(0); w.u32(1); w.str(addr(1, 0)); }));  // id 0
  EXPECT_FALSE(decodes([](Writer& w) {  // one address in two groups
    w.u32(2);
    w.u32(1); w.u32(1); w.str(addr(1, 0));
    w.u32(2); w.u32(1); w.str(addr(1, 0));
  }));
  EXPECT_FALSE(decodes([](Writer& w) { w.u32(1); w.u32(1); w.u32(1); w.str("bad"); }));
  EXPECT_FALSE(decodes([](Writer& w) { w.u32(0xffffffff); }));  // hostile count
  EXPECT_TRUE(decodes([](Writer& w) { w.u32(0); }));
}

// ------------------------------------------------------------------ heartbeats and liveness

TEST_F(GroupsTest, Heartbeat_unknownSenderRejected) {
  add_groups(2);
  auto stranger = beat(1, 0, "leader", 1);
  stranger.address = "127.0.0.1:9999";
  auto r = reg.heartbeat(stranger, now);
  EXPECT_EQ(r.code(), Code::NOT_FOUND);
  EXPECT_EQ(r.error().message,
            "heartbeat from 127.0.0.1:9999 (node 10): not a member of any group; add it with "
            "`mydfs admin add-group`");
  auto wrong_group = beat(1, 0, "leader", 1);
  wrong_group.group_id = 2;
  r = reg.heartbeat(wrong_group, now);
  EXPECT_EQ(r.code(), Code::NOT_FOUND);
  EXPECT_EQ(r.error().message,
            "heartbeat from 127.0.0.1:7100 (node 10) names group 2, but it is a member of group 1");
  EXPECT_EQ(reg.heartbeat(beat(1, 0, "boss", 1), now).code(), Code::BAD_REQUEST);
  EXPECT_TRUE(reg.events().empty());
  EXPECT_FALSE(reg.leader_address(1).has_value());
  EXPECT_FALSE(reg.leader_address(2).has_value());
}

TEST_F(GroupsTest, Check_neverHeardMemberIsDown) {
  add_groups(1);
  reg.check(now);
  auto s = reg.status(now);
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(s[0].members.size(), 3u);
  for (const auto& m : s[0].members) {
    EXPECT_FALSE(m.up);
    EXPECT_FALSE(m.heard);
    EXPECT_EQ(m.seconds_since_heartbeat, -1);
    EXPECT_EQ(m.group_id, 1u);
  }
  EXPECT_EQ(s[0].members[1].address, addr(1, 1));
  EXPECT_FALSE(s[0].usable);
  EXPECT_TRUE(reg.events().empty());  // nothing changed: never up, so never "down"
}

TEST_F(GroupsTest, Check_marksDownAfterMissedHeartbeatsAndHeartbeatRevives) {
  add_groups(1);
  beat_group(1, 100);
  now += seconds(3);  // exactly three intervals: not yet "older than"
  reg.check(now);
  EXPECT_EQ(reg.leader_address(1), addr(1, 0));
  now += milliseconds(1);
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "follower", 1), now).ok());  // only member 1 keeps going
  reg.check(now);
  auto s = reg.status(now);
  EXPECT_FALSE(s[0].members[0].up);
  EXPECT_TRUE(s[0].members[1].up);
  EXPECT_FALSE(s[0].members[2].up);
  EXPECT_DOUBLE_EQ(s[0].members[0].seconds_since_heartbeat, 3.001);
  EXPECT_DOUBLE_EQ(s[0].members[1].seconds_since_heartbeat, 0);
  EXPECT_FALSE(reg.leader_address(1).has_value());
  EXPECT_FALSE(s[0].usable);

  now += seconds(1);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 1), now).ok());
  reg.check(now);
  EXPECT_EQ(reg.leader_address(1), addr(1, 0));
  EXPECT_TRUE(reg.status(now)[0].members[0].up);
  EXPECT_FALSE(reg.status(now)[0].members[2].up);
}

TEST_F(GroupsTest, Leader_highestTermAmongUpClaimants) {
  ASSERT_TRUE(reg.add_group(1, {addr(1, 0), addr(1, 1), addr(1, 2), addr(1, 3)}).ok());
  EXPECT_FALSE(reg.leader_address(1).has_value());
  EXPECT_FALSE(reg.leader_address(5).has_value());  // no such group
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "follower", 9), now).ok());  // highest term, not a leader
  EXPECT_FALSE(reg.leader_address(1).has_value());
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "leader", 5), now).ok());  // stale leader
  ASSERT_TRUE(reg.heartbeat(beat(1, 3, "leader", 7), now).ok());
  EXPECT_EQ(reg.leader_address(1), addr(1, 3));
  ASSERT_TRUE(reg.heartbeat(beat(1, 2, "leader", 7), now).ok());  // same term: lower node id wins
  EXPECT_EQ(reg.leader_address(1), addr(1, 2));
  auto s = reg.status(now)[0];
  EXPECT_EQ(s.leader, addr(1, 2));
  EXPECT_FALSE(s.members[3].is_leader);
  EXPECT_TRUE(s.members[2].is_leader);

  // The term-7 claimants fall silent: the stale term-5 leader is the best up claimant left.
  now += milliseconds(3500);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "follower", 9), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "leader", 5), now).ok());
  reg.check(now);
  EXPECT_EQ(reg.leader_address(1), addr(1, 1));
}

TEST_F(GroupsTest, Events_recordDownUpAndLeaderChanges) {
  add_groups(1);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 3), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "follower", 3), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 3), now + milliseconds(1)).ok());  // no change
  now += milliseconds(3200);
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "candidate", 4), now).ok());
  reg.check(now);
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "leader", 4), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "leader", 5), now).ok());  // re-elected: new term
  now += milliseconds(500);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "follower", 5), now).ok());
  EXPECT_EQ(texts(reg), std::vector<std::string>({
                            "member 127.0.0.1:7100 of group 1 is up",
                            "group 1 leader is now node 10 at 127.0.0.1:7100 (term 3)",
                            "member 127.0.0.1:7101 of group 1 is up",
                            "member 127.0.0.1:7100 of group 1 is down (no heartbeat for 3.2 s)",
                            "group 1 has no leader",
                            "group 1 leader is now node 11 at 127.0.0.1:7101 (term 4)",
                            "group 1 leader is now node 11 at 127.0.0.1:7101 (term 5)",
                            "member 127.0.0.1:7100 of group 1 is up",
                        }));
  EXPECT_EQ(reg.events()[3].at, now - milliseconds(500));
}

TEST_F(GroupsTest, Events_keepOnlyTheLast100) {
  add_groups(1);
  for (int i = 0; i < 60; ++i) {  // each cycle: up, leader, down, no leader = 4 events
    ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 1), now).ok());
    now += seconds(4);
    reg.check(now);
  }
  auto ev = reg.events();
  ASSERT_EQ(ev.size(), 100u);
  EXPECT_EQ(ev.front().text, "member 127.0.0.1:7100 of group 1 is up");
  EXPECT_EQ(ev.front().at, now - seconds(4 * 25));  // cycles 35..59 survive
  EXPECT_EQ(ev.back().text, "group 1 has no leader");
}

// ------------------------------------------------------------------ placement

TEST_F(GroupsTest, Allocate_sevenSlicesMakeThreePlusThreePlusOne) {
  add_groups(1);
  beat_group(1, 100);
  auto r = reg.allocate(7, 7, 0, 0, now);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, std::vector<tracker::Run>({{1, 3, addr(1, 0)}, {1, 3, addr(1, 0)}, {1, 1, addr(1, 0)}}));
  EXPECT_EQ(promised(1), 7u);
}

TEST_F(GroupsTest, Allocate_sevenSlicesSpreadOverEqualGroups) {
  add_groups(3);
  for (uint32_t g = 1; g <= 3; ++g) beat_group(g, 100);
  EXPECT_EQ(place(7), P({{1, 3}, {2, 3}, {3, 1}}));
}

TEST_F(GroupsTest, Allocate_runsGoToGroupsWithMostFreeInOrder) {
  add_groups(4);
  beat_group(1, 10);
  beat_group(2, 12);
  beat_group(3, 11);
  beat_group(4, 2);
  // 12 → 9 puts group 3 (11) ahead, then group 1 (10), then group 2 (9) again.
  EXPECT_EQ(place(12), P({{2, 3}, {3, 3}, {1, 3}, {2, 3}}));
  auto s = reg.status(now);
  EXPECT_EQ(s[1].promised, 6u);
  EXPECT_EQ(s[1].free_slots, 12u);  // the report, not the effective figure
}

TEST_F(GroupsTest, Allocate_promisesCountedUntilTtl) {
  add_groups(2);
  beat_group(1, 100);
  beat_group(2, 99);
  EXPECT_EQ(place(3), P({{1, 3}}));  // 97 vs 99 after this
  EXPECT_EQ(place(3), P({{2, 3}}));  // 97 vs 96
  EXPECT_EQ(place(3), P({{1, 3}}));  // 94 vs 96
  EXPECT_EQ(promised(1), 6u);
  EXPECT_EQ(promised(2), 3u);
  now += milliseconds(2999);  // still young: 94 vs 96
  EXPECT_EQ(place(3), P({{2, 3}}));
  now += milliseconds(1);  // the first three promises expire; the fourth (to group 2) remains
  EXPECT_EQ(promised(1), 0u);
  EXPECT_EQ(promised(2), 3u);
  EXPECT_EQ(place(3), P({{1, 3}}));  // 100 vs 96
}

TEST_F(GroupsTest, Allocate_perCallRunLength) {
  add_groups(1);
  beat_group(1, 1000);
  EXPECT_EQ(place(7, 1), P(7, {1, 1}));
  EXPECT_EQ(place(7, 5), P({{1, 5}, {1, 2}}));
  EXPECT_EQ(place(2, 5), P({{1, 2}}));

  cfg.default_run = 2;
  reg = GroupRegistry(cfg);
  add_groups(1);
  beat_group(1, 1000);
  EXPECT_EQ(place(7, 0), P({{1, 2}, {1, 2}, {1, 2}, {1, 1}}));
}

TEST_F(GroupsTest, Allocate_downGroupSkippedAndBackAfterHeartbeat) {
  add_groups(2);
  beat_group(1, 100);
  beat_group(2, 50);
  EXPECT_EQ(place(3), P({{1, 3}}));
  now += milliseconds(3500);  // group 1's leader falls silent; its followers and group 2 go on
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "follower", 1), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 2, "follower", 1), now).ok());
  beat_group(2, 50);
  reg.check(now);
  EXPECT_EQ(place(7), P({{2, 3}, {2, 3}, {2, 1}}));
  EXPECT_FALSE(reg.status(now)[0].usable);
  EXPECT_EQ(reg.total_free_slots(), 50u);

  now += milliseconds(500);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 1), now).ok());
  EXPECT_EQ(place(3), P({{1, 3}}));
  EXPECT_EQ(reg.total_free_slots(), 150u);
}

TEST_F(GroupsTest, Allocate_tiesSpreadRoundRobin) {
  cfg.promise_ttl = milliseconds(0);  // promises never count, so every call is a three-way tie
  reg = GroupRegistry(cfg);
  add_groups(3);
  for (uint32_t g = 1; g <= 3; ++g) beat_group(g, 50);
  std::vector<uint32_t> chosen;
  for (int i = 0; i < 7; ++i) chosen.push_back(place(1)[0].first);
  EXPECT_EQ(chosen, std::vector<uint32_t>({1, 2, 3, 1, 2, 3, 1}));
  // Within one call the groups tie again after each round.
  EXPECT_EQ(place(9, 1), P({{2, 1}, {3, 1}, {1, 1}, {2, 1}, {3, 1}, {1, 1}, {2, 1}, {3, 1}, {1, 1}}));
}

TEST_F(GroupsTest, Allocate_noSpaceWhenAllFull) {
  add_groups(2);
  beat_group(1, 0);
  beat_group(2, 0);
  auto r = reg.allocate(5, 1, 0, 0, now);
  ASSERT_EQ(r.code(), Code::NO_SPACE);
  EXPECT_EQ(r.error().message.rfind("no space: ", 0), 0u) << r.error().message;
  EXPECT_EQ(r.error().message,
            "no space: file 5 needs 1 slices (4194304 bytes), room for 0 in 2 usable of 2 groups (room = "
            "members' free space and slots less recent promises)");
}

TEST_F(GroupsTest, Allocate_shrinksRunsBeforeFailingAndFailsWithoutPromising) {
  add_groups(2);
  beat_group(1, 2);
  beat_group(2, 2);
  EXPECT_EQ(reg.allocate(1, 5, 0, 0, now).code(), Code::NO_SPACE);
  EXPECT_EQ(promised(1), 0u);
  EXPECT_EQ(promised(2), 0u);
  EXPECT_EQ(place(4), P({{1, 2}, {2, 2}}));
  EXPECT_EQ(reg.allocate(1, 1, 0, 0, now).code(), Code::NO_SPACE);  // both fully promised
}

TEST_F(GroupsTest, Allocate_groupWithoutUpLeaderUnusable) {
  add_groups(2);
  beat_group(2, 0);  // full
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "follower", 2, 500), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 1, "candidate", 3, 500), now).ok());
  auto r = reg.allocate(1, 1, 0, 0, now);
  EXPECT_EQ(r.code(), Code::NO_SPACE);
  EXPECT_EQ(r.error().message,
            "no space: file 1 needs 1 slices (4194304 bytes), room for 0 in 1 usable of 2 groups (room = "
            "members' free space and slots less recent promises)");
  EXPECT_FALSE(reg.status(now)[0].usable);
  EXPECT_EQ(reg.total_free_slots(), 0u);
  EXPECT_EQ(reg.total_capacity_slots(), 1000u) << "only group 2's leader reports";
}

TEST_F(GroupsTest, Allocate_noLeaderAnywhere_unavailableNotNoSpace) {
  add_groups(1);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "follower", 2, 500), now).ok());
  auto r = reg.allocate(1, 1, 0, 0, now);
  EXPECT_EQ(r.code(), Code::UNAVAILABLE) << "an election or a start-up passes: the client retries";
  EXPECT_NE(r.error().message.find("no storage group has a leader"), std::string::npos) << r.error().message;
  EXPECT_EQ(promised(1), 0u);
}

TEST_F(GroupsTest, Allocate_zeroSlicesIsEmptyAndTooManyRejected) {
  add_groups(1);
  beat_group(1, 100);
  auto none = reg.allocate(1, 0, 0, 0, now);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(reg.allocate(1, (1u << 20) + 1, 0, 0, now).code(), Code::BAD_REQUEST);
  EXPECT_EQ(promised(1), 0u);
}

TEST_F(GroupsTest, Status_reportsMembersLeaderAndTotals) {
  add_groups(2);
  beat_group(1, 100, 4);
  beat_group(2, 30);
  ASSERT_TRUE(reg.add_group(3, {addr(3, 0)}).ok());
  now += milliseconds(250);
  ASSERT_EQ(place(4, 4), P({{1, 4}}));
  auto s = reg.status(now);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].id, 1u);
  EXPECT_EQ(s[0].leader, addr(1, 0));
  EXPECT_EQ(s[0].free_slots, 100u);
  EXPECT_EQ(s[0].capacity_slots, 1000u);
  EXPECT_EQ(s[0].promised, 4u);
  EXPECT_TRUE(s[0].usable);
  const MemberStatus& m = s[0].members[1];
  EXPECT_EQ(m.node_id, 11u);
  EXPECT_EQ(m.address, addr(1, 1));
  EXPECT_EQ(m.http, "127.0.0.1:8101");
  EXPECT_EQ(m.role, "follower");
  EXPECT_EQ(m.term, 4u);
  EXPECT_EQ(m.high_water, 900u);
  EXPECT_EQ(m.in_flight, 2u);
  EXPECT_DOUBLE_EQ(m.qps, 12.5);
  EXPECT_TRUE(m.up);
  EXPECT_TRUE(m.heard);
  EXPECT_FALSE(m.is_leader);
  EXPECT_DOUBLE_EQ(m.seconds_since_heartbeat, 0.25);
  EXPECT_EQ(s[2].leader, "");
  EXPECT_FALSE(s[2].usable);
  EXPECT_EQ(reg.total_free_slots(), 130u);
  EXPECT_EQ(reg.total_capacity_slots(), 2000u);
  EXPECT_EQ(s[0].free_bytes, 100u << 22);
  EXPECT_EQ(s[0].capacity_bytes, uint64_t{1000} << 22);
  EXPECT_EQ(s[0].promised_bytes, 4u << 22) << "no size given: every slice counted full";
  EXPECT_EQ(reg.total_free_bytes(), 130u << 22);
  EXPECT_EQ(reg.total_capacity_bytes(), uint64_t{2000} << 22);
}

TEST_F(GroupsTest, Allocate_smallFilesTakeTheirBytesNotWholeSlots) {
  add_groups(1);
  beat_group(1, 2);  // 2 free slots' worth of bytes (8 MiB), 2 free slots
  // A 4 MiB file needs a slot and 4 MiB; two 10-byte files need a slot and 4 KiB each.
  auto r = reg.allocate(1, 1, 10, 0, now);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(reg.status(now)[0].promised_bytes, 4096u);
  // Slots run out before bytes: the slot count is a limit too.
  ASSERT_TRUE(reg.allocate(2, 1, 10, 0, now).ok());
  EXPECT_EQ(reg.allocate(3, 1, 10, 0, now).code(), Code::NO_SPACE);
}

TEST_F(GroupsTest, Allocate_roomIsTheFullestUpMembersFreeBytes) {
  add_groups(2);
  beat_group(1, 100);
  beat_group(2, 100);
  // Group 1's second member has only 1 MiB left: every member holds every slice, so group 1 can
  // take 1 MiB, and a 2 MiB file goes to group 2.
  Heartbeat tight = beat(1, 1, "follower", 1, 100);
  tight.free_bytes = 1u << 20;
  ASSERT_TRUE(reg.heartbeat(tight, now).ok());
  EXPECT_EQ(reg.status(now)[0].free_bytes, 1u << 20);
  auto r = reg.allocate(1, 1, 2u << 20, 0, now);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].group, 2u);
  // Once that member is down, the group's room is its up members' again.
  now += milliseconds(10000);
  beat_group(2, 100);
  ASSERT_TRUE(reg.heartbeat(beat(1, 0, "leader", 1, 100), now).ok());
  ASSERT_TRUE(reg.heartbeat(beat(1, 2, "follower", 1, 100), now).ok());
  reg.check(now);
  EXPECT_EQ(reg.status(now)[0].free_bytes, 100u << 22);
}

}  // namespace
}  // namespace mydfs::tracker
