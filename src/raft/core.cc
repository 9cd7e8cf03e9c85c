#include "raft/core.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

namespace mydfs::raft {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void apply_change(ConfState& c, const ConfChange& cc) {
  auto it = std::lower_bound(c.voters.begin(), c.voters.end(), cc.node);
  bool present = it != c.voters.end() && *it == cc.node;
  if (cc.kind == ConfChange::Kind::ADD && !present) c.voters.insert(it, cc.node);
  if (cc.kind == ConfChange::Kind::REMOVE && present) c.voters.erase(it);
}

bool decode_change(const Entry& e, ConfChange& cc) {
  Reader r(e.data);
  cc.decode(r);
  return r.done();
}

}  // namespace

std::string_view role_name(Role r) {
  switch (r) {
    case Role::FOLLOWER: return "follower";
    case Role::PRE_CANDIDATE: return "pre-candidate";
    case Role::CANDIDATE: return "candidate";
    case Role::LEADER: return "leader";
  }
  return "unknown";
}

Core::Core(Config cfg, Restored st) : cfg_(cfg) {
  rng_state_ = cfg_.seed * 0x9E3779B97F4A7C15ull ^ (cfg_.id * 0xD1B54A32D192ED03ull);
  term_ = st.hard_state.term;
  vote_ = st.hard_state.vote;
  snap_ = st.snapshot;
  bootstrap_ = st.bootstrap;
  // Keep the entries that continue the snapshot without a gap.
  for (auto& e : st.entries) {
    if (e.index != last_index() + 1) break;
    log_.push_back(std::move(e));
  }
  stable_ = handed_ = last_index();
  commit_ = std::clamp(st.hard_state.commit, snap_.index, last_index());
  applied_ = std::clamp(st.applied, snap_.index, commit_);
  last_hs_ = HardState{term_, vote_, commit_};
  rebuild_conf();
  role_ = Role::FOLLOWER;
  reset_election_timeout();
}

// ---------------------------------------------------------------------------------------------
// Log access

std::optional<uint64_t> Core::term_at(uint64_t index) const {
  if (index == snap_.index) return snap_.term;
  if (index < snap_.index || index > last_index()) return std::nullopt;
  return log_[index - snap_.index - 1].term;
}

const Entry* Core::entry(uint64_t index) const {
  if (index <= snap_.index || index > last_index()) return nullptr;
  return &log_[index - snap_.index - 1];
}

uint64_t Core::match_of(NodeId peer) const {
  if (peer == cfg_.id) return stable_;
  auto it = prs_.find(peer);
  return it == prs_.end() ? 0 : it->second.match;
}

void Core::rebuild_conf() {
  conf_ = snap_.index > 0 ? snap_.conf : bootstrap_;
  pending_conf_index_ = 0;
  for (const auto& e : log_) {
    ConfChange cc;
    if (e.type == EntryType::CONF && decode_change(e, cc)) {
      apply_change(conf_, cc);
      pending_conf_index_ = e.index;
    }
  }
  if (role_ == Role::LEADER) {
    for (auto it = prs_.begin(); it != prs_.end();)
      it = conf_.contains(it->first) ? std::next(it) : prs_.erase(it);
    for (NodeId v : conf_.voters)
      if (v != cfg_.id && !prs_.count(v)) prs_[v].next = last_index() + 1;
  }
}

void Core::apply_conf_entries(const std::vector<Entry>& added) {
  bool any = false;
  for (const auto& e : added) any = any || e.type == EntryType::CONF;
  if (any) rebuild_conf();
}

void Core::truncate_from(uint64_t index) {
  assert(index > commit_ && "a committed entry is never overwritten");
  while (!log_.empty() && last_index() >= index) log_.pop_back();
  stable_ = std::min(stable_, index - 1);
  handed_ = std::min(handed_, index - 1);
  rebuild_conf();
}

