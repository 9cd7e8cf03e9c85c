// A deterministic simulation of Raft groups of 3 and 5 cores: a clock, a network that drops,
// delays, duplicates and reorders messages, partitions that come and go, crashes and restarts
// from a simulated disk (sometimes in the middle of persisting a Ready), snapshots with the state
// machine handed over, leader transfers, linearizable reads and single-server membership changes
// (a spare node is added and voters removed), with clients proposing to whoever leads. Every seed
// is one reproducible run with its own hostility (Params). After every call into a core the
// harness checks election safety, log matching, leader completeness, state machine safety, the
// linearizability of reads and the owner's contract of core.h (nothing leaves before what it
// depends on is durable, nothing is applied before it is durable, no committed entry is ever
// overwritten); at the end of a run it heals everything and requires that a fresh proposal
// commits on every voter.
//
//   MYDFS_RAFT_SEED=<n>    replay only seed n, printing the last events if it fails
//                          (MYDFS_RAFT_TRACE=<lines> keeps more of them, default 600)
//   MYDFS_RAFT_SEEDS=<n>   run n seeds per test instead of the default (a long run)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "raft/core.h"

namespace mydfs::raft {
namespace {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One command in the state machine: the Raft index it came with and its data.
struct Applied {
  uint64_t index = 0;
  std::string data;
  friend bool operator==(const Applied&, const Applied&) = default;
};

// What survives a crash.
struct Disk {
  HardState hs;
  SnapshotMeta snap;
  std::vector<Entry> log;    // contiguous from snap.index + 1
  std::vector<Applied> app;  // the state machine at snap.index, saved with the snapshot

  uint64_t last() const { return snap.index + log.size(); }
  const Entry* at(uint64_t i) const {
    if (i <= snap.index || i > last()) return nullptr;
    return &log[i - snap.index - 1];
  }
  std::optional<uint64_t> term(uint64_t i) const {
    if (i == snap.index) return snap.term;
    const Entry* e = at(i);
    return e ? std::optional<uint64_t>(e->term) : std::nullopt;
  }
  void drop_through(uint64_t index) {
    size_t n = std::min<size_t>(log.size(), index > snap.index ? index - snap.index : 0);
    log.erase(log.begin(), log.begin() + n);
  }
};

struct SimNode {
  NodeId id = 0;
  std::unique_ptr<Core> core;  // null while crashed
  Disk disk;
  std::vector<Applied> app;    // the state machine: the committed NORMAL entries, in order
  uint64_t app_index = 0;      // the last entry applied (of any type)
  uint64_t checked_commit = 0; // commit indexes up to here were recorded
  uint64_t incarnation = 0;
  bool probed = false;         // applied a liveness probe
  Role last_role = Role::FOLLOWER;
  uint64_t last_term = 0;
};

struct InFlight {
  uint64_t at = 0;   // delivery time
  uint64_t key = 0;  // random: the order among messages due at the same time
  Message m;
};

// How hostile one run is (drawn from the seed).
struct Params {
  int election = 10;
  int heartbeat = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  size_t max_entries = 64;
  size_t max_bytes = 1u << 20;
  size_t max_inflight = 16;
  double drop = 0, dup = 0, long_delay = 0;   // per message
  double crash = 0, restart = 0.1;            // per node and step
  double torn = 0;                            // per Ready: crash while persisting it
  double partition = 0, heal = 0.05;          // per step
  double propose = 0.5, compact = 0, transfer = 0, read = 0, skew = 0;
  double membership = 0;  // per step: the leader proposes adding the spare node or removing a voter
  int steps = 300;
};

struct Stats {
  uint64_t runs = 0, steps = 0, leaders = 0, commits = 0, crashes = 0, torn = 0, snapshots = 0, compactions = 0,
           reads = 0, transfers = 0, messages = 0, conf_changes = 0;
  void add(const Stats& o) {
    runs += o.runs, steps += o.steps, leaders += o.leaders, commits += o.commits, crashes += o.crashes;
    torn += o.torn, snapshots += o.snapshots, compactions += o.compactions, reads += o.reads;
    transfers += o.transfers, messages += o.messages, conf_changes += o.conf_changes;
  }
};

// How many trace lines a replay keeps (MYDFS_RAFT_TRACE=<n>, default 600).
size_t env_limit() {
  const char* v = std::getenv("MYDFS_RAFT_TRACE");
  return v && *v ? std::strtoull(v, nullptr, 10) : 600;
}

class Sim {
 public:
  Sim(uint64_t seed, int n, bool trace) : seed_(seed), n_(n), rng_(seed * 0x9E3779B97F4A7C15ull + n), tracing_(trace) {
    rng_ ^= rng_ >> 29;
    pick_params();
    params_ = describe();
    // With membership changes, one more node runs outside the initial configuration: the spare
    // that the leaders add, and that a removed voter becomes.
    m_ = n_ + (p_.membership > 0 ? 1 : 0);
    for (int i = 0; i < m_; ++i) {
      nodes_.emplace_back();
      nodes_.back().id = static_cast<NodeId>(i + 1);
      if (i < n_) bootstrap_.voters.push_back(static_cast<NodeId>(i + 1));
    }
    group_.assign(m_, 0);
    for (int i = 0; i < m_; ++i) start(i);
  }

