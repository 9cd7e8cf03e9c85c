// The Raft core driven by hand: elections and pre-vote, the vote rules, log replication and its
// repair, the commit rule, check-quorum, leader transfer, membership changes, snapshots, read
// index and the Ready contract. A rule about one message is tested with hand-built messages;
// the rest runs on a small in-memory cluster without faults (tests/raft/sim_test.cc adds them).
//
// Every Ready in these tests goes through Node::handle, which does what core.h asks of the owner
// (install the snapshot, persist, send, apply, advance) on a simulated disk and checks the
// contract on the way: nothing leaves before what it depends on is durable, and nothing is
// applied that is not durable.
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "raft/core.h"

namespace mydfs::raft {
namespace {

constexpr int kElection = 10;

ConfState voters(std::vector<NodeId> ids) {
  std::sort(ids.begin(), ids.end());
  ConfState c;
  c.voters = std::move(ids);
  return c;
}

Config config(NodeId id) {
  Config c;
  c.id = id;
  c.election_ticks = kElection;
  c.heartbeat_ticks = 1;
  c.seed = 7;
  return c;
}

Restored bootstrap(std::vector<NodeId> ids) {
  Restored r;
  r.bootstrap = voters(std::move(ids));
  return r;
}

// A node that stopped with this hard state and this log (from index 1, no snapshot).
Restored restored(std::vector<NodeId> ids, HardState hs, std::vector<Entry> log) {
  Restored r = bootstrap(std::move(ids));
  r.hard_state = hs;
  r.entries = std::move(log);
  return r;
}

Entry ent(uint64_t index, uint64_t term, std::string data = {}, EntryType type = EntryType::NORMAL) {
  Entry e;
  e.index = index;
  e.term = term;
  e.type = type;
  e.data = data.empty() && type == EntryType::NORMAL ? std::to_string(index) + "@" + std::to_string(term) : data;
  return e;
}

// Entries 1..n of term `term`.
std::vector<Entry> log_of(uint64_t n, uint64_t term) {
  std::vector<Entry> v;
  for (uint64_t i = 1; i <= n; ++i) v.push_back(ent(i, term));
  return v;
}

Entry conf_entry(uint64_t index, uint64_t term, ConfChange::Kind kind, NodeId node) {
  ConfChange cc{kind, node, ""};
  Writer w;
  cc.encode(w);
  return ent(index, term, w.take(), EntryType::CONF);
}

Message msg(MsgType type, NodeId from, NodeId to, uint64_t term) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = term;
  return m;
}

Message vote_req(NodeId from, NodeId to, uint64_t term, uint64_t last_index, uint64_t last_term,
                 MsgType type = MsgType::VOTE) {
  Message m = msg(type, from, to, term);
  m.index = last_index;
  m.log_term = last_term;
  return m;
}

Message append(NodeId from, NodeId to, uint64_t term, uint64_t index, uint64_t log_term, std::vector<Entry> es,
               uint64_t commit) {
  Message m = msg(MsgType::APPEND, from, to, term);
  m.index = index;
  m.log_term = log_term;
  m.entries = std::move(es);
  m.commit = commit;
  return m;
}

std::optional<Message> find_msg(const std::vector<Message>& ms, MsgType type, NodeId to) {
  for (const auto& m : ms)
    if (m.type == type && m.to == to) return m;
  return std::nullopt;
}

size_t count_msgs(const std::vector<Message>& ms, MsgType type) {
  return std::count_if(ms.begin(), ms.end(), [&](const Message& m) { return m.type == type; });
}

// What a node made durable, kept the way core.h describes it.
struct Disk {
  HardState hs;
  SnapshotMeta snap;
  std::vector<Entry> log;  // contiguous from snap.index + 1

  uint64_t last() const { return snap.index + log.size(); }
  std::optional<uint64_t> term(uint64_t i) const {
    if (i == snap.index) return snap.term;
    if (i < snap.index || i > last()) return std::nullopt;
    return log[i - snap.index - 1].term;
  }
  void drop_through(uint64_t index) {
    size_t n = std::min<size_t>(log.size(), index > snap.index ? index - snap.index : 0);
    log.erase(log.begin(), log.begin() + n);
  }
  void install(const SnapshotMeta& s) {
    if (term(s.index) == s.term) drop_through(s.index);
    else log.clear();
    snap = s;
  }
  // entries may overwrite the log from entries.front().index on.
  void write(const std::vector<Entry>& es) {
    if (es.empty()) return;
    uint64_t first = es.front().index;
    ASSERT_GT(first, snap.index) << "entries overwrite the snapshot";
    ASSERT_LE(first, last() + 1) << "entries leave a gap in the log";
    log.resize(first - snap.index - 1);
    for (const auto& e : es) {
      ASSERT_EQ(e.index, last() + 1) << "entries of a Ready are not contiguous";
      log.push_back(e);
    }
  }
};

// One core and its owner.
struct Node {
  Node(Config cfg, Restored r) : disk{r.hard_state, r.snapshot, r.entries}, core(cfg, std::move(r)) {
    applied_index = disk.snap.index;
  }

  Disk disk;
  Core core;
  uint64_t applied_index = 0;
  std::vector<Entry> applied;    // every committed entry handed out, in order
  std::vector<ReadState> reads;  // every read released
  std::vector<Ready> readies;    // every Ready handled, for inspection
  std::vector<std::string> snapshots_installed;  // snapshot_data of each installed snapshot

  // Does what core.h asks of the owner of a Ready, checking the contract; returns the messages.
  std::vector<Message> handle(Ready rd) {
    if (rd.snapshot) {
      EXPECT_GT(rd.snapshot->index, applied_index) << "a snapshot would roll the state machine back";
      disk.install(*rd.snapshot);
      applied_index = rd.snapshot->index;
      snapshots_installed.push_back(rd.snapshot_data);
    }
    if (rd.hard_state) disk.hs = *rd.hard_state;
    disk.write(rd.entries);

    // Once the Ready is persisted, the core and the disk agree.
    EXPECT_EQ(core.last_index(), disk.last());
    EXPECT_EQ(core.term_at(core.last_index()), disk.term(disk.last()));
    EXPECT_EQ(core.term(), disk.hs.term) << "the term changed without a hard state to persist";
    EXPECT_EQ(core.vote(), disk.hs.vote) << "the vote changed without a hard state to persist";
    EXPECT_EQ(core.commit(), disk.hs.commit);

    for (const auto& m : rd.messages) check_outgoing(m);
    for (const auto& e : rd.committed) {
      EXPECT_EQ(e.index, applied_index + 1) << "committed entries out of order";
      EXPECT_LE(e.index, disk.last()) << "entry " << e.index << " applied before it is durable";
      EXPECT_EQ(disk.term(e.index), e.term) << "entry " << e.index << " applied differs from the durable one";
      applied_index = e.index;
      applied.push_back(e);
    }
    reads.insert(reads.end(), rd.reads.begin(), rd.reads.end());
    core.advance(rd);
    std::vector<Message> out = rd.messages;
    readies.push_back(std::move(rd));
    return out;
  }

  // Handles Readies until the core has nothing more; returns all their messages.
  std::vector<Message> drain() {
    std::vector<Message> out;
    for (int n = 0; core.has_ready(); ++n) {
      EXPECT_LT(n, 100) << "has_ready() never turns false";
      if (n >= 100) break;
      auto ms = handle(core.ready());
      out.insert(out.end(), ms.begin(), ms.end());
    }
    return out;
  }

  // The application took a snapshot at `index`: the core and the disk drop the log up to it.
  void compact(uint64_t index, std::string data) {
    core.compact(index, std::move(data));
    ASSERT_EQ(core.snapshot().index, index);
    disk.drop_through(index);
    disk.snap = core.snapshot();
  }