uint64_t Core::append_local(std::vector<Entry> entries) {
  uint64_t idx = last_index();
  for (auto& e : entries) {
    e.term = term_;
    e.index = ++idx;
  }
  for (const auto& e : entries) log_.push_back(e);
  apply_conf_entries(entries);
  return idx;
}

void Core::append_from_leader(const std::vector<Entry>& entries) {
  std::vector<Entry> added;
  for (size_t k = 0; k < entries.size(); ++k) {
    const Entry& e = entries[k];
    auto have = term_at(e.index);
    if (have && *have == e.term) continue;  // already there
    if (have) {
      if (e.index <= commit_) return;  // never happens with a correct leader; refuse to break the log
      truncate_from(e.index);
    }
    if (e.index != last_index() + 1) return;
    log_.push_back(e);
    added.push_back(e);
  }
  apply_conf_entries(added);
}

// ---------------------------------------------------------------------------------------------
// Roles

void Core::reset_election_timeout() {
  randomized_timeout_ = cfg_.election_ticks + static_cast<int>(splitmix64(rng_state_) % std::max(1, cfg_.election_ticks));
}

void Core::reset(uint64_t term) {
  if (term != term_) {
    term_ = term;
    vote_ = 0;
  }
  leader_ = 0;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_election_timeout();
  votes_.clear();
  prs_.clear();
  transferee_ = 0;
  pending_reads_.clear();
  acked_round_.clear();
}

void Core::become_follower(uint64_t term, NodeId leader) {
  reset(term);
  role_ = Role::FOLLOWER;
  leader_ = leader;
}

void Core::become_pre_candidate() {
  // No term or vote change: a pre-vote disturbs nobody if it fails.
  role_ = Role::PRE_CANDIDATE;
  leader_ = 0;
  votes_.clear();
  prs_.clear();
  election_elapsed_ = 0;
  reset_election_timeout();
}

void Core::become_candidate() {
  reset(term_ + 1);
  vote_ = cfg_.id;
  role_ = Role::CANDIDATE;
}

void Core::become_leader() {
  reset(term_);
  role_ = Role::LEADER;
  leader_ = cfg_.id;
  for (NodeId v : conf_.voters)
    if (v != cfg_.id) prs_[v].next = last_index() + 1;
  for (auto& [id, pr] : prs_) pr.active = true;  // a fresh leader gets a full round before check-quorum
  Entry noop;
  noop.type = EntryType::NOOP;
  // No configuration change until this leader has committed an entry of its own term: a change
  // of an older leader that it does not know of may still be in some log, and two unrelated
  // single-server changes need not share a majority.
  pending_conf_index_ = append_local({noop});
  for (auto& [id, pr] : prs_) send_append(id, true);
}

void Core::campaign(bool pre, bool transfer) {
  if (!promotable()) return;
  uint64_t vote_term;
  MsgType type;
  if (pre) {
    become_pre_candidate();
    vote_term = term_ + 1;
    type = MsgType::PRE_VOTE;
  } else {
    become_candidate();
    vote_term = term_;
    type = MsgType::VOTE;
  }
  votes_[cfg_.id] = true;
  if (quorum() == 1) {
    if (pre) campaign(false, transfer);
    else become_leader();
    return;
  }
  for (NodeId v : conf_.voters) {
    if (v == cfg_.id) continue;
    Message m;
    m.type = type;
    m.to = v;
    m.term = vote_term;
    m.index = last_index();
    m.log_term = *term_at(last_index());
    m.transfer = transfer;
    send(std::move(m));
  }
}

bool Core::in_lease() const {
  return leader_ != 0 && election_elapsed_ < cfg_.election_ticks;
}

// ---------------------------------------------------------------------------------------------
// Clock