  void run() {
    phase_ = "chaos";
    for (step_ = 0; step_ < static_cast<uint64_t>(p_.steps); ++step_) {
      chaos();
      step();
    }
    liveness();
    full_check();
  }

  const Stats& stats() const { return stats_; }
  std::string describe() const {
    return fmt::format(
        "election {} heartbeat {} pre_vote {} check_quorum {} max_entries {} max_bytes {} max_inflight {} "
        "drop {} dup {} long_delay {} crash {} torn {} partition {} compact {} transfer {} read {} skew {} "
        "membership {}",
        p_.election, p_.heartbeat, p_.pre_vote, p_.check_quorum, p_.max_entries, p_.max_bytes, p_.max_inflight,
        p_.drop, p_.dup, p_.long_delay, p_.crash, p_.torn, p_.partition, p_.compact, p_.transfer, p_.read, p_.skew,
        p_.membership);
  }

 private:
  // ---- randomness (own arithmetic: the same runs on every standard library)
  uint64_t next() {
    uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t uniform(uint64_t lo, uint64_t hi) { return lo + next() % (hi - lo + 1); }
  bool chance(double p) { return p > 0 && static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  template <typename T>
  T pick(std::initializer_list<T> xs) {
    return xs.begin()[uniform(0, xs.size() - 1)];
  }

  void pick_params() {
    p_.election = 10;
    p_.heartbeat = static_cast<int>(uniform(1, 2));
    p_.pre_vote = chance(0.8);
    p_.check_quorum = chance(0.8);
    p_.max_entries = pick<size_t>({1, 3, 64});
    p_.max_bytes = pick<size_t>({8, 1u << 20});
    p_.max_inflight = pick<size_t>({1, 2, 16});
    p_.drop = pick({0.0, 0.02, 0.1, 0.3});
    p_.dup = pick({0.0, 0.05});
    p_.long_delay = pick({0.0, 0.02, 0.1});
    p_.crash = pick({0.0, 0.002, 0.005, 0.01});
    p_.restart = pick({0.05, 0.2});
    p_.torn = pick({0.0, 0.0003, 0.001});
    p_.partition = pick({0.0, 0.01, 0.03});
    p_.heal = pick({0.02, 0.1});
    p_.propose = pick({0.3, 0.8});
    p_.compact = pick({0.0, 0.01, 0.05});
    p_.transfer = pick({0.0, 0.005, 0.02});
    p_.read = pick({0.0, 0.1, 0.3});
    p_.skew = pick({0.0, 0.1});
    // A removed voter that never learns of its removal campaigns forever; without pre-vote and
    // without the lease of check-quorum nothing stops it from deposing every leader (Raft thesis
    // 4.2.3): membership changes only run with at least one of them.
    p_.membership = p_.pre_vote || p_.check_quorum ? pick({0.0, 0.0, 0.01, 0.03}) : 0.0;
    p_.steps = pick({300, 300, 1000});  // a few long runs reach deeper logs and more snapshots
  }

  // ---- failures and the trace
  template <typename... A>
  [[noreturn]] void fail(fmt::format_string<A...> f, A&&... a) {
    std::string what = fmt::format(f, std::forward<A>(a)...);
    std::string msg = fmt::format("seed {} ({} nodes), step {} ({}): {}", seed_, n_, step_, phase_, what);
    if (tracing_) {
      std::string t;
      for (const auto& line : trace_) t += "  " + line + "\n";
      msg += "\nparams: " + params_ + "\nlast events:\n" + t;
    }
    throw Failure(msg);
  }
  template <typename... A>
  void trace(fmt::format_string<A...> f, A&&... a) {
    if (!tracing_) return;
    trace_.push_back(fmt::format("[{} t{}] ", step_, now_) + fmt::format(f, std::forward<A>(a)...));
    if (trace_.size() > trace_limit_) trace_.pop_front();
  }
  static std::string show(const Message& m) {
    std::string s = fmt::format("{} {}->{} term {} index {} log_term {} commit {}", msg_name(m.type), m.from, m.to,
                                m.term, m.index, m.log_term, m.commit);
    if (!m.entries.empty()) s += fmt::format(" entries {}..{}", m.entries.front().index, m.entries.back().index);
    if (m.reject) s += fmt::format(" REJECT hint {}", m.reject_hint);
    if (m.transfer) s += " transfer";
    if (m.context) s += fmt::format(" ctx {}", m.context);
    if (m.type == MsgType::SNAPSHOT) s += fmt::format(" snap {}@{}", m.snapshot.index, m.snapshot.term);
    return s;
  }

  // ---- nodes
  bool up(int i) const { return nodes_[i].core != nullptr; }
  int idx(NodeId id) const { return static_cast<int>(id) - 1; }

  Config config_for(int i) {
    Config c;
    c.id = nodes_[i].id;
    c.election_ticks = p_.election;
    c.heartbeat_ticks = p_.heartbeat;
    c.pre_vote = p_.pre_vote;
    c.check_quorum = p_.check_quorum;
    c.max_entries_per_msg = p_.max_entries;
    c.max_bytes_per_msg = p_.max_bytes;
    c.max_inflight = p_.max_inflight;
    c.seed = seed_ * 1000 + nodes_[i].incarnation;
    return c;
  }

  // Starts (or restarts) node i from its disk.
  void start(int i) {
    SimNode& n = nodes_[i];
    Restored r;
    r.hard_state = n.disk.hs;
    r.snapshot = n.disk.snap;
    r.entries = n.disk.log;
    r.bootstrap = bootstrap_;
    r.applied = n.disk.snap.index;
    n.app = n.disk.app;
    n.app_index = n.disk.snap.index;
    n.checked_commit = 0;
    n.core = std::make_unique<Core>(config_for(i), std::move(r));
    n.last_role = Role::FOLLOWER;
    n.last_term = n.core->term();
    ++n.incarnation;
    n.probed = std::any_of(n.app.begin(), n.app.end(), [](const Applied& a) { return a.data.starts_with("probe"); });
    trace("n{} starts: term {} vote {} commit {} snap {} last {}", n.id, n.disk.hs.term, n.disk.hs.vote,
          n.disk.hs.commit, n.disk.snap.index, n.disk.last());
    after(i);
  }

  // The process dies: what is not on disk is gone.
  void crash(int i, const char* how) {
    SimNode& n = nodes_[i];
    n.core.reset();
    n.app = n.disk.app;
    n.app_index = n.disk.snap.index;
    ++stats_.crashes;
    trace("n{} crashes ({})", n.id, how);
  }

  // Everything the owner does after calling into a core.
  void after(int i) {
    process(i);
    if (up(i)) observe(i);
  }

  // ---- the owner of a Ready: persist, send, apply, advance
  void process(int i) {
    SimNode& n = nodes_[i];
    for (int rounds = 0; n.core && n.core->has_ready(); ++rounds) {
      if (rounds > 1000) fail("n{}: has_ready() never turns false", n.id);
      Ready rd = n.core->ready();
      if (torn_ && chance(p_.torn)) {
        torn_write(i, rd);
        crash(i, "while persisting a Ready");
        ++stats_.torn;
        return;
      }
      if (rd.snapshot) install(i, *rd.snapshot);
      if (rd.hard_state) n.disk.hs = *rd.hard_state;
      write(i, rd.entries.begin(), rd.entries.end());
      check_against_disk(i);
      for (const auto& m : rd.messages) {
        check_outgoing(i, m);
        send(m);
      }
      for (const auto& e : rd.committed) apply(i, e);
      for (const auto& rs : rd.reads) read_done(i, rs);
      n.core->advance(rd);
    }
  }

  // The crash hits while the Ready is written: its records are the snapshot, then the entries,
  // then the hard state, and only a strict prefix of them made it. None of its messages left.
  void torn_write(int i, const Ready& rd) {
    SimNode& n = nodes_[i];
    size_t records = (rd.snapshot ? 1 : 0) + rd.entries.size() + (rd.hard_state ? 1 : 0);
    size_t keep = records ? uniform(0, records - 1) : 0;
    trace("n{} torn write: {} of {} records (snapshot {}, {} entries, hard state {})", n.id, keep, records,
          rd.snapshot.has_value(), rd.entries.size(), rd.hard_state.has_value());
    if (rd.snapshot && keep > 0) {
      install(i, *rd.snapshot);
      --keep;
    }
    size_t k = std::min(keep, rd.entries.size());
    write(i, rd.entries.begin(), rd.entries.begin() + static_cast<ptrdiff_t>(k));
  }

  // Installs a snapshot on disk, with the state machine copied from a node that has it.
  void install(int i, const SnapshotMeta& s) {
    SimNode& n = nodes_[i];
    if (s.index <= n.app_index)
      fail("n{}: snapshot at {} would roll back the state machine at {}", n.id, s.index, n.app_index);
    auto state = state_at(s.index);
    if (!state) fail("n{}: no node holds the state machine at {} to install the snapshot", n.id, s.index);
    for (size_t k = 0; k < state->size(); ++k)
      if (k >= canon_.size() || !((*state)[k] == canon_[k]))
        fail("n{}: the state machine copied for snapshot {} is not a prefix of the applied history", n.id, s.index);
    record_commit(s.index, s.term, n.core ? n.core->term() : n.disk.hs.term);
    trace("n{} installs snapshot {}@{} ({} commands)", n.id, s.index, s.term, state->size());
    if (n.disk.term(s.index) == s.term) {
      n.disk.drop_through(s.index);
    } else {
      n.disk.log.clear();
    }
    n.disk.snap = s;
    n.disk.app = *state;
    n.app = std::move(*state);
    n.app_index = s.index;
    n.probed = std::any_of(n.app.begin(), n.app.end(), [](const Applied& a) { return a.data.starts_with("probe"); });
    ++stats_.snapshots;
  }

  // The application's state at `index`, from any node that has it (the state transfer).
  std::optional<std::vector<Applied>> state_at(uint64_t index) const {
    auto prefix = [&](const std::vector<Applied>& v) {
      std::vector<Applied> out;
      for (const auto& a : v) {
        if (a.index > index) break;
        out.push_back(a);
      }
      return out;
    };
    for (const auto& o : nodes_)
      if (o.disk.snap.index >= index) return prefix(o.disk.app);
    for (const auto& o : nodes_)
      if (o.core && o.app_index >= index) return prefix(o.app);
    return std::nullopt;
  }

  // Writes entries (they may overwrite the log from their first index on).
  template <typename It>
  void write(int i, It begin, It end) {
    if (begin == end) return;
    SimNode& n = nodes_[i];
    uint64_t first = begin->index;
    if (first <= n.disk.snap.index || first > n.disk.last() + 1)
      fail("n{}: entries from {} do not continue the log (snapshot {}, last {})", n.id, first, n.disk.snap.index,
           n.disk.last());
    // What is replaced or cut off must not be a committed entry.
    uint64_t count = static_cast<uint64_t>(end - begin);
    for (uint64_t k = first; k <= n.disk.last(); ++k) {
      const Entry* old = n.disk.at(k);
      if (k >= committed_.size() || committed_[k].term != old->term) continue;
      if (k - first >= count) fail("n{}: committed entry {}@{} truncated", n.id, k, old->term);
      if ((begin + static_cast<ptrdiff_t>(k - first))->term != old->term)
        fail("n{}: committed entry {}@{} overwritten", n.id, k, old->term);
    }
    n.disk.log.resize(first - n.disk.snap.index - 1);
    for (It it = begin; it != end; ++it) {
      const Entry& e = *it;
      if (e.index != n.disk.last() + 1) fail("n{}: entries of a Ready are not contiguous at {}", n.id, e.index);
      uint64_t prev = *n.disk.term(e.index - 1);
      if (e.term < prev) fail("n{}: entry {}@{} follows an entry of term {}", n.id, e.index, e.term, prev);
      check_log_matching(n.id, e, prev);
      n.disk.log.push_back(e);
    }
  }

  // Log matching: an (index, term) names one entry, with one predecessor term. Since every entry
  // of every log is checked, two logs holding (index, term) hold the same prefix.
  struct LogRecord {
    EntryType type;
    std::string data;
    uint64_t prev_term;
  };
  void check_log_matching(NodeId id, const Entry& e, uint64_t prev_term) {
    auto [it, fresh] = entries_.try_emplace({e.index, e.term}, LogRecord{e.type, e.data, prev_term});
    if (fresh) return;
    const LogRecord& r = it->second;
    if (r.type != e.type || r.data != e.data || r.prev_term != prev_term)
      fail("log matching: n{} has entry {}@{} ({} after term {}), another node has ({} after term {})", id, e.index,
           e.term, e.data, prev_term, r.data, r.prev_term);
  }

  void check_against_disk(int i) {
    SimNode& n = nodes_[i];
    const Core& c = *n.core;
    if (c.snapshot().index != n.disk.snap.index || c.last_index() != n.disk.last() ||
        c.term_at(c.last_index()) != n.disk.term(n.disk.last()))
      fail("n{}: the core's log (snapshot {}, last {}) differs from what was persisted (snapshot {}, last {})", n.id,
           c.snapshot().index, c.last_index(), n.disk.snap.index, n.disk.last());
    if (c.term() != n.disk.hs.term || c.vote() != n.disk.hs.vote)
      fail("n{}: term {} vote {} in memory, {} {} on disk: a hard state was not handed out", n.id, c.term(), c.vote(),
           n.disk.hs.term, n.disk.hs.vote);
  }

  // A message may only leave once what it depends on is durable.
  void check_outgoing(int i, const Message& m) {
    const SimNode& n = nodes_[i];
    const Disk& d = n.disk;
    if (m.from != n.id) fail("n{} sent a message from {}", n.id, m.from);
    if (m.to == n.id || m.to == 0 || m.to > static_cast<NodeId>(m_)) fail("n{} sent a message to {}", n.id, m.to);
    bool pre = m.type == MsgType::PRE_VOTE || m.type == MsgType::PRE_VOTE_RESP;
    if (!pre && m.term > d.hs.term)
      fail("n{}: {} sent in term {} while term {} is durable", n.id, show(m), m.term, d.hs.term);
    switch (m.type) {
      case MsgType::VOTE_RESP:
        if (!m.reject && (d.hs.term != m.term || d.hs.vote != m.to))
          fail("n{}: vote for {} in term {} granted before it was durable", n.id, m.to, m.term);
        break;
      case MsgType::VOTE:
        if (d.hs.vote != n.id || d.hs.term != m.term)
          fail("n{}: campaign in term {} before its own vote was durable", n.id, m.term);
        break;
      case MsgType::APPEND:
        for (const auto& e : m.entries)
          if (d.term(e.index) != e.term) fail("n{}: sent entry {}@{} that is not durable", n.id, e.index, e.term);
        break;
      case MsgType::APPEND_RESP:
        if (!m.reject && m.index > d.last()) fail("n{}: acknowledged {} with {} durable", n.id, m.index, d.last());
        break;
      default:
        break;
    }
  }

  void apply(int i, const Entry& e) {
    SimNode& n = nodes_[i];
    if (e.index != n.app_index + 1) fail("n{}: applied {} after {}", n.id, e.index, n.app_index);
    const Entry* d = n.disk.at(e.index);
    if (!d || !(*d == e)) fail("n{}: applied entry {}@{} that is not durable as such", n.id, e.index, e.term);
    record_commit(e.index, e.term, n.core->term());
    n.app_index = e.index;
    if (e.type != EntryType::NORMAL) return;
    Applied a{e.index, e.data};
    size_t pos = n.app.size();
    if (pos < canon_.size()) {
      if (!(canon_[pos] == a))
        fail("state machine safety: n{} applied {} (index {}) as command #{}, another node applied {} (index {})", n.id,
             a.data, a.index, pos, canon_[pos].data, canon_[pos].index);
    } else {
      canon_.push_back(a);
    }
    n.app.push_back(std::move(a));
    if (e.data.starts_with("probe")) n.probed = true;
  }

  void read_done(int i, const ReadState& rs) {
    SimNode& n = nodes_[i];
    auto it = reads_.find(rs.request);
    if (it == reads_.end()) fail("n{}: read {} released twice or never asked", n.id, rs.request);
    if (rs.index < it->second)
      fail("n{}: read {} at index {} misses commit index {} reached before it was asked", n.id, rs.request, rs.index,
           it->second);
    if (rs.index > n.core->commit())
      fail("n{}: read {} at index {} beyond commit {}", n.id, rs.request, rs.index, n.core->commit());
    reads_.erase(it);
    ++stats_.reads;
  }

  // ---- the global invariants
  struct Committed {
    uint64_t term = 0;      // term of the entry (0: not known committed)
    uint64_t seen_in = 0;   // the lowest term in which a node saw it committed
  };

  // Index `index` holds an entry of `term` and is committed, as seen by a node in term `seen_in`.
  void record_commit(uint64_t index, uint64_t term, uint64_t seen_in) {
    if (index == 0) return;
    if (committed_.size() <= index) committed_.resize(index + 1);
    Committed& c = committed_[index];
    if (c.term == 0) {
      c = Committed{term, seen_in};
      ++stats_.commits;
      max_commit_ = std::max(max_commit_, index);
    } else if (c.term != term) {
      fail("two entries committed at index {}: terms {} and {}", index, c.term, term);
    } else if (seen_in < c.seen_in) {
      c.seen_in = seen_in;
    } else {
      return;
    }
    // Leader completeness for the leaders of later terms that exist now.
    for (int j = 0; j < m_; ++j) {
      const SimNode& o = nodes_[j];
      if (o.core && o.core->role() == Role::LEADER && o.core->term() > c.seen_in && !holds(*o.core, index))
        fail("leader completeness: leader n{} of term {} lacks entry {}@{} committed in term {}", o.id, o.core->term(),
             index, c.term, c.seen_in);
    }
  }

  bool holds(const Core& c, uint64_t index) const {
    if (index <= c.snapshot().index) return true;  // the snapshot covers it (its term was checked)
    return c.term_at(index) == committed_[index].term;
  }

  // After every call into node i: roles, terms, commit.
  void observe(int i) {
    SimNode& n = nodes_[i];
    const Core& c = *n.core;
    if (c.role() != n.last_role || c.term() != n.last_term) {
      trace("n{} is {} in term {} (last {}, commit {})", n.id, role_name(c.role()), c.term(), c.last_index(),
            c.commit());
      n.last_role = c.role();
      n.last_term = c.term();
    }
    if (c.role() == Role::LEADER) {
      auto [it, fresh] = leaders_.try_emplace(c.term(), n.id);
      if (!fresh && it->second != n.id)
        fail("election safety: n{} and n{} both lead term {}", it->second, n.id, c.term());
      if (fresh) {
        ++stats_.leaders;
        for (uint64_t k = 1; k < committed_.size(); ++k)
          if (committed_[k].term && committed_[k].seen_in < c.term() && !holds(c, k))
            fail("leader completeness: new leader n{} of term {} lacks entry {}@{} committed in term {}", n.id,
                 c.term(), k, committed_[k].term, committed_[k].seen_in);
      }
    }
    if (c.commit() > c.last_index()) fail("n{}: commit {} beyond the last index {}", n.id, c.commit(), c.last_index());
    if (c.commit() < c.snapshot().index)
      fail("n{}: commit {} below the snapshot {}", n.id, c.commit(), c.snapshot().index);
    for (uint64_t k = std::max(n.checked_commit, c.snapshot().index) + 1; k <= c.commit(); ++k)
      record_commit(k, *c.term_at(k), c.term());
    n.checked_commit = c.commit();
  }

  // The whole logs, pairwise, and each core against its disk.
  void full_check() {
    for (int i = 0; i < m_; ++i) {
      const SimNode& n = nodes_[i];
      if (n.core) {
        for (uint64_t k = n.disk.snap.index + 1; k <= n.disk.last(); ++k) {
          const Entry* e = n.core->entry(k);
          if (!e || !(*e == *n.disk.at(k))) fail("n{}: entry {} in memory differs from the disk", n.id, k);
        }
      }
      for (size_t k = 0; k < n.app.size(); ++k)
        if (k >= canon_.size() || !(n.app[k] == canon_[k]))
          fail("n{}: state machine is not a prefix of the history", n.id);
      for (int j = i + 1; j < m_; ++j) {
        const Disk& a = n.disk;
        const Disk& b = nodes_[j].disk;
        uint64_t lo = std::max(a.snap.index, b.snap.index) + 1;
        uint64_t hi = std::min(a.last(), b.last());
        uint64_t top = 0;
        for (uint64_t k = hi; k >= lo && k > 0; --k)
          if (a.term(k) == b.term(k)) {
            top = k;
            break;
          }
        for (uint64_t k = lo; k <= top; ++k)
          if (!(*a.at(k) == *b.at(k)))
            fail("log matching: n{} and n{} agree on entry {} but differ at {}", n.id, nodes_[j].id, top, k);
      }
    }
  }

  // ---- the network
  bool connected(NodeId a, NodeId b) const { return group_[idx(a)] == group_[idx(b)]; }

  void send(const Message& m) {
    ++stats_.messages;
    if (!connected(m.from, m.to) || chance(p_.drop)) return;
    int copies = chance(p_.dup) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      uint64_t delay = chance(p_.long_delay) ? uniform(1, 3 * p_.election) : uniform(1, 3);
      net_.push_back(InFlight{now_ + delay, next(), m});
    }
  }

  void deliver_due() {
    std::vector<InFlight> due;
    size_t keep = 0;
    for (size_t k = 0; k < net_.size(); ++k) {
      if (net_[k].at <= now_) {
        due.push_back(std::move(net_[k]));
      } else {
        if (keep != k) net_[keep] = std::move(net_[k]);  // never onto itself: that empties it
        ++keep;
      }
    }
    net_.resize(keep);
    std::sort(due.begin(), due.end(), [](const InFlight& a, const InFlight& b) {
      return a.at != b.at ? a.at < b.at : a.key < b.key;
    });
    for (const auto& f : due) {
      int to = idx(f.m.to);
      if (!up(to) || !connected(f.m.from, f.m.to)) continue;
      if (tracing_) trace("deliver {}", show(f.m));
      nodes_[to].core->step(f.m);
      after(to);
      if (tracing_ && up(to) && nodes_[to].core->role() == Role::LEADER) {
        std::string ms;
        for (const auto& o : nodes_)
          if (o.id != f.m.to) ms += fmt::format(" n{}={}", o.id, nodes_[to].core->match_of(o.id));
        trace("  n{} match:{}", f.m.to, ms);
      }
    }
  }

  uint64_t backlog(int l) const {
    const Core& c = *nodes_[l].core;
    uint64_t lowest = c.last_index();
    for (NodeId v : c.conf().voters)
      if (v != c.id()) lowest = std::min(lowest, c.match_of(v));
    return c.last_index() - lowest;
  }

  // ---- the world
  std::vector<int> leaders_now() const {
    std::vector<int> v;
    for (int i = 0; i < m_; ++i)
      if (up(i) && nodes_[i].core->role() == Role::LEADER) v.push_back(i);
    return v;
  }

  void propose(int i, const std::string& data) {
    auto r = nodes_[i].core->propose(data);
    if (tracing_ && r.ok()) trace("n{} proposes {} at {}", nodes_[i].id, data, *r);
    after(i);
  }

  void compact(int i) {
    SimNode& n = nodes_[i];
    Core& c = *n.core;
    uint64_t at = n.app_index;
    if (at <= c.snapshot().index) return;
    c.compact(at, fmt::format("state of n{} at {}", n.id, at));
    if (c.snapshot().index != at) return;  // refused
    if (committed_.size() <= at || committed_[at].term != c.snapshot().term)
      fail("n{}: compacted at {}@{}, which is not a known committed entry", n.id, at, c.snapshot().term);
    n.disk.drop_through(at);
    n.disk.snap = c.snapshot();
    n.disk.app = n.app;
    ++stats_.compactions;
    trace("n{} compacts at {}", n.id, at);
    after(i);
  }

  void chaos() {
    if (chance(p_.propose)) {
      auto ls = leaders_now();
      if (!ls.empty()) {
        int l = ls[uniform(0, ls.size() - 1)];
        // Clients hold back while a leader has a long backlog (with one entry per message and one
        // message in flight, a follower gets an entry per round trip).
        for (uint64_t k = uniform(1, 3); k > 0 && up(l) && backlog(l) < 24; --k)
          propose(l, fmt::format("c{}", next_cmd_++));
      }
    }
    if (chance(p_.partition)) {
      if (chance(0.5)) {
        for (auto& g : group_) g = static_cast<int>(uniform(0, 1));
      } else {
        group_.assign(m_, 0);
        group_[uniform(0, m_ - 1)] = 1;
      }
      if (tracing_) {
        std::string g;
        for (int x : group_) g += std::to_string(x);
        trace("partition {}", g);
      }
    } else if (chance(p_.heal)) {
      group_.assign(m_, 0);
      trace("heal");
    }
    for (int i = 0; i < m_; ++i) {
      if (up(i) && chance(p_.crash)) crash(i, "between Readies");
      else if (!up(i) && chance(p_.restart)) start(i);
    }
    if (chance(p_.compact)) {
      int i = static_cast<int>(uniform(0, m_ - 1));
      if (up(i)) compact(i);
    }
    if (chance(p_.transfer)) {
      auto ls = leaders_now();
      if (!ls.empty()) {
        int l = ls[0];
        NodeId to = uniform(1, m_);
        if (to != nodes_[l].id && nodes_[l].core->transfer_leadership(to).ok()) {
          ++stats_.transfers;
          trace("n{} transfers leadership to n{}", nodes_[l].id, to);
        }
        after(l);
      }
    }
    if (chance(p_.membership)) {
      auto ls = leaders_now();
      if (!ls.empty()) {
        int l = ls[uniform(0, ls.size() - 1)];
        const ConfState conf = nodes_[l].core->conf();
        ConfChange cc;
        if (static_cast<int>(conf.voters.size()) < m_) {
          cc.kind = ConfChange::Kind::ADD;
          for (const auto& o : nodes_)
            if (!conf.contains(o.id)) cc.node = o.id;
        } else {
          cc.kind = ConfChange::Kind::REMOVE;
          cc.node = conf.voters[uniform(0, conf.voters.size() - 1)];
        }
        auto r = nodes_[l].core->propose_conf(cc);
        if (r.ok()) {
          ++stats_.conf_changes;
          trace("n{} proposes {} n{} at {}", nodes_[l].id, cc.kind == ConfChange::Kind::ADD ? "adding" : "removing",
                cc.node, *r);
        }
        after(l);
      }
    }
    if (chance(p_.read)) {
      auto ls = leaders_now();
      if (!ls.empty()) {
        int l = ls[uniform(0, ls.size() - 1)];
        uint64_t req = next_read_++;
        // Registered first: a single node releases the read in the Ready processed right away.
        reads_[req] = max_commit_;
        if (!nodes_[l].core->read_index(req).ok()) reads_.erase(req);
        after(l);
      }
    }
  }

  // One tick of the clock: every live node ticks (a few skip, their clock is slow), then the
  // messages due are delivered.
  void step() {
    ++now_;
    ++stats_.steps;
    std::vector<int> order;
    for (int i = 0; i < m_; ++i) order.push_back(i);
    for (int i = m_ - 1; i > 0; --i) std::swap(order[i], order[uniform(0, i)]);
    for (int i : order) {
      if (!up(i) || chance(p_.skew)) continue;
      nodes_[i].core->tick();
      after(i);
    }
    deliver_due();
    if (now_ % 25 == 0) full_check();
  }

  // The leader of the highest term exists and every voter of its configuration applied a probe.
  bool probed_everywhere() const {
    auto ls = leaders_now();
    if (ls.empty()) return false;
    int l = *std::max_element(ls.begin(), ls.end(), [&](int a, int b) {
      return nodes_[a].core->term() < nodes_[b].core->term();
    });
    for (NodeId v : nodes_[l].core->conf().voters)
      if (!nodes_[idx(v)].probed) return false;
    return true;
  }

  // Heal, restart and calm everything; then a proposal must commit on every voter.
  void liveness() {
    phase_ = "liveness";
    torn_ = false;
    p_.drop = p_.dup = p_.long_delay = p_.crash = p_.torn = p_.partition = p_.compact = p_.transfer = 0;
    p_.skew = p_.membership = 0;
    group_.assign(m_, 0);
    trace("liveness: heal everything");
    for (int i = 0; i < m_; ++i)
      if (!up(i)) start(i);
    // Time for the backlog too: a follower may get one entry per round trip.
    uint64_t longest = 0, behind = 0;
    for (const auto& n : nodes_) longest = std::max(longest, n.core->last_index());
    for (const auto& n : nodes_) behind = std::max(behind, longest - std::min(longest, n.app_index));
    int limit = 60 * p_.election + static_cast<int>(8 * behind);
    int since = 1 << 20;
    for (int s = 0; s < limit; ++s, ++step_) {
      if (probed_everywhere()) return;
      if (since > 4 * p_.election) {
        auto ls = leaders_now();
        if (!ls.empty()) {
          auto r = nodes_[ls[0]].core->propose(fmt::format("probe{}", next_cmd_++));
          if (r.ok()) since = 0;
          after(ls[0]);
        }
      }
      ++since;
      step();
    }
    std::string state;
    for (const auto& n : nodes_) {
      std::string conf;
      for (NodeId v : n.core->conf().voters) conf += std::to_string(v);
      state += fmt::format(" n{}:{}/term {}/commit {}/last {}/conf {}/probed {}", n.id, role_name(n.core->role()),
                           n.core->term(), n.core->commit(), n.core->last_index(), conf, n.probed);
    }
    fail("liveness: no proposal committed on every node {} ticks after healing:{}", limit, state);
  }

  uint64_t seed_;
  int n_;  // voters at the start
  int m_;  // nodes (n_, plus the spare with membership changes)
  uint64_t rng_;
  bool tracing_;
  Params p_;
  std::string params_;
  Stats stats_;
  std::vector<SimNode> nodes_;
  ConfState bootstrap_;
  std::vector<int> group_;  // partition: nodes talk only within their group
  std::vector<InFlight> net_;
  uint64_t now_ = 0;
  uint64_t step_ = 0;
  const char* phase_ = "start";
  bool torn_ = true;
  std::deque<std::string> trace_;
  size_t trace_limit_ = env_limit();

  std::map<uint64_t, NodeId> leaders_;              // term -> its leader, over the whole run
  std::map<std::pair<uint64_t, uint64_t>, LogRecord> entries_;  // (index, term) -> the entry
  std::vector<Committed> committed_;                // index -> the committed entry
  std::vector<Applied> canon_;                      // the longest applied command sequence
  uint64_t max_commit_ = 0;
  std::map<uint64_t, uint64_t> reads_;              // request -> commit index reached when asked
  uint64_t next_cmd_ = 0;
  uint64_t next_read_ = 1;
};

// ---- the test driver

char g_crash_note[256];

extern "C" void on_fatal_signal(int sig) {
  ssize_t r = write(2, g_crash_note, strlen(g_crash_note));
  (void)r;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::optional<uint64_t> env_u64(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::strtoull(v, nullptr, 10);
}

void run_seeds(int nodes, uint64_t default_count) {
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_fatal_signal);
  std::vector<uint64_t> seeds;
  bool replay = false;
  if (auto one = env_u64("MYDFS_RAFT_SEED")) {
    seeds.push_back(*one);
    replay = true;
  } else {
    uint64_t count = env_u64("MYDFS_RAFT_SEEDS").value_or(default_count);
    for (uint64_t s = 1; s <= count; ++s) seeds.push_back(s);
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = fmt::format("{}.{}", info->test_suite_name(), info->name());
  Stats total;
  int failures = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t seed : seeds) {
    std::snprintf(g_crash_note, sizeof g_crash_note,
                  "\n*** raft simulation died in seed %llu (%d nodes); replay: MYDFS_RAFT_SEED=%llu "
                  "build/tests/raft_sim_test --gtest_filter=%s\n",
                  static_cast<unsigned long long>(seed), nodes, static_cast<unsigned long long>(seed), filter.c_str());
    Sim sim(seed, nodes, replay);
    try {
      sim.run();
    } catch (const Failure& f) {
      ADD_FAILURE() << f.what() << "\n  replay: MYDFS_RAFT_SEED=" << seed
                    << " build/tests/raft_sim_test --gtest_filter=" << filter;
      if (++failures >= 5) {
        ADD_FAILURE() << "stopping after 5 failing seeds";
        break;
      }
    }
    Stats s = sim.stats();
    s.runs = 1;
    total.add(s);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d nodes: %llu runs in %.1fs, %llu steps, %llu messages, %llu leaders, %llu commits, %llu crashes "
              "(%llu torn), %llu compactions, %llu snapshots installed, %llu transfers, %llu reads, "
              "%llu conf changes\n",
              nodes, (unsigned long long)total.runs, secs, (unsigned long long)total.steps,
              (unsigned long long)total.messages, (unsigned long long)total.leaders, (unsigned long long)total.commits,
              (unsigned long long)total.crashes, (unsigned long long)total.torn, (unsigned long long)total.compactions,
              (unsigned long long)total.snapshots, (unsigned long long)total.transfers, (unsigned long long)total.reads,
              (unsigned long long)total.conf_changes);
}

TEST(RaftSim, threeNodes) { run_seeds(3, 3000); }

TEST(RaftSim, fiveNodes) { run_seeds(5, 2500); }

}  // namespace
}  // namespace mydfs::raft