  // What would be found on disk after a crash.
  Restored on_disk(const ConfState& boot) const {
    Restored r;
    r.hard_state = disk.hs;
    r.snapshot = disk.snap;
    r.entries = disk.log;
    r.bootstrap = boot;
    return r;
  }

  void check_outgoing(const Message& m) const {
    EXPECT_EQ(m.from, core.id());
    bool pre = m.type == MsgType::PRE_VOTE || m.type == MsgType::PRE_VOTE_RESP;
    if (!pre) {
      EXPECT_LE(m.term, disk.hs.term) << msg_name(m.type) << " sent in a term that is not durable";
    }
    if (m.type == MsgType::VOTE_RESP && !m.reject) {
      EXPECT_EQ(disk.hs.term, m.term) << "vote granted before it is durable";
      EXPECT_EQ(disk.hs.vote, m.to) << "vote granted before it is durable";
    }
    if (m.type == MsgType::VOTE) {
      EXPECT_EQ(disk.hs.vote, core.id()) << "campaign before the own vote is durable";
    }
    if (m.type == MsgType::APPEND) {
      for (const auto& e : m.entries) EXPECT_EQ(disk.term(e.index), e.term) << "entry sent before it is durable";
    }
    if (m.type == MsgType::APPEND_RESP && !m.reject) {
      EXPECT_LE(m.index, disk.last()) << "acknowledged an entry that is not durable";
    }
  }

};

// Answers of node n to one message.
std::vector<Message> answer(Node& n, const Message& m) {
  n.core.step(m);
  return n.drain();
}

// Makes n (a follower that never heard of a leader) leader by hand: ticks it until it campaigns
// and answers its requests as `peer` would, granting everything.
void elect_by_hand(Node& n, NodeId peer) {
  std::vector<Message> out;
  for (int t = 0; t < 2 * kElection && out.empty(); ++t) {
    n.core.tick();
    out = n.drain();
  }
  auto pre = find_msg(out, MsgType::PRE_VOTE, peer);
  ASSERT_TRUE(pre.has_value());
  Message g = msg(MsgType::PRE_VOTE_RESP, peer, n.core.id(), pre->term);
  out = answer(n, g);
  auto v = find_msg(out, MsgType::VOTE, peer);
  ASSERT_TRUE(v.has_value());
  answer(n, msg(MsgType::VOTE_RESP, peer, n.core.id(), v->term));
  ASSERT_EQ(n.core.role(), Role::LEADER);
}

// Several nodes and a network that delivers everything, in order, unless a node is isolated.
class Cluster {
 public:
  Cluster() = default;
  explicit Cluster(std::function<void(Config&)> tweak) : tweak_(std::move(tweak)) {}
  explicit Cluster(std::vector<NodeId> ids, std::function<void(Config&)> tweak = {}) : tweak_(std::move(tweak)) {
    for (NodeId id : ids) add(id, bootstrap(ids));
  }

  void add(NodeId id, Restored r) {
    Config c = config(id);
    if (tweak_) tweak_(c);
    nodes_[id] = std::make_unique<Node>(c, std::move(r));
  }
  // A crash: the core is rebuilt from its disk.
  void restart(NodeId id, const ConfState& boot) {
    Config c = config(id);
    if (tweak_) tweak_(c);
    Restored r = node(id).on_disk(boot);
    nodes_[id] = std::make_unique<Node>(c, std::move(r));
  }
  Node& node(NodeId id) { return *nodes_.at(id); }
  Core& core(NodeId id) { return node(id).core; }

  void isolate(NodeId id) { isolated_.insert(id); }
  void connect(NodeId id) { isolated_.erase(id); }
  void heal() { isolated_.clear(); }

  // Moves the Readies of a node (all nodes) to the network.
  void flush(NodeId id) {
    for (auto& m : node(id).drain()) queue_.push_back(std::move(m));
  }
  void flush() {
    for (auto& [id, n] : nodes_) flush(id);
  }
  // Delivers until the network is empty.
  void stabilize() {
    flush();
    for (int n = 0; !queue_.empty(); ++n) {
      ASSERT_LT(n, 100000) << "the cluster never goes quiet";
      Message m = std::move(queue_.front());
      queue_.pop_front();
      if (isolated_.count(m.from) || isolated_.count(m.to) || !nodes_.count(m.to)) continue;
      if (drop && drop(m)) continue;
      trace.push_back(m);
      core(m.to).step(m);
      flush(m.to);
    }
  }
  void tick(NodeId id) {
    core(id).tick();
    flush(id);
  }
  void tick_all() {
    for (auto& [id, n] : nodes_) tick(id);
  }
  // Ticks and delivers until pred holds (at most `ticks` ticks); returns whether it held.
  bool run_until(const std::function<bool()>& pred, int ticks = 5 * kElection) {
    stabilize();
    for (int t = 0; t < ticks && !pred(); ++t) {
      tick_all();
      stabilize();
    }
    return pred();
  }
  // Ticks only `id` until it campaigns, then lets the election finish.
  void elect(NodeId id) {
    for (int t = 0; t < 2 * kElection + 1 && core(id).role() == Role::FOLLOWER; ++t) tick(id);
    stabilize();
    ASSERT_EQ(core(id).role(), Role::LEADER);
  }
  // Proposes on `leader` and delivers everything.
  uint64_t propose(NodeId leader, std::string data) {
    auto r = core(leader).propose(std::move(data));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    stabilize();
    return r.ok() ? *r : 0;
  }
  std::vector<NodeId> ids() const {
    std::vector<NodeId> v;
    for (auto& [id, n] : nodes_) v.push_back(id);
    return v;
  }

  std::vector<Message> trace;  // every message delivered, in order
  std::function<bool(const Message&)> drop;  // the network loses the messages it says yes to