void Core::tick() {
  if (role_ == Role::LEADER) {
    ++heartbeat_elapsed_;
    ++election_elapsed_;
    if (election_elapsed_ >= cfg_.election_ticks) {
      election_elapsed_ = 0;
      if (cfg_.check_quorum) {
        size_t active = conf_.contains(cfg_.id) ? 1 : 0;
        for (auto& [id, pr] : prs_) {
          active += pr.active ? 1 : 0;
          pr.active = false;
        }
        if (active < quorum()) {
          become_follower(term_, 0);  // cut off from a majority: stop serving as leader
          return;
        }
      }
      transferee_ = 0;  // a transfer that did not finish within an election timeout is abandoned
    }
    if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
      heartbeat_elapsed_ = 0;
      broadcast_heartbeat();
    }
    return;
  }
  ++election_elapsed_;
  if (promotable() && election_elapsed_ >= randomized_timeout_) {
    election_elapsed_ = 0;
    campaign(cfg_.pre_vote, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages in

void Core::step(const Message& m) {
  if (m.from == 0 || m.from == cfg_.id) return;
  if (m.term > term_) {
    bool vote_request = m.type == MsgType::VOTE || m.type == MsgType::PRE_VOTE;
    if (vote_request && cfg_.check_quorum && !m.transfer && in_lease()) {
      return;  // a leader was heard from within the election timeout: no election now
    }
    if (m.type == MsgType::PRE_VOTE) {
      // Answered below without changing anything: the term is only what the sender would use.
    } else if (m.type == MsgType::PRE_VOTE_RESP && !m.reject) {
      // A granted pre-vote carries the term the campaign will use, not a newer leader's term.
    } else {
      bool from_leader = m.type == MsgType::APPEND || m.type == MsgType::SNAPSHOT;
      become_follower(m.term, from_leader ? m.from : 0);
    }
  } else if (m.term < term_) {
    if ((cfg_.check_quorum || cfg_.pre_vote) && m.type == MsgType::APPEND) {
      // A deposed leader (e.g. after a partition healed): our term makes it step down.
      Message r;
      r.type = MsgType::APPEND_RESP;
      r.to = m.from;
      r.term = term_;
      send(std::move(r));
    } else if (m.type == MsgType::PRE_VOTE) {
      Message r;
      r.type = MsgType::PRE_VOTE_RESP;
      r.to = m.from;
      r.term = term_;
      r.reject = true;
      send(std::move(r));
    }
    return;
  }

  if (m.type == MsgType::VOTE || m.type == MsgType::PRE_VOTE) {
    handle_vote_request(m);
    return;
  }
  switch (role_) {
    case Role::LEADER: step_leader(m); break;
    case Role::PRE_CANDIDATE:
    case Role::CANDIDATE: step_candidate(m); break;
    case Role::FOLLOWER: step_follower(m); break;
  }
}

void Core::handle_vote_request(const Message& m) {
  uint64_t last = last_index();
  uint64_t last_term = *term_at(last);
  bool up_to_date = m.log_term > last_term || (m.log_term == last_term && m.index >= last);
  bool can_vote = vote_ == m.from || (vote_ == 0 && leader_ == 0) ||
                  (m.type == MsgType::PRE_VOTE && m.term > term_);
  Message r;
  r.type = m.type == MsgType::VOTE ? MsgType::VOTE_RESP : MsgType::PRE_VOTE_RESP;
  r.to = m.from;
  if (can_vote && up_to_date) {
    r.term = m.term;  // for a pre-vote: the term asked about
    if (m.type == MsgType::VOTE) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    r.term = term_;
    r.reject = true;
  }
  send(std::move(r));
}

void Core::step_follower(const Message& m) {
  switch (m.type) {
    case MsgType::APPEND:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append(m);
      break;
    case MsgType::SNAPSHOT:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot(m);
      break;
    case MsgType::TIMEOUT_NOW:
      campaign(false, true);  // leader transfer: no pre-vote, and voters ignore their lease
      break;
    default:
      break;
  }
}

void Core::step_candidate(const Message& m) {
  switch (m.type) {
    case MsgType::APPEND:
      become_follower(term_, m.from);
      handle_append(m);
      return;
    case MsgType::SNAPSHOT:
      become_follower(term_, m.from);
      handle_snapshot(m);
      return;
    case MsgType::PRE_VOTE_RESP:
    case MsgType::VOTE_RESP: {
      bool pre = role_ == Role::PRE_CANDIDATE;
      if (pre != (m.type == MsgType::PRE_VOTE_RESP)) return;  // an answer to an earlier phase
      if (!conf_.contains(m.from)) return;
      votes_.emplace(m.from, !m.reject);
      size_t granted = 0, rejected = 0;
      for (auto& [id, g] : votes_) (g ? granted : rejected)++;
      if (granted >= quorum()) {
        if (pre) campaign(false, false);
        else become_leader();
      } else if (rejected >= quorum()) {
        become_follower(term_, 0);
      }
      return;
    }
    default:
      return;
  }
}

void Core::handle_append(const Message& m) {
  Message r;
  r.type = MsgType::APPEND_RESP;
  r.to = m.from;
  r.term = term_;
  r.context = m.context;
  for (size_t k = 0; k < m.entries.size(); ++k)
    if (m.entries[k].index != m.index + 1 + k) return;  // malformed: ignore
  if (m.index < commit_) {
    r.index = commit_;  // everything up to our commit matches already
    r.reject_hint = last_index();
    send(std::move(r));
    return;
  }
  auto t = term_at(m.index);
  if (t && *t == m.log_term) {
    append_from_leader(m.entries);
    uint64_t last_new = m.index + m.entries.size();
    uint64_t c = std::min(m.commit, last_new);
    if (c > commit_) commit_ = std::min(c, last_index());
    r.index = last_new;
    r.reject_hint = last_index();
  } else {
    r.reject = true;
    r.index = m.index;
    r.reject_hint = std::min(m.index, last_index());
  }
  send(std::move(r));
}

void Core::handle_snapshot(const Message& m) {
  Message r;
  r.type = MsgType::APPEND_RESP;
  r.to = m.from;
  r.term = term_;
  const SnapshotMeta& s = m.snapshot;
  if (s.index <= commit_) {
    r.index = commit_;
  } else if (term_at(s.index) == s.term) {
    // We hold the snapshot's last entry already: only the commit index moves.
    commit_ = s.index;
    r.index = s.index;
  } else {
    // Replace everything with the snapshot; the owner installs the state before answering.
    log_.clear();
    snap_ = s;
    snap_data_ = m.snapshot_data;
    commit_ = applied_ = stable_ = handed_ = s.index;
    pending_install_ = s;
    rebuild_conf();
    r.index = s.index;
  }
  r.reject_hint = last_index();
  send(std::move(r));
}

void Core::step_leader(const Message& m) {
  auto it = prs_.find(m.from);
  if (it != prs_.end()) it->second.active = true;
  if (m.type == MsgType::APPEND_RESP) handle_append_resp(m);
}

void Core::handle_append_resp(const Message& m) {
  auto it = prs_.find(m.from);
  if (it == prs_.end()) return;
  Progress& pr = it->second;
  bool heartbeat = m.context != 0;
  if (heartbeat) {
    uint64_t& acked = acked_round_[m.from];
    acked = std::max(acked, m.context);
    release_reads();
  }
  if (m.reject) {
    if (pr.state == ProgressState::REPLICATE) {
      pr.state = ProgressState::PROBE;
      pr.inflight.clear();
      pr.next = pr.match + 1;
    } else if (pr.state == ProgressState::PROBE) {
      if (!heartbeat && m.index != pr.next - 1) return;  // the answer to an older probe
      pr.next = std::max(pr.match + 1, std::min(heartbeat ? pr.next : m.index, m.reject_hint + 1));
    } else {
      // SNAPSHOT: wait for the install's answer; but a follower still rejecting heartbeats with
      // no progress for a whole heartbeat may have lost the snapshot: send it again.
      if (!heartbeat || pr.match != pr.hb_match) {
        pr.hb_match = pr.match;
        return;
      }
      pr.state = ProgressState::PROBE;
      pr.next = pr.match + 1;
    }
    pr.probe_sent = false;
    send_append(m.from, true);
    return;
  }

  bool progressed = m.index > pr.match;
  if (progressed) pr.match = m.index;
  pr.next = std::max(pr.next, pr.match + 1);
  switch (pr.state) {
    case ProgressState::PROBE:
      if (progressed || !heartbeat) {
        pr.state = ProgressState::REPLICATE;
        pr.inflight.clear();
        pr.next = pr.match + 1;
      }
      pr.probe_sent = false;
      break;
    case ProgressState::SNAPSHOT:
      if (pr.match >= pr.pending_snapshot) {
        pr.state = ProgressState::REPLICATE;
        pr.inflight.clear();
        pr.next = pr.match + 1;
      } else if (heartbeat) {
        // Still not installed a heartbeat later and no progress: the snapshot (or its answer)
        // may be lost. Probing again sends it again; a follower that has it answers at once.
        if (pr.match == pr.hb_match) {
          pr.state = ProgressState::PROBE;
          pr.next = pr.match + 1;
          pr.probe_sent = false;
        }
        pr.hb_match = pr.match;
      }
      break;
    case ProgressState::REPLICATE:
      while (!pr.inflight.empty() && pr.inflight.front() <= m.index) pr.inflight.pop_front();
      if (heartbeat) {
        // APPENDs are in flight but the follower's match has not moved for a whole heartbeat:
        // an APPEND or its acknowledgement was lost (or the follower holds a conflicting
        // suffix it has not been asked about). Start over from what is known to match; at worst
        // this resends what was only slow.
        if (!pr.inflight.empty() && pr.match == pr.hb_match) {
          pr.state = ProgressState::PROBE;
          pr.inflight.clear();
          pr.next = pr.match + 1;
          pr.probe_sent = false;
        }
        pr.hb_match = pr.match;
      }
      break;
  }
  // The new commit index reaches the followers with the next append or heartbeat. A leader whose
  // own removal just committed steps down inside maybe_commit(): prs_ (and pr) are gone then.
  if (progressed && maybe_commit() && role_ != Role::LEADER) return;
  // Keep the pipeline full.
  for (size_t k = 0; k < cfg_.max_inflight + 1 && pr.next <= last_index(); ++k) {
    size_t before = msgs_.size();
    send_append(m.from, false);
    if (msgs_.size() == before) break;
  }
  if (pr.state == ProgressState::PROBE && pr.match < last_index()) send_append(m.from, true);
  if (transferee_ == m.from && pr.match == last_index()) {
    Message t;
    t.type = MsgType::TIMEOUT_NOW;
    t.to = m.from;
    t.term = term_;
    send(std::move(t));
  }
}

// ---------------------------------------------------------------------------------------------
// Messages out

void Core::send(Message m) {
  assert(m.to != cfg_.id);
  m.from = cfg_.id;
  msgs_.push_back(std::move(m));
}

void Core::send_append(NodeId to, bool allow_empty) {
  Progress& pr = prs_[to];
  if (pr.state == ProgressState::SNAPSHOT) return;
  if (pr.state == ProgressState::PROBE && pr.probe_sent) return;
  if (pr.state == ProgressState::REPLICATE && pr.inflight.size() >= cfg_.max_inflight) return;
  if (pr.next < first_index()) {
    // What the follower needs was compacted away: it gets the snapshot instead.
    Message m;
    m.type = MsgType::SNAPSHOT;
    m.to = to;
    m.term = term_;
    m.snapshot = snap_;
    m.snapshot_data = snap_data_;
    send(std::move(m));
    pr.state = ProgressState::SNAPSHOT;
    pr.pending_snapshot = snap_.index;
    pr.inflight.clear();
    return;
  }
  Message m;
  m.type = MsgType::APPEND;
  m.to = to;
  m.term = term_;
  m.index = pr.next - 1;
  m.log_term = *term_at(m.index);
  m.commit = commit_;
  size_t bytes = 0;
  for (uint64_t i = pr.next; i <= last_index() && m.entries.size() < cfg_.max_entries_per_msg; ++i) {
    const Entry* e = entry(i);
    if (!m.entries.empty() && bytes + e->data.size() > cfg_.max_bytes_per_msg) break;
    bytes += e->data.size();
    m.entries.push_back(*e);
  }
  if (m.entries.empty() && !allow_empty) return;
  if (pr.state == ProgressState::REPLICATE && !m.entries.empty()) {
    pr.next = m.entries.back().index + 1;
    pr.inflight.push_back(pr.next - 1);
  } else if (pr.state == ProgressState::PROBE) {
    pr.probe_sent = true;
  }
  send(std::move(m));
}

void Core::send_heartbeat(NodeId to) {
  const Progress& pr = prs_[to];
  Message m;
  m.type = MsgType::APPEND;
  m.to = to;
  m.term = term_;
  m.index = pr.match;
  auto t = term_at(pr.match);
  if (!t) {
    m.index = snap_.index;
    t = snap_.term;
  }
  m.log_term = *t;
  m.commit = std::min(commit_, m.index);
  m.context = round_;
  send(std::move(m));
}

void Core::broadcast_heartbeat() {
  ++round_;
  for (auto& [id, pr] : prs_) send_heartbeat(id);
}

void Core::broadcast_append() {
  for (auto& [id, pr] : prs_) send_append(id, false);
}

bool Core::maybe_commit() {
  std::vector<uint64_t> matches;
  for (NodeId v : conf_.voters) matches.push_back(match_of(v));
  if (matches.empty()) return false;
  std::sort(matches.begin(), matches.end(), std::greater<>());
  uint64_t n = matches[quorum() - 1];
  // Only an entry of the current term commits by counting (older ones commit with it).
  if (n > commit_ && term_at(n) == term_) {
    commit_ = n;
    if (!promotable() && commit_ >= pending_conf_index_) {
      become_follower(term_, 0);  // this leader's removal is committed: hand over
    }
    return true;
  }
  return false;
}

void Core::release_reads() {
  if (pending_reads_.empty()) return;
  std::vector<uint64_t> rounds;
  for (NodeId v : conf_.voters) {
    if (v == cfg_.id) rounds.push_back(round_);
    else rounds.push_back(acked_round_.count(v) ? acked_round_[v] : 0);
  }
  std::sort(rounds.begin(), rounds.end(), std::greater<>());
  uint64_t confirmed = rounds[quorum() - 1];
  while (!pending_reads_.empty() && pending_reads_.front().round <= confirmed) {
    reads_.push_back(ReadState{pending_reads_.front().request, pending_reads_.front().index});
    pending_reads_.pop_front();
  }
}

// ---------------------------------------------------------------------------------------------
// Owner calls

Result<uint64_t> Core::propose(std::string data) {
  if (role_ != Role::LEADER) {
    Error e = make_error(Code::NOT_LEADER, "not the leader");
    if (leader_) e.hint = std::to_string(leader_);
    return e;
  }
  if (transferee_) return make_error(Code::UNAVAILABLE, "leadership is being transferred");
  Entry e;
  e.type = EntryType::NORMAL;
  e.data = std::move(data);
  uint64_t idx = append_local({std::move(e)});
  broadcast_append();
  return idx;
}

Result<uint64_t> Core::propose_conf(ConfChange cc) {
  if (role_ != Role::LEADER) {
    Error e = make_error(Code::NOT_LEADER, "not the leader");
    if (leader_) e.hint = std::to_string(leader_);
    return e;
  }
  if (transferee_) return make_error(Code::UNAVAILABLE, "leadership is being transferred");
  if (pending_conf_index_ > commit_)
    return make_error(Code::CONFLICT, "an earlier configuration change is not committed yet");
  if (cc.node == 0) return make_error(Code::BAD_REQUEST, "node id 0");
  bool present = conf_.contains(cc.node);
  if (cc.kind == ConfChange::Kind::ADD && present)
    return make_error(Code::BAD_REQUEST, fmt::format("node {} is a member already", cc.node));
  if (cc.kind == ConfChange::Kind::REMOVE && !present)
    return make_error(Code::BAD_REQUEST, fmt::format("node {} is not a member", cc.node));
  if (cc.kind == ConfChange::Kind::REMOVE && conf_.voters.size() == 1)
    return make_error(Code::BAD_REQUEST, "cannot remove the last member");
  Writer w;
  cc.encode(w);
  Entry e;
  e.type = EntryType::CONF;
  e.data = w.take();
  uint64_t idx = append_local({std::move(e)});
  broadcast_append();
  return idx;
}

Status Core::transfer_leadership(NodeId to) {
  if (role_ != Role::LEADER) return make_error(Code::NOT_LEADER, "not the leader");
  if (to == cfg_.id) return ok_status();
  if (!conf_.contains(to)) return make_error(Code::BAD_REQUEST, fmt::format("node {} is not a member", to));
  transferee_ = to;
  election_elapsed_ = 0;
  if (prs_[to].match == last_index()) {
    Message t;
    t.type = MsgType::TIMEOUT_NOW;
    t.to = to;
    t.term = term_;
    send(std::move(t));
  } else {
    send_append(to, true);
  }
  return ok_status();
}

Status Core::read_index(uint64_t request) {
  if (role_ != Role::LEADER) {
    Error e = make_error(Code::NOT_LEADER, "not the leader");
    if (leader_) e.hint = std::to_string(leader_);
    return e;
  }
  // Until an entry of this term commits, this leader may not know the latest commit index.
  if (term_at(commit_) != term_) return make_error(Code::UNAVAILABLE, "the new leader has not committed yet; retry");
  if (quorum() == 1 && promotable()) {
    reads_.push_back(ReadState{request, commit_});
    return ok_status();
  }
  broadcast_heartbeat();
  pending_reads_.push_back(PendingRead{request, commit_, round_});
  return ok_status();
}

bool Core::has_ready() const {
  return !(HardState{term_, vote_, commit_} == last_hs_) || pending_install_ || handed_ < last_index() ||
         !msgs_.empty() || applied_ < commit_ || !reads_.empty();
}

Ready Core::ready() {
  Ready rd;
  HardState hs{term_, vote_, commit_};
  if (!(hs == last_hs_)) {
    rd.hard_state = hs;
    last_hs_ = hs;
  }
  if (pending_install_) {
    rd.snapshot = *pending_install_;
    rd.snapshot_data = snap_data_;
    pending_install_.reset();
  }
  for (uint64_t i = handed_ + 1; i <= last_index(); ++i) rd.entries.push_back(*entry(i));
  handed_ = last_index();
  rd.messages = std::move(msgs_);
  msgs_.clear();
  // Committed entries are in the log of this very Ready at the latest, which the owner persists
  // before it applies them.
  for (uint64_t i = applied_ + 1; i <= commit_; ++i) rd.committed.push_back(*entry(i));
  applied_ = std::max(applied_, commit_);
  rd.reads = std::move(reads_);
  reads_.clear();
  return rd;
}

void Core::advance(const Ready& rd) {
  (void)rd;
  stable_ = handed_;
  if (role_ == Role::LEADER && maybe_commit()) {
    // Followers learn the new commit index with the next append or heartbeat.
  }
}

void Core::compact(uint64_t index, std::string data) {
  if (index <= snap_.index || index > applied_ || index > stable_) return;
  // The configuration as of index.
  ConfState c = snap_.index > 0 ? snap_.conf : bootstrap_;
  for (const auto& e : log_) {
    if (e.index > index) break;
    ConfChange cc;
    if (e.type == EntryType::CONF && decode_change(e, cc)) apply_change(c, cc);
  }
  uint64_t t = *term_at(index);
  while (!log_.empty() && log_.front().index <= index) log_.pop_front();
  snap_ = SnapshotMeta{index, t, c};
  snap_data_ = std::move(data);
}

}  // namespace mydfs::raft
