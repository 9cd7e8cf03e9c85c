#include "raft/node.h"

#include <spdlog/spdlog.h>

namespace mydfs::raft {

namespace asio = boost::asio;

Result<std::unique_ptr<RaftNode>> RaftNode::open(NodeOptions opt, Transport& transport, ApplyFn apply) {
  std::unique_ptr<RaftNode> n(new RaftNode(std::move(opt), transport, std::move(apply)));
  MYDFS_ASSIGN(n->store_, LogStore::open(n->opt_.dir));
  Restored r = n->store_->take_restored(n->opt_.bootstrap, n->opt_.applied);
  n->core_ = std::make_unique<Core>(n->opt_.raft, std::move(r));
  n->applied_ = n->core_->applied();
  n->last_at_open_ = n->core_->last_index();
  return n;
}

RaftNode::RaftNode(NodeOptions opt, Transport& transport, ApplyFn apply)
    : opt_(std::move(opt)), transport_(transport), apply_(std::move(apply)) {}

RaftNode::~RaftNode() { stop(); }

void RaftNode::start() {
  on_tick();
  thread_ = std::thread([this] {
    auto work = asio::make_work_guard(io_);
    io_.run();
  });
}

void RaftNode::stop() {
  if (stopped_.exchange(true)) return;
  asio::post(io_, [this] {
    ticker_.cancel();
    fail_waiters(make_error(Code::UNAVAILABLE, "shutting down"));
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
}

void RaftNode::on_tick() {
  ticker_.expires_after(opt_.tick);
  ticker_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    core_->tick();
    process();
    on_tick();
  });
}

void RaftNode::receive(Message m) {
  asio::post(io_, [this, m = std::move(m)] {
    if (stopped_) return;
    core_->step(m);
    process();
  });
}

void RaftNode::propose(std::string data, std::function<void(Result<uint64_t>)> done) {
  asio::post(io_, [this, data = std::move(data), done = std::move(done)]() mutable {
    if (stopped_) return done(make_error(Code::UNAVAILABLE, "shutting down"));
    auto idx = core_->propose(std::move(data));
    if (!idx.ok()) return done(idx.take_error());
    proposals_[*idx] = Proposal{core_->term(), std::move(done)};
    process();
  });
}

void RaftNode::propose_conf(ConfChange cc, std::function<void(Result<uint64_t>)> done) {
  asio::post(io_, [this, cc, done = std::move(done)]() mutable {
    if (stopped_) return done(make_error(Code::UNAVAILABLE, "shutting down"));
    auto idx = core_->propose_conf(cc);
    if (!idx.ok()) return done(idx.take_error());
    proposals_[*idx] = Proposal{core_->term(), std::move(done)};
    process();
  });
}

void RaftNode::read_barrier(std::function<void(Status)> done) {
  asio::post(io_, [this, done = std::move(done)]() mutable {
    if (stopped_) return done(make_error(Code::UNAVAILABLE, "shutting down"));
    uint64_t id = next_read_++;
    Status st = core_->read_index(id);
    if (!st.ok()) return done(st.take_error());
    reads_[id] = Read{0, std::move(done)};
    process();
  });
}

void RaftNode::transfer_leadership(NodeId to, std::function<void(Status)> done) {
  asio::post(io_, [this, to, done = std::move(done)]() mutable {
    Status st = core_->transfer_leadership(to);
    process();
    done(std::move(st));
  });
}

RaftNode::Info RaftNode::info() const {
  std::lock_guard g(info_mu_);
  return info_;
}

void RaftNode::fail_waiters(const Error& e) {
  for (auto& [idx, p] : proposals_) p.done(e);
  proposals_.clear();
  for (auto& [id, r] : reads_) r.done(e);
  reads_.clear();
}

void RaftNode::process() {
  while (core_->has_ready()) {
    Ready rd = core_->ready();
    if (rd.snapshot) {
      spdlog::info("raft: installing the snapshot at index {} (term {})", rd.snapshot->index, rd.snapshot->term);
      if (opt_.install_snapshot) {
        // Until the application holds the state, nothing of this Ready may be persisted or sent.
        for (int attempt = 0;; ++attempt) {
          Status st = opt_.install_snapshot(*rd.snapshot);
          if (st.ok()) break;
          if (stopped_) return;
          spdlog::warn("raft: snapshot install failed (attempt {}), retrying: {}", attempt + 1, st.error().to_string());
          std::this_thread::sleep_for(std::chrono::milliseconds(std::min(2000, 100 << std::min(attempt, 4))));
        }
      }
      applied_ = rd.snapshot->index;
      // Proposals this member made before it fell behind: their entries may or may not be in the
      // snapshot, and no apply will tell.
      for (auto it = proposals_.begin(); it != proposals_.end() && it->first <= rd.snapshot->index;) {
        it->second.done(make_error(Code::UNAVAILABLE, "outcome unknown: this member was deposed and caught up by a snapshot"));
        it = proposals_.erase(it);
      }
    }
    if (opt_.on_conf) {
      for (const auto& e : rd.entries) {
        if (e.type != EntryType::CONF) continue;
        Reader r(e.data);
        ConfChange cc;
        cc.decode(r);
        if (r.ok()) opt_.on_conf(cc);
      }
    }
    if (opt_.before_persist && !rd.entries.empty() && !opt_.before_persist(rd.entries)) return;
    if (stopped_) return;
    Status st = store_->save(rd);
    if (!st.ok()) {
      // Nothing of this Ready may leave the node: its votes and acknowledgements depend on it.
      spdlog::critical("raft: cannot persist the log, stopping this member: {}", st.error().to_string());
      stopped_ = true;
      fail_waiters(make_error(Code::UNAVAILABLE, "the Raft log failed; this member stopped"));
      io_.stop();
      return;
    }
    for (const auto& m : rd.messages) transport_.send(m);
    for (const auto& e : rd.committed) {
      if (e.type == EntryType::NORMAL) apply_(e);
      applied_ = e.index;
      auto it = proposals_.find(e.index);
      if (it != proposals_.end()) {
        if (it->second.term == e.term) it->second.done(e.index);
        else it->second.done(make_error(Code::CONFLICT, "a new leader replaced the proposal; it did not happen"));
        proposals_.erase(it);
      }
    }
    for (const auto& rs : rd.reads) {
      auto it = reads_.find(rs.request);
      if (it != reads_.end()) it->second.index = std::max<uint64_t>(rs.index, 1);
    }
    core_->advance(rd);
  }
  // Reads whose index is applied may be served now.
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.index != 0 && it->second.index <= applied_) {
      it->second.done(ok_status());
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
  // A node that stopped leading cannot confirm reads any more; proposals wait for their index
  // to be applied (whoever leads), which tells whether they happened.
  Role role = core_->role();
  if (role != Role::LEADER && last_role_ == Role::LEADER) {
    for (auto& [id, r] : reads_) r.done(make_error(Code::NOT_LEADER, "lost leadership"));
    reads_.clear();
  }
  last_role_ = role;
  if (core_->applied() >= core_->snapshot().index + opt_.compact_after && core_->applied() == applied_) {
    uint64_t at = applied_;
    Status cp = opt_.before_compact ? opt_.before_compact(at) : ok_status();
    if (!cp.ok()) {
      spdlog::error("raft: checkpoint at {} failed, the log is kept: {}", at, cp.error().to_string());
    } else {
      core_->compact(at, "");
      std::vector<Entry> rest;
      for (uint64_t i = core_->first_index(); i <= core_->last_index(); ++i) rest.push_back(*core_->entry(i));
      Status st = store_->compact(core_->snapshot(), "", HardState{core_->term(), core_->vote(), core_->commit()}, rest);
      if (!st.ok()) spdlog::error("raft: log compaction failed: {}", st.error().to_string());
    }
  }
  std::lock_guard g(info_mu_);
  info_ = Info{role, core_->term(), core_->leader(), core_->commit(), applied_, core_->last_index(), core_->conf().voters};
}

}  // namespace mydfs::raft