 private:
  std::function<void(Config&)> tweak_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::deque<Message> queue_;
  std::set<NodeId> isolated_;
};

// Same entries (index, term, type, data) at every index of [from, to] on both cores.
void expect_same_log(const Core& a, const Core& b, uint64_t from, uint64_t to) {
  for (uint64_t i = from; i <= to; ++i) {
    const Entry* x = a.entry(i);
    const Entry* y = b.entry(i);
    ASSERT_TRUE(x && y) << "index " << i;
    EXPECT_EQ(*x, *y) << "index " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Elections

TEST(RaftCore, tick_singleNodeElectsItselfAndCommits) {
  Node n(config(1), bootstrap({1}));
  for (int t = 0; t < kElection - 1; ++t) {
    n.core.tick();
    n.drain();
  }
  EXPECT_EQ(n.core.role(), Role::FOLLOWER) << "campaigned before the election timeout";
  for (int t = 0; t < kElection && n.core.role() != Role::LEADER; ++t) {
    n.core.tick();
    n.drain();
  }
  ASSERT_EQ(n.core.role(), Role::LEADER);
  EXPECT_EQ(n.core.term(), 1u);
  EXPECT_EQ(n.core.leader(), 1u);
  EXPECT_EQ(n.disk.hs.term, 1u);
  EXPECT_EQ(n.disk.hs.vote, 1u);
  ASSERT_EQ(n.core.last_index(), 1u);
  EXPECT_EQ(n.core.entry(1)->type, EntryType::NOOP);
  EXPECT_EQ(n.core.commit(), 1u);
  ASSERT_EQ(n.applied.size(), 1u);

  auto idx = n.core.propose("x");
  ASSERT_TRUE(idx.ok()) << idx.error().to_string();
  EXPECT_EQ(*idx, 2u);
  n.drain();
  EXPECT_EQ(n.core.commit(), 2u);
  ASSERT_EQ(n.applied.size(), 2u);
  EXPECT_EQ(n.applied[1].data, "x");
  EXPECT_EQ(n.applied[1].type, EntryType::NORMAL);
  EXPECT_EQ(n.applied[1].term, 1u);
}

TEST(RaftCore, tick_campaignsAfterRandomizedTimeout_preVoteThenVote) {
  Node a(config(1), bootstrap({1, 2, 3}));
  Node b(config(2), bootstrap({1, 2, 3}));
  Node c(config(3), bootstrap({1, 2, 3}));

  std::vector<Message> out;
  int ticks = 0;
  while (out.empty() && ticks < 2 * kElection) {
    a.core.tick();
    ++ticks;
    out = a.drain();
  }
  EXPECT_GE(ticks, kElection);
  EXPECT_LT(ticks, 2 * kElection);
  EXPECT_EQ(a.core.role(), Role::PRE_CANDIDATE);
  EXPECT_EQ(a.core.term(), 0u) << "a pre-vote must not raise the term";
  EXPECT_EQ(a.core.vote(), 0u);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& m : out) {
    EXPECT_EQ(m.type, MsgType::PRE_VOTE);
    EXPECT_EQ(m.term, 1u) << "the term it would campaign in";
    EXPECT_EQ(m.index, 0u);
    EXPECT_EQ(m.log_term, 0u);
  }

  // b would vote; nothing of its own changes.
  auto pre = answer(b, *find_msg(out, MsgType::PRE_VOTE, 2));
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_EQ(pre[0].type, MsgType::PRE_VOTE_RESP);
  EXPECT_FALSE(pre[0].reject);
  EXPECT_EQ(b.core.term(), 0u);
  EXPECT_EQ(b.core.vote(), 0u);
  EXPECT_EQ(b.disk.hs.term, 0u) << "a pre-vote changed the voter's hard state";

  // One grant and its own make a majority of three: the real campaign starts. The VOTE requests
  // leave in the same Ready as the hard state with the vote for itself.
  a.core.step(pre[0]);
  EXPECT_EQ(a.core.role(), Role::CANDIDATE);
  EXPECT_EQ(a.core.term(), 1u);
  EXPECT_EQ(a.core.vote(), 1u);
  Ready rd = a.core.ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, 1u);
  EXPECT_EQ(rd.hard_state->vote, 1u);
  EXPECT_EQ(count_msgs(rd.messages, MsgType::VOTE), 2u);
  auto votes = a.handle(std::move(rd));

  auto granted = answer(c, *find_msg(votes, MsgType::VOTE, 3));
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_EQ(granted[0].type, MsgType::VOTE_RESP);
  EXPECT_FALSE(granted[0].reject);
  EXPECT_EQ(c.disk.hs.term, 1u);
  EXPECT_EQ(c.disk.hs.vote, 1u);

  a.core.step(granted[0]);
  ASSERT_EQ(a.core.role(), Role::LEADER);
  Ready lr = a.core.ready();
  ASSERT_EQ(lr.entries.size(), 1u);
  EXPECT_EQ(lr.entries[0].type, EntryType::NOOP);
  EXPECT_EQ(lr.entries[0].index, 1u);
  EXPECT_EQ(lr.entries[0].term, 1u);
  std::set<NodeId> told;
  for (const auto& m : lr.messages)
    if (m.type == MsgType::APPEND && !m.entries.empty() && m.entries.back().type == EntryType::NOOP) told.insert(m.to);
  EXPECT_EQ(told, (std::set<NodeId>{2, 3})) << "the NOOP goes to every follower with the Ready that persists it";
  a.handle(std::move(lr));
}

TEST(RaftCore, tick_electionTimeoutsAreRandomizedWithinRange) {
  std::set<int> seen;
  for (NodeId id = 1; id <= 9; ++id) {
    Node n(config(id), bootstrap({1, 2, 3, 4, 5, 6, 7, 8, 9}));
    int ticks = 0;
    while (n.core.role() == Role::FOLLOWER && ticks < 3 * kElection) {
      n.core.tick();
      ++ticks;
      n.drain();
    }
    EXPECT_GE(ticks, kElection) << "node " << id;
    EXPECT_LT(ticks, 2 * kElection) << "node " << id;
    seen.insert(ticks);
  }
  EXPECT_GT(seen.size(), 1u) << "every node times out after the same number of ticks";
}

TEST(RaftCore, campaign_fullElectionInCluster_everyoneFollowsAndCommitsNoop) {
  Cluster c({1, 2, 3});
  c.elect(2);
  // The followers learn the commit index with the next heartbeat.
  ASSERT_TRUE(c.run_until([&] { return c.core(1).commit() >= 1 && c.core(3).commit() >= 1; }, 2));
  for (NodeId id : {1, 3}) {
    EXPECT_EQ(c.core(id).role(), Role::FOLLOWER);
    EXPECT_EQ(c.core(id).leader(), 2u);
    EXPECT_EQ(c.core(id).term(), 1u);
    EXPECT_EQ(c.core(id).commit(), 1u);
  }
  EXPECT_EQ(c.core(2).commit(), 1u);
  EXPECT_EQ(c.core(2).match_of(1), 1u);
  EXPECT_EQ(c.core(2).match_of(3), 1u);
}

// ---------------------------------------------------------------------------------------------
// Vote rules

// Node 1 of {1, 2, 3} back from a restart with log [1@1, 2@2] in term 2: no leader known.
Node voter_with_log() {
  return Node(config(1), restored({1, 2, 3}, HardState{2, 0, 1}, {ent(1, 1), ent(2, 2)}));
}

TEST(RaftCore, handleVote_rejectsCandidateWithStaleLog) {
  Node n = voter_with_log();
  auto r = answer(n, vote_req(2, 1, 3, 5, 1));  // longer log, but its last term is older
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type, MsgType::VOTE_RESP);
  EXPECT_TRUE(r[0].reject);
  EXPECT_EQ(n.core.term(), 3u) << "the higher term is adopted even if the vote is refused";
  EXPECT_EQ(n.core.vote(), 0u);

  r = answer(n, vote_req(3, 1, 3, 1, 2));  // same last term, shorter log
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].reject);
  EXPECT_EQ(n.core.vote(), 0u);

  r = answer(n, vote_req(3, 1, 3, 2, 2));  // as up to date
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
  EXPECT_EQ(r[0].term, 3u);
  EXPECT_EQ(n.core.vote(), 3u);
  EXPECT_EQ(n.disk.hs.vote, 3u);
}

TEST(RaftCore, handleVote_oneVotePerTerm) {
  Node n = voter_with_log();
  auto r = answer(n, vote_req(3, 1, 3, 2, 2));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);

  r = answer(n, vote_req(2, 1, 3, 9, 3));  // better log, same term: the vote is taken
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].reject);
  EXPECT_EQ(n.core.vote(), 3u);

  r = answer(n, vote_req(3, 1, 3, 2, 2));  // the same candidate again (a duplicate)
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);

  r = answer(n, vote_req(2, 1, 4, 2, 2));  // a new term: a new vote
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
  EXPECT_EQ(n.core.term(), 4u);
  EXPECT_EQ(n.disk.hs.vote, 2u);
}

TEST(RaftCore, handleVote_voteSurvivesRestart) {
  Node n(config(1), restored({1, 2, 3}, HardState{5, 2, 0}, {}));
  auto r = answer(n, vote_req(3, 1, 5, 0, 0));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].reject) << "voted twice in term 5 across a restart";
  r = answer(n, vote_req(2, 1, 5, 0, 0));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
}

TEST(RaftCore, handleVote_preVoteChangesNothing) {
  Node n = voter_with_log();
  auto r = answer(n, vote_req(2, 1, 5, 2, 2, MsgType::PRE_VOTE));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type, MsgType::PRE_VOTE_RESP);
  EXPECT_FALSE(r[0].reject);
  EXPECT_EQ(r[0].term, 5u);
  r = answer(n, vote_req(3, 1, 5, 2, 2, MsgType::PRE_VOTE));  // a pre-vote is no vote: both may get one
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
  r = answer(n, vote_req(3, 1, 5, 1, 1, MsgType::PRE_VOTE));  // stale log
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].reject);
  EXPECT_EQ(n.core.term(), 2u);
  EXPECT_EQ(n.core.vote(), 0u);
  for (const auto& rd : n.readies) EXPECT_FALSE(rd.hard_state.has_value()) << "a pre-vote changed the hard state";
}

TEST(RaftCore, handleVote_refusedInLeaseUnlessTransfer) {
  Node f(config(2), bootstrap({1, 2, 3}));
  answer(f, append(1, 2, 1, 0, 0, {}, 0));  // a heartbeat from leader 1 in term 1
  ASSERT_EQ(f.core.leader(), 1u);

  for (MsgType t : {MsgType::VOTE, MsgType::PRE_VOTE}) {
    auto r = answer(f, vote_req(3, 2, 2, 5, 1, t));
    for (const auto& m : r) EXPECT_TRUE(m.reject) << msg_name(t) << " granted while a leader holds the lease";
    EXPECT_EQ(f.core.term(), 1u) << msg_name(t) << " in the lease raised the term";
    EXPECT_EQ(f.core.leader(), 1u);
  }

  Message v = vote_req(3, 2, 2, 5, 1);
  v.transfer = true;  // sent because the leader handed over: the lease does not apply
  auto r = answer(f, v);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
  EXPECT_EQ(f.core.term(), 2u);
  EXPECT_EQ(f.disk.hs.vote, 3u);
}

TEST(RaftCore, handleVote_grantedOnceLeaseExpires) {
  Node f(config(2), bootstrap({1, 2, 3}));
  answer(f, append(1, 2, 1, 0, 0, {}, 0));
  for (int t = 0; t < kElection; ++t) {
    f.core.tick();
    f.drain();
  }
  auto r = answer(f, vote_req(3, 2, 2, 0, 0));
  auto resp = find_msg(r, MsgType::VOTE_RESP, 3);
  ASSERT_TRUE(resp.has_value());
  EXPECT_FALSE(resp->reject);
  EXPECT_EQ(f.core.term(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Pre-vote

TEST(RaftCore, preVote_partitionedNodeKeepsItsTerm) {
  Cluster c({1, 2, 3});
  c.elect(1);
  uint64_t term = c.core(1).term();
  c.isolate(3);
  for (int t = 0; t < 6 * kElection; ++t) {
    c.tick_all();
    c.stabilize();
  }
  EXPECT_EQ(c.core(3).term(), term) << "an isolated node raised its term";
  ASSERT_EQ(c.core(1).role(), Role::LEADER);
  uint64_t x = c.propose(1, "x");
  EXPECT_GE(c.core(1).commit(), x);

  c.heal();
  ASSERT_TRUE(c.run_until([&] { return c.core(3).commit() >= x; }));
  EXPECT_EQ(c.core(1).role(), Role::LEADER) << "the healed node disrupted the leader";
  EXPECT_EQ(c.core(1).term(), term);
  EXPECT_EQ(c.core(3).leader(), 1u);
  expect_same_log(c.core(1), c.core(3), 1, x);
}

TEST(RaftCore, preVote_disabled_isolatedNodeRaisesTerm) {
  // The counterpart of the test above, to show it tests something.
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.pre_vote = false; });
  c.elect(1);
  uint64_t term = c.core(1).term();
  c.isolate(3);
  for (int t = 0; t < 6 * kElection; ++t) {
    c.tick_all();
    c.stabilize();
  }
  EXPECT_GT(c.core(3).term(), term);
}

// ---------------------------------------------------------------------------------------------
// Log replication and repair

TEST(RaftCore, handleAppend_rejectGap) {
  Node f(config(2), restored({1, 2, 3}, HardState{1, 0, 0}, {ent(1, 1)}));
  auto r = answer(f, append(1, 2, 1, 3, 1, {ent(4, 1)}, 3));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].type, MsgType::APPEND_RESP);
  EXPECT_TRUE(r[0].reject);
  EXPECT_EQ(r[0].term, 1u);
  EXPECT_EQ(r[0].reject_hint, 1u) << "the hint is the follower's last index";
  EXPECT_EQ(f.core.last_index(), 1u);
  EXPECT_EQ(f.core.commit(), 0u) << "commit moved past a gap";
  EXPECT_EQ(f.core.leader(), 1u);
}

TEST(RaftCore, handleAppend_rejectTermMismatch) {
  Node f(config(2), restored({1, 2, 3}, HardState{1, 0, 0}, log_of(3, 1)));
  auto r = answer(f, append(1, 2, 2, 3, 2, {ent(4, 2)}, 3));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].reject);
  EXPECT_LE(r[0].reject_hint, 3u);
  EXPECT_EQ(f.core.last_index(), 3u);
  EXPECT_EQ(f.core.commit(), 0u);
}

TEST(RaftCore, handleAppendResp_leaderProbesBackAfterGapReject) {
  // Nodes 1 and 2 hold five entries of term 1; node 3 was wiped (it starts empty).
  Cluster c;
  c.add(1, restored({1, 2, 3}, HardState{1, 0, 5}, log_of(5, 1)));
  c.add(2, restored({1, 2, 3}, HardState{1, 0, 5}, log_of(5, 1)));
  c.add(3, bootstrap({1, 2, 3}));
  c.elect(1);
  ASSERT_EQ(c.core(1).last_index(), 6u);  // the NOOP of term 2

  auto rej = std::find_if(c.trace.begin(), c.trace.end(), [](const Message& m) {
    return m.type == MsgType::APPEND_RESP && m.from == 3 && m.reject;
  });
  ASSERT_NE(rej, c.trace.end()) << "node 3 never refused an APPEND after index 5";
  EXPECT_EQ(rej->reject_hint, 0u);
  uint64_t hint = rej->reject_hint;
  auto probe = std::find_if(rej, c.trace.end(), [&](const Message& m) {
    return m.type == MsgType::APPEND && m.to == 3 && m.index <= hint && !m.entries.empty();
  });
  ASSERT_NE(probe, c.trace.end()) << "the leader did not probe back to the follower's hint";
  EXPECT_EQ(probe->entries.front().index, probe->index + 1);

  EXPECT_EQ(c.core(3).last_index(), 6u);
  EXPECT_EQ(c.core(1).match_of(3), 6u);
  EXPECT_EQ(c.core(1).commit(), 6u);
  ASSERT_TRUE(c.run_until([&] { return c.core(3).commit() == 6; }, 2));
  expect_same_log(c.core(1), c.core(3), 1, 6);
}

TEST(RaftCore, handleAppend_truncatesConflictingSuffix) {
  // Entries 3 and 4 of term 2 were never committed; a leader of term 3 has a different entry 3.
  Node f(config(2), restored({1, 2, 3}, HardState{2, 0, 2}, {ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)}));
  f.core.step(append(1, 2, 3, 2, 1, {ent(3, 3, "new")}, 2));
  Ready rd = f.core.ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].index, 3u) << "the Ready overwrites the log from the conflict on";
  EXPECT_EQ(rd.entries[0].term, 3u);
  auto out = f.handle(std::move(rd));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(out[0].index, 3u);
  EXPECT_EQ(f.core.last_index(), 3u);
  EXPECT_EQ(f.core.term_at(2), 1u);
  EXPECT_EQ(f.core.term_at(3), 3u);
  EXPECT_EQ(f.core.entry(3)->data, "new");
  ASSERT_EQ(f.disk.log.size(), 3u);
  EXPECT_EQ(f.disk.log[2].data, "new");
  EXPECT_EQ(f.core.commit(), 2u);
}

TEST(RaftCore, handleAppend_staleAppendKeepsLongerLog) {
  // An old APPEND (reordered by the network) that matches a prefix truncates nothing.
  Node f(config(2), restored({1, 2, 3}, HardState{1, 0, 0}, log_of(4, 1)));
  auto r = answer(f, append(1, 2, 1, 1, 1, {ent(2, 1)}, 0));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].reject);
  EXPECT_GE(r[0].index, 2u);
  EXPECT_EQ(f.core.last_index(), 4u);
  for (const auto& rd : f.readies) EXPECT_TRUE(rd.entries.empty());
}

TEST(RaftCore, handleAppend_neverOverwritesCommittedEntry) {
  Node f(config(2), restored({1, 2, 3}, HardState{1, 0, 3}, log_of(3, 1)));
  answer(f, append(3, 2, 2, 1, 1, {ent(2, 2), ent(3, 2)}, 1));
  EXPECT_EQ(f.core.term_at(2), 1u);
  EXPECT_EQ(f.core.term_at(3), 1u);
  EXPECT_EQ(f.core.commit(), 3u);
  for (const auto& rd : f.readies) EXPECT_TRUE(rd.entries.empty()) << "a committed entry was overwritten";
}

TEST(RaftCore, handleAppend_commitLimitedToEntriesItCarries) {
  Node f(config(2), bootstrap({1, 2, 3}));
  answer(f, append(1, 2, 1, 0, 0, {ent(1, 1), ent(2, 1)}, 5));
  EXPECT_EQ(f.core.commit(), 2u);
  EXPECT_EQ(f.applied.size(), 2u);
  // A heartbeat at index 1 with a high commit: nothing beyond what is known to match.
  Node g(config(2), restored({1, 2, 3}, HardState{1, 0, 0}, {ent(1, 1), ent(2, 7), ent(3, 7)}));
  answer(g, append(1, 2, 8, 1, 1, {}, 9));
  EXPECT_EQ(g.core.commit(), 1u) << "committed entries that may not match the leader's";
}

// ---------------------------------------------------------------------------------------------
// Commit rule

TEST(RaftCore, maybeCommit_onlyCountsEntriesOfItsOwnTerm) {
  Node l(config(1), restored({1, 2, 3}, HardState{1, 0, 1}, {ent(1, 1), ent(2, 1)}));
  elect_by_hand(l, 2);
  ASSERT_EQ(l.core.term(), 2u);
  ASSERT_EQ(l.core.last_index(), 3u);  // the NOOP of term 2
  EXPECT_EQ(l.core.commit(), 1u);

  Message ack = msg(MsgType::APPEND_RESP, 2, 1, 2);
  ack.index = 2;  // node 2 holds entry 2 (of term 1): a majority, but of an older term
  answer(l, ack);
  EXPECT_EQ(l.core.match_of(2), 2u);
  EXPECT_EQ(l.core.commit(), 1u) << "an entry of an earlier term committed by counting replicas";

  ack.index = 3;  // the NOOP of term 2 reaches a majority: it commits, and entry 2 with it
  answer(l, ack);
  EXPECT_EQ(l.core.commit(), 3u);
  ASSERT_EQ(l.applied.size(), 3u);  // entry 1 was committed before the restart
  EXPECT_EQ(l.applied[1].index, 2u);
  EXPECT_EQ(l.applied[2].index, 3u);
}

TEST(RaftCore, maybeCommit_needsMajorityOfFive) {
  Cluster c({1, 2, 3, 4, 5});
  c.elect(1);
  c.isolate(3);
  c.isolate(4);
  c.isolate(5);
  auto x = c.core(1).propose("x");
  ASSERT_TRUE(x.ok());
  c.stabilize();
  EXPECT_EQ(c.core(2).last_index(), *x);
  EXPECT_LT(c.core(1).commit(), *x) << "committed with 2 of 5";
  c.heal();
  c.isolate(4);
  c.isolate(5);
  ASSERT_TRUE(c.run_until([&] { return c.core(1).commit() >= *x; }, 2 * kElection));
}

// ---------------------------------------------------------------------------------------------
// Check-quorum

TEST(RaftCore, tick_leaderHearingFromNobodyStepsDown) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(1);
  int ticks = 0;
  while (c.core(1).role() == Role::LEADER && ticks < 4 * kElection) {
    c.tick(1);
    ++ticks;
    c.stabilize();
  }
  EXPECT_NE(c.core(1).role(), Role::LEADER);
  EXPECT_GE(ticks, kElection) << "stepped down before an election timeout passed";
  EXPECT_LE(ticks, 2 * kElection) << "kept leading without a majority";
  auto r = c.core(1).propose("x");
  EXPECT_EQ(r.code(), Code::NOT_LEADER);
}

TEST(RaftCore, tick_leaderHearingFromMajorityStays) {
  Cluster c({1, 2, 3});
  c.elect(1);
  uint64_t term = c.core(1).term();
  c.isolate(3);
  for (int t = 0; t < 6 * kElection; ++t) {
    c.tick_all();
    c.stabilize();
  }
  EXPECT_EQ(c.core(1).role(), Role::LEADER);
  EXPECT_EQ(c.core(1).term(), term);
  EXPECT_EQ(c.core(2).leader(), 1u);
}

TEST(RaftCore, tick_withoutCheckQuorumIsolatedLeaderStays) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.check_quorum = false; });
  c.elect(1);
  c.isolate(1);
  for (int t = 0; t < 4 * kElection; ++t) {
    c.tick(1);
    c.stabilize();
  }
  EXPECT_EQ(c.core(1).role(), Role::LEADER);
}

// ---------------------------------------------------------------------------------------------
// Leader transfer

TEST(RaftCore, transferLeadership_toCaughtUpVoter) {
  Cluster c({1, 2, 3});
  c.elect(1);
  uint64_t x = c.propose(1, "x");
  uint64_t term = c.core(1).term();
  size_t mark = c.trace.size();

  ASSERT_TRUE(c.core(1).transfer_leadership(2).ok());
  EXPECT_EQ(c.core(1).propose("y").code(), Code::UNAVAILABLE) << "proposals continue during a transfer";
  c.stabilize();
  ASSERT_EQ(c.core(2).role(), Role::LEADER);
  EXPECT_EQ(c.core(2).term(), term + 1);
  EXPECT_EQ(c.core(1).role(), Role::FOLLOWER);
  EXPECT_EQ(c.core(1).leader(), 2u);
  EXPECT_EQ(c.core(3).leader(), 2u);

  bool timeout_now = false, pre_vote = false, transfer_vote = false;
  for (size_t i = mark; i < c.trace.size(); ++i) {
    const Message& m = c.trace[i];
    timeout_now |= m.type == MsgType::TIMEOUT_NOW && m.from == 1 && m.to == 2;
    pre_vote |= m.type == MsgType::PRE_VOTE && m.from == 2;
    transfer_vote |= m.type == MsgType::VOTE && m.from == 2 && m.transfer;
  }
  EXPECT_TRUE(timeout_now);
  EXPECT_FALSE(pre_vote) << "the transferee pre-voted (voters in lease would refuse)";
  EXPECT_TRUE(transfer_vote);

  uint64_t y = c.propose(2, "y");
  EXPECT_GT(y, x);
  EXPECT_TRUE(c.run_until(
      [&] { return c.core(1).commit() == y && c.core(2).commit() == y && c.core(3).commit() == y; }, 2));
}

TEST(RaftCore, transferLeadership_catchesUpLaggingTargetFirst) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  c.propose(1, "a");
  c.propose(1, "b");
  uint64_t last = c.propose(1, "c");
  c.heal();
  size_t mark = c.trace.size();

  ASSERT_TRUE(c.core(1).transfer_leadership(3).ok());
  ASSERT_TRUE(c.run_until([&] { return c.core(3).role() == Role::LEADER; }, kElection - 2));
  size_t timeout_at = 0, caught_up_at = 0;
  for (size_t i = mark; i < c.trace.size(); ++i) {
    const Message& m = c.trace[i];
    if (!timeout_at && m.type == MsgType::TIMEOUT_NOW && m.to == 3) timeout_at = i;
    if (!caught_up_at && m.type == MsgType::APPEND_RESP && m.from == 3 && !m.reject && m.index >= last)
      caught_up_at = i;
  }
  ASSERT_NE(timeout_at, 0u);
  ASSERT_NE(caught_up_at, 0u);
  EXPECT_LT(caught_up_at, timeout_at) << "TIMEOUT_NOW sent before the target had the leader's log";
  expect_same_log(c.core(1), c.core(3), 1, last);
}

TEST(RaftCore, transferLeadership_refusals) {
  Cluster c({1, 2, 3});
  c.elect(1);
  EXPECT_EQ(c.core(2).transfer_leadership(3).code(), Code::NOT_LEADER);
  EXPECT_FALSE(c.core(1).transfer_leadership(9).ok()) << "transfer to a node that is not a voter";
}

// ---------------------------------------------------------------------------------------------
// Membership changes

TEST(RaftCore, proposeConf_addThenRemove_oneAtATime) {
  Cluster c({1, 2, 3});
  c.elect(1);
  auto add = c.core(1).propose_conf(ConfChange{ConfChange::Kind::ADD, 4, ""});
  ASSERT_TRUE(add.ok()) << add.error().to_string();
  EXPECT_TRUE(c.core(1).conf().contains(4)) << "a configuration takes effect once in the log";
  EXPECT_EQ(c.core(1).propose_conf(ConfChange{ConfChange::Kind::REMOVE, 3, ""}).code(), Code::CONFLICT)
      << "a second change while the first is not committed";

  // The new node knows the group's bootstrap configuration and learns the rest from the log.
  c.add(4, bootstrap({1, 2, 3}));
  ASSERT_TRUE(c.run_until([&] { return c.core(4).commit() >= *add && c.core(1).commit() >= *add; }));
  for (NodeId id : {1, 2, 3, 4}) EXPECT_EQ(c.core(id).conf(), voters({1, 2, 3, 4})) << "node " << id;
  expect_same_log(c.core(1), c.core(4), 1, *add);

  auto rm = c.core(1).propose_conf(ConfChange{ConfChange::Kind::REMOVE, 3, ""});
  ASSERT_TRUE(rm.ok()) << rm.error().to_string();
  ASSERT_TRUE(c.run_until([&] { return c.core(1).commit() >= *rm && c.core(4).commit() >= *rm; }));
  for (NodeId id : {1, 2, 4}) EXPECT_EQ(c.core(id).conf(), voters({1, 2, 4})) << "node " << id;

  // {1, 2, 4} commits without node 3; a majority of it is needed.
  c.isolate(3);
  c.isolate(4);
  auto x = c.core(1).propose("x");
  ASSERT_TRUE(x.ok());
  c.stabilize();
  EXPECT_EQ(c.core(1).commit(), *x);
  c.isolate(2);
  auto y = c.core(1).propose("y");
  ASSERT_TRUE(y.ok());
  c.stabilize();
  EXPECT_LT(c.core(1).commit(), *y) << "committed by the leader alone in a group of three";
}

TEST(RaftCore, proposeConf_removedLeaderHandsOver) {
  Cluster c({1, 2, 3});
  c.elect(1);
  auto rm = c.core(1).propose_conf(ConfChange{ConfChange::Kind::REMOVE, 1, ""});
  ASSERT_TRUE(rm.ok()) << rm.error().to_string();
  ASSERT_TRUE(c.run_until([&] {
    return c.core(2).role() == Role::LEADER || c.core(3).role() == Role::LEADER;
  }, 6 * kElection));
  EXPECT_NE(c.core(1).role(), Role::LEADER);
  NodeId leader = c.core(2).role() == Role::LEADER ? 2 : 3;
  EXPECT_EQ(c.core(leader).conf(), voters({2, 3}));
  uint64_t x = c.propose(leader, "x");
  EXPECT_TRUE(c.run_until([&] { return c.core(5 - leader).commit() == x; }, 2));
}

// Regression (a safety bug raft_sim_test found: "leader completeness: new leader n2 of term 11
// lacks entry 160@10 committed in term 10"): a new leader must not append a configuration change
// before it committed an entry of its own term. Otherwise an uncommitted change of an older
// leader (here node 2's REMOVE 3, only in node 2's log) and the new leader's change (REMOVE 4)
// give configurations {1, 2, 3} and {1, 2, 4} whose majorities {1, 3} and {2, 4} do not
// intersect (the hole in single-server changes, Ongaro, raft-dev 2015): node 1 commits with node
// 3, then node 2 is elected by node 4 alone and lacks the committed entries.
TEST(RaftCore, proposeConf_refusedUntilNewLeaderCommitsInItsTerm) {
  const std::vector<NodeId> all{1, 2, 3, 4};
  Entry noop = ent(1, 1, "", EntryType::NOOP);
  Cluster c;
  for (NodeId id : {1, 3, 4}) c.add(id, restored(all, HardState{1, 0, 1}, {noop}));
  // Node 2, the leader of term 1, appended "remove 3" and nobody else got it.
  c.add(2, restored(all, HardState{1, 2, 1}, {noop, conf_entry(2, 1, ConfChange::Kind::REMOVE, 3)}));
  ASSERT_EQ(c.core(2).conf(), voters({1, 2, 4}));

  // Node 1 is elected by 3 and 4; its NOOP reaches node 3 only, and no acknowledgement gets back.
  c.isolate(2);
  c.drop = [](const Message& m) {
    return m.type == MsgType::APPEND_RESP || (m.type == MsgType::APPEND && m.to == 4);
  };
  c.elect(1);
  ASSERT_EQ(c.core(1).term(), 2u);
  ASSERT_EQ(c.core(1).commit(), 1u);
  auto cc = c.core(1).propose_conf(ConfChange{ConfChange::Kind::REMOVE, 4, ""});
  EXPECT_EQ(cc.code(), Code::CONFLICT) << "a configuration change before the NOOP of the term committed";
  if (!cc.ok()) return;
  // What would follow: with {1, 2, 3} node 1 commits its NOOP and the change with node 3 alone.
  c.drop = [](const Message& m) { return m.to == 4 || m.from == 4; };
  ASSERT_TRUE(c.run_until([&] { return c.core(1).commit() >= *cc; }, 3));
  ASSERT_EQ(c.core(1).term_at(2), 2u);

  // Nodes 1 and 3 go away; node 2 ({1, 2, 4}) campaigns and node 4 (log [1@1]) votes for it.
  c.isolate(1);
  c.isolate(3);
  c.connect(2);
  c.drop = {};
  c.run_until([&] { return c.core(2).role() == Role::LEADER; }, 8 * kElection);
  if (c.core(2).role() == Role::LEADER) {
    EXPECT_EQ(c.core(2).term_at(2), 2u) << "node 2, leader of term " << c.core(2).term()
                                        << ", lacks entry 2@2 that node 1 committed in term 2";
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

TEST(RaftCore, compact_keepsTermAndConfOfIndex) {
  Cluster c({1});
  c.elect(1);
  for (int i = 0; i < 5; ++i) c.propose(1, "x" + std::to_string(i));
  ASSERT_EQ(c.core(1).applied(), 6u);
  c.node(1).compact(4, "at 4");
  EXPECT_EQ(c.core(1).first_index(), 5u);
  EXPECT_EQ(c.core(1).last_index(), 6u);
  EXPECT_EQ(c.core(1).snapshot().index, 4u);
  EXPECT_EQ(c.core(1).snapshot().term, 1u);
  EXPECT_EQ(c.core(1).snapshot().conf, voters({1}));
  EXPECT_EQ(c.core(1).term_at(4), 1u);
  EXPECT_EQ(c.core(1).term_at(3), std::nullopt);
  EXPECT_EQ(c.core(1).entry(4), nullptr);
  ASSERT_NE(c.core(1).entry(5), nullptr);
  uint64_t y = c.propose(1, "y");
  EXPECT_EQ(c.core(1).commit(), y);

  // A restart from the compacted disk.
  c.restart(1, voters({1}));
  EXPECT_EQ(c.core(1).first_index(), 5u);
  EXPECT_EQ(c.core(1).last_index(), y);
  EXPECT_EQ(c.core(1).conf(), voters({1}));
  ASSERT_TRUE(c.run_until([&] { return c.core(1).role() == Role::LEADER; }, 3 * kElection));
}

TEST(RaftCore, compact_followerFarBehindGetsSnapshotAndCatchesUp) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) last = c.propose(1, "v" + std::to_string(i));
  ASSERT_TRUE(c.run_until([&] { return c.core(1).applied() == last && c.core(2).applied() == last; }, 2));
  c.node(1).compact(last, "state@" + std::to_string(last));
  c.node(2).compact(last, "state@" + std::to_string(last));
  uint64_t snap_term = c.core(1).snapshot().term;

  c.heal();
  ASSERT_TRUE(c.run_until([&] { return c.core(3).commit() >= last; }));
  bool sent = std::any_of(c.trace.begin(), c.trace.end(), [&](const Message& m) {
    return m.type == MsgType::SNAPSHOT && m.to == 3 && m.snapshot.index == last;
  });
  EXPECT_TRUE(sent);
  ASSERT_EQ(c.node(3).snapshots_installed.size(), 1u);
  EXPECT_EQ(c.node(3).snapshots_installed[0], "state@" + std::to_string(last));
  EXPECT_EQ(c.core(3).snapshot().index, last);
  EXPECT_EQ(c.core(3).snapshot().term, snap_term);
  EXPECT_EQ(c.core(3).snapshot().conf, voters({1, 2, 3}));
  EXPECT_EQ(c.core(3).first_index(), last + 1);
  EXPECT_EQ(c.node(3).disk.snap.index, last);
  for (const auto& e : c.node(3).applied)
    EXPECT_TRUE(e.index <= 1 || e.index > last) << "applied entry " << e.index << " that the snapshot covers";

  uint64_t y = c.propose(1, "after");
  ASSERT_TRUE(c.run_until([&] { return c.core(3).commit() == y; }, 2));
  ASSERT_FALSE(c.node(3).applied.empty());
  EXPECT_EQ(c.node(3).applied.back().data, "after");
  EXPECT_EQ(c.node(3).applied.back().index, y);
}

// Regression (a stall raft_sim_test found): once the leader sent a SNAPSHOT, the follower's
// progress waits for the install's answer. If the SNAPSHOT is lost (dropped, or the follower
// crashed before installing it), the follower rejects every heartbeat and nothing else moves it:
// the leader must send the snapshot again.
TEST(RaftCore, compact_lostSnapshotIsSentAgain) {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.isolate(3);
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) last = c.propose(1, "v" + std::to_string(i));
  ASSERT_TRUE(c.run_until([&] { return c.core(1).applied() == last; }, 2));
  c.node(1).compact(last, "state");
  c.heal();
  int lost = 0;
  c.drop = [&](const Message& m) { return m.type == MsgType::SNAPSHOT && lost++ == 0; };  // only the first
  EXPECT_TRUE(c.run_until([&] { return c.core(3).commit() >= last; }, 10 * kElection))
      << "the follower never got the snapshot again; SNAPSHOT messages lost: " << lost;
}

// Regression (a stall raft_sim_test found): in REPLICATE state, when the follower received the
// APPENDs in flight but their acknowledgements were lost, the window stays full; a heartbeat
// answer (index = the leader's match, reject_hint = the follower's last index, which is what was
// sent) must still make the leader start over. With max_inflight = 1 one lost ack is enough.
TEST(RaftCore, handleAppendResp_lostAcksDoNotStallReplication) {
  Cluster c({1, 2, 3}, [](Config& cfg) { cfg.max_inflight = 1; });
  c.elect(1);
  ASSERT_TRUE(c.run_until([&] { return c.core(1).match_of(3) == c.core(1).last_index(); }, 2));
  auto x = c.core(1).propose("x");
  ASSERT_TRUE(x.ok());
  int lost = 0;
  c.drop = [&](const Message& m) {  // node 3 gets x, its acknowledgement is lost
    return m.type == MsgType::APPEND_RESP && m.from == 3 && !m.reject && m.index == *x && lost++ == 0;
  };
  c.stabilize();
  ASSERT_EQ(c.core(3).last_index(), *x);
  auto y = c.core(1).propose("y");
  ASSERT_TRUE(y.ok());
  EXPECT_TRUE(c.run_until([&] { return c.core(3).last_index() >= *y; }, 10 * kElection))
      << "node 3 is stuck at " << c.core(3).last_index() << ", the leader's match for it is " << c.core(1).match_of(3);
}

// Regression, the same stall with a lost APPEND: a follower that holds a longer, conflicting
// suffix of an older term answers heartbeats with reject_hint = its last index >= next - 1, so
// "the follower holds less than was sent" cannot be how the leader notices the loss. Here the
// leader switches node 3 to REPLICATE from a heartbeat answer (index = node 3's commit), the
// first APPEND of the window is lost, and node 3 must still get the leader's entries.
TEST(RaftCore, handleAppendResp_lostAppendsToLongerFollowerDoNotStall) {
  Cluster c([](Config& cfg) {
    cfg.max_inflight = 1;
    cfg.max_entries_per_msg = 1;
  });
  c.add(1, restored({1, 2, 3}, HardState{3, 0, 3}, {ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 3)}));
  c.add(2, restored({1, 2, 3}, HardState{3, 0, 3}, {ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 3)}));
  // Node 3 holds entries 4..6 of a term-2 leader that never committed them.
  c.add(3, restored({1, 2, 3}, HardState{2, 0, 3}, {ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 2), ent(5, 2), ent(6, 2)}));
  c.isolate(3);
  c.elect(1);
  c.heal();
  int lost = 0;
  c.drop = [&](const Message& m) {  // the first APPEND with entries for node 3 is lost
    return m.type == MsgType::APPEND && m.to == 3 && !m.entries.empty() && lost++ == 0;
  };
  EXPECT_TRUE(c.run_until([&] { return c.core(3).term_at(5) == c.core(1).term(); }, 10 * kElection))
      << "node 3 still holds its old suffix up to " << c.core(3).last_index() << "; the leader's match for it is "
      << c.core(1).match_of(3) << "; APPENDs lost: " << lost;
}

// ---------------------------------------------------------------------------------------------
// Read index

TEST(RaftCore, readIndex_releasedOnlyAfterMajorityOfLaterRound) {
  Cluster c({1, 2, 3, 4, 5});
  c.elect(1);
  c.stabilize();
  uint64_t commit = c.core(1).commit();
  Node& l = c.node(1);

  // A heartbeat round that started before the read; its answers are held back.
  l.core.tick();
  auto early = l.drain();
  std::vector<Message> early_acks;
  for (const auto& m : early) {
    if (m.type != MsgType::APPEND) continue;
    auto a = answer(c.node(m.to), m);
    early_acks.insert(early_acks.end(), a.begin(), a.end());
  }
  ASSERT_EQ(early_acks.size(), 4u);

  ASSERT_TRUE(l.core.read_index(42).ok());
  auto round = l.drain();
  for (const auto& a : early_acks) answer(l, a);
  EXPECT_TRUE(l.reads.empty()) << "answers to a round sent before the read confirmed it";

  if (count_msgs(round, MsgType::APPEND) == 0) {  // the round may go out with the next heartbeat
    l.core.tick();
    round = l.drain();
  }
  auto to2 = find_msg(round, MsgType::APPEND, 2);
  auto to3 = find_msg(round, MsgType::APPEND, 3);
  ASSERT_TRUE(to2 && to3);
  for (const auto& a : answer(c.node(2), *to2)) answer(l, a);
  EXPECT_TRUE(l.reads.empty()) << "released with 2 of 5";
  for (const auto& a : answer(c.node(3), *to3)) answer(l, a);
  ASSERT_EQ(l.reads.size(), 1u);
  EXPECT_EQ(l.reads[0].request, 42u);
  EXPECT_EQ(l.reads[0].index, commit);
}

TEST(RaftCore, readIndex_singleNodeAndFollower) {
  Cluster c({1});
  c.elect(1);
  ASSERT_TRUE(c.core(1).read_index(7).ok());
  c.stabilize();
  ASSERT_EQ(c.node(1).reads.size(), 1u);
  EXPECT_EQ(c.node(1).reads[0].request, 7u);
  EXPECT_EQ(c.node(1).reads[0].index, c.core(1).commit());

  Cluster d({1, 2, 3});
  d.elect(1);
  EXPECT_EQ(d.core(2).read_index(1).code(), Code::NOT_LEADER);
}

// ---------------------------------------------------------------------------------------------
// Proposals and the Ready contract

TEST(RaftCore, propose_onFollower_notLeaderWithHint) {
  Cluster c({1, 2, 3});
  c.elect(1);
  auto r = c.core(2).propose("x");
  ASSERT_EQ(r.code(), Code::NOT_LEADER);
  EXPECT_EQ(r.error().hint, "1");
  Node lone(config(1), bootstrap({1, 2, 3}));
  EXPECT_EQ(lone.core.propose("x").code(), Code::NOT_LEADER);
  EXPECT_EQ(lone.core.propose_conf(ConfChange{ConfChange::Kind::ADD, 4, ""}).code(), Code::NOT_LEADER);
}

TEST(RaftCore, ready_messagesComeWithTheEntriesTheyCarry) {
  Cluster c({1, 2, 3});
  c.elect(1);
  auto x = c.core(1).propose("x");
  ASSERT_TRUE(x.ok());
  Ready rd = c.core(1).ready();
  EXPECT_TRUE(std::any_of(rd.entries.begin(), rd.entries.end(), [&](const Entry& e) { return e.index == *x; }));
  std::vector<Message> carrying;
  for (const auto& m : rd.messages)
    if (m.type == MsgType::APPEND && !m.entries.empty() && m.entries.back().index == *x) carrying.push_back(m);
  ASSERT_EQ(carrying.size(), 2u) << "the APPENDs with x are not in the Ready that persists x";
  c.node(1).handle(std::move(rd));

  // The follower's acknowledgement leaves with the Ready that persists what it acknowledges.
  Message to2 = carrying[0].to == 2 ? carrying[0] : carrying[1];
  c.core(2).step(to2);
  Ready fr = c.core(2).ready();
  ASSERT_EQ(fr.entries.size(), 1u);
  EXPECT_EQ(fr.entries[0].index, *x);
  auto ack = find_msg(fr.messages, MsgType::APPEND_RESP, 1);
  ASSERT_TRUE(ack.has_value());
  EXPECT_FALSE(ack->reject);
  EXPECT_EQ(ack->index, *x);
  c.node(2).handle(std::move(fr));
}

TEST(RaftCore, ready_committedNeverBeyondDurable) {
  // The leader counts its own entries only once advance() says they are durable.
  Cluster c({1});
  c.elect(1);
  auto x = c.core(1).propose("x");
  ASSERT_TRUE(x.ok());
  Ready rd = c.core(1).ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  for (const auto& e : rd.committed) EXPECT_LT(e.index, *x) << "committed before it is durable";
  EXPECT_LT(c.core(1).commit(), *x);
  // Not advanced yet: still not committed, however often the owner asks.
  Ready again = c.core(1).ready();
  EXPECT_TRUE(again.committed.empty());
  EXPECT_TRUE(again.entries.empty()) << "entries handed out twice";
  EXPECT_LT(c.core(1).commit(), *x);
  c.node(1).disk.write(rd.entries);
  c.core(1).advance(rd);
  c.core(1).advance(again);
  EXPECT_EQ(c.core(1).commit(), *x);
  Ready next = c.core(1).ready();
  ASSERT_EQ(next.committed.size(), 1u);
  EXPECT_EQ(next.committed[0].index, *x);
  ASSERT_TRUE(next.hard_state.has_value());
  EXPECT_EQ(next.hard_state->commit, *x);
  c.core(1).advance(next);

  // In a group too: one follower and the leader make a majority only once the leader's own copy
  // is durable (advance() called).
  Cluster g({1, 2, 3});
  g.elect(1);
  auto y = g.core(1).propose("y");
  ASSERT_TRUE(y.ok());
  Ready lr = g.core(1).ready();
  g.node(1).disk.write(lr.entries);
  if (lr.hard_state) g.node(1).disk.hs = *lr.hard_state;
  auto to2 = find_msg(lr.messages, MsgType::APPEND, 2);
  ASSERT_TRUE(to2.has_value());
  for (const auto& a : answer(g.node(2), *to2)) g.core(1).step(a);
  EXPECT_LT(g.core(1).commit(), *y) << "counted the leader's own entry before advance()";
  g.core(1).advance(lr);
  EXPECT_EQ(g.core(1).commit(), *y);
  g.node(1).drain();
  ASSERT_FALSE(g.node(1).applied.empty());
  EXPECT_EQ(g.node(1).applied.back().index, *y);
}

TEST(RaftCore, restart_fromDisk_keepsTermVoteLogAndReappliesCommitted) {
  Cluster c({1, 2, 3});
  c.elect(1);
  uint64_t last = 0;
  for (int i = 0; i < 3; ++i) last = c.propose(1, "v" + std::to_string(i));
  uint64_t term = c.core(2).term();
  c.restart(2, voters({1, 2, 3}));
  EXPECT_EQ(c.core(2).term(), term);
  EXPECT_EQ(c.core(2).vote(), 1u);
  EXPECT_EQ(c.core(2).last_index(), last);
  EXPECT_EQ(c.core(2).role(), Role::FOLLOWER);
  c.flush(2);
  // The state machine starts empty (no snapshot): every committed entry comes again.
  ASSERT_FALSE(c.node(2).applied.empty());
  EXPECT_EQ(c.node(2).applied.front().index, 1u);
  uint64_t y = c.propose(1, "y");
  ASSERT_TRUE(c.run_until([&] { return c.core(2).commit() >= y; }, 3));
  expect_same_log(c.core(1), c.core(2), 1, y);
}

}  // namespace
}  // namespace mydfs::raft
