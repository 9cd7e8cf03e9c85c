#include "storage/group_replicator.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <charconv>
#include <condition_variable>
#include <future>
#include <set>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/checksum.h"
#include "common/parse.h"
#include "common/file_io.h"
#include "raft/rpc_transport.h"

namespace mydfs::storage {

namespace asio = boost::asio;
using raft::Entry;
using raft::EntryType;
using raft::NodeOptions;
using raft::RaftNode;
using raft::Role;
using raft::RpcTransport;
using raft::SnapshotMeta;
using raft::route_raft_messages;

namespace {

// A Raft entry of a storage group: the command, then the bytes beside it (PATCH bytes only;
// WRITE_SLOT bytes travel on the data path).
std::string encode_entry(const Command& cmd, std::span<const std::byte> data) {
  Writer w;
  cmd.encode(w);
  w.u32(static_cast<uint32_t>(data.size()));
  w.raw(data.data(), data.size());
  return w.take();
}

bool decode_entry(std::string_view body, Command& cmd, std::string_view& data) {
  Reader r(body);
  cmd.decode(r);
  uint32_t n = r.u32();
  if (!r.ok() || n != r.remaining()) return false;
  data = body.substr(body.size() - n);
  return true;
}

using SlotKey = std::pair<uint32_t, uint32_t>;  // (slot, gen)

// Group commit for store syncs: concurrent callers share one fdatasync. A caller returns once a
// sync that began after its call has ended, so everything it wrote before calling is durable.
class SyncBatcher {
 public:
  Status sync(SliceStore& store, Counter* syncs) {
    std::unique_lock lk(mu_);
    uint64_t mine = ++requested_;
    while (done_ < mine) {
      if (running_) {
        cv_.wait(lk);
        continue;
      }
      running_ = true;
      uint64_t covers = requested_;
      lk.unlock();
      Status st = store.sync();
      syncs->inc();
      lk.lock();
      running_ = false;
      if (!st.ok()) failed_ = st.error();
      done_ = covers;
      cv_.notify_all();
    }
    if (failed_) return *failed_;  // the store is in doubt from the first failed sync on
    return ok_status();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0, done_ = 0;
  bool running_ = false;
  std::optional<Error> failed_;
};

}  // namespace

struct GroupReplicator::Impl {
  explicit Impl(uint32_t threads) : pool(threads) {}
  asio::thread_pool pool;  // payload writes, syncs, verification, fetch service
  std::unique_ptr<RpcTransport> transport;
  std::atomic<bool> stopping{false};
  std::atomic<bool> installing{false};  // a snapshot install runs: pushes are refused
  std::set<SlotKey> unverified;         // node thread: slices fetched newer than their entry
  SyncBatcher batcher;  // slice writes (leader and pushes)

  // Slices this member holds outside the applied state: on the leader, pushed slices until every
  // follower confirmed them (with their bytes, for fetches); on a follower, pushed slices that
  // are durable here but whose WRITE_SLOT is not applied yet.
  struct Held {
    uint64_t checksum = 0;
    uint32_t len = 0;
    std::shared_ptr<const AlignedBuffer> bytes;  // leader: until confirmed by all
    bool durable = false;
    size_t confirmed = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex held_mu;
  std::map<SlotKey, Held> held;
  // Slot -> the newest gen whose bytes the data path (leader write, push, fetch) put there and
  // whose WRITE_SLOT is not applied yet. Bytes of an older gen must never land on them: that gen
  // was deleted in the committed history (the slot could not be reserved again otherwise), and
  // the newer bytes may be all this member holds of a slice it acknowledged. Under held_mu.
  std::map<uint32_t, uint32_t> bytes_gen;

  WriteGate gate;  // leader: admission of mutations

  // Data-path clients, on the network thread only.
  std::map<NodeId, std::shared_ptr<proto::RpcClient>> clients;

  // Apply state, on the Raft node's thread only.
  Result<SlotMeta> last_result = SlotMeta{};
  std::set<uint32_t> dirty;  // slots whose header changed since the last store sync
  bool all_dirty = false;

  Counter* pushes = nullptr;
  Counter* fetches = nullptr;
  Counter* syncs = nullptr;
};

Result<std::unique_ptr<GroupReplicator>> open_group_replicator(SliceStore& store, GroupOptions opt,
                                                               asio::io_context& net, Metrics* metrics) {
  if (!opt.members.count(opt.self))
    return make_error(Code::BAD_REQUEST, fmt::format("member {} is not in the group's member list", opt.self));
  std::unique_ptr<GroupReplicator> r(new GroupReplicator(store, std::move(opt), net, metrics));
  MYDFS_TRY(r->open());
  return r;
}

GroupReplicator::GroupReplicator(SliceStore& store, GroupOptions opt, asio::io_context& net, Metrics* m)
    : store_(store), sm_(store), opt_(std::move(opt)), net_(net), impl_(std::make_unique<Impl>(opt_.io_threads)) {
  impl_->pushes = m->counter("mydfs_group_slice_pushes_total", "", "Slices pushed to followers");
  impl_->fetches = m->counter("mydfs_group_slice_fetches_total", "", "Slices this member fetched from a peer");
  impl_->syncs = m->counter("mydfs_group_store_syncs_total", "", "Store syncs by the group replicator");
  m->gauge_fn("mydfs_storage_applied_index", "Log index of the last applied command",
              [this] { return static_cast<double>(applied_.load()); });
  m->gauge_fn("mydfs_raft_term", "Raft term", [this] { return node_ ? static_cast<double>(node_->info().term) : 0.0; });
  m->gauge_fn("mydfs_raft_is_leader", "1 if this member leads its group",
              [this] { return node_ && node_->info().role == Role::LEADER ? 1.0 : 0.0; });
  m->gauge_fn("mydfs_raft_commit_index", "Raft commit index",
              [this] { return node_ ? static_cast<double>(node_->info().commit) : 0.0; });
}

GroupReplicator::~GroupReplicator() { stop(); }

Status GroupReplicator::open() {
  std::error_code ec;
  std::filesystem::create_directories(opt_.dir + "/staged", ec);
  if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot create {}/staged: {}", opt_.dir, ec.message()));
  MYDFS_TRY(sm_.load_decisions(opt_.dir));
  uint64_t checkpoint = store_.superblock().checkpoint_index;
  applied_ = checkpoint;

  // The address book: --members, then what configuration changes taught this member since.
  members_ = opt_.members;
  if (auto saved = read_members(); saved.ok()) {
    for (auto& [id, addr] : *saved) members_[id] = addr;
  } else if (saved.code() != Code::NOT_FOUND) {
    return saved.take_error();
  }
  std::map<NodeId, std::string> peers;
  for (auto& [id, addr] : members_)
    if (id != opt_.self) peers[id] = addr;
  impl_->transport = std::make_unique<RpcTransport>(net_, opt_.group, peers);

  NodeOptions no;
  no.raft.id = opt_.self;
  no.raft.election_ticks = opt_.election_ticks;
  no.raft.heartbeat_ticks = 1;
  no.raft.seed = std::random_device{}();
  no.raft.max_bytes_per_msg = 1u << 20;
  no.dir = opt_.dir;
  // A member that joins an existing group starts with no configuration: it never campaigns and
  // learns the group's configuration from the leader (a snapshot, then the log).
  if (!opt_.join)
    for (auto& [id, addr] : opt_.members) no.bootstrap.voters.push_back(id);
  no.applied = checkpoint;
  no.tick = opt_.tick;
  no.compact_after = opt_.compact_after;
  no.before_persist = [this](const std::vector<Entry>& entries) { return before_persist(entries); };
  no.before_compact = [this](uint64_t index) { return checkpoint_at(index); };
  no.install_snapshot = [this](const SnapshotMeta& meta) { return install_snapshot(meta); };
  no.on_conf = [this](const raft::ConfChange& cc) { learn_member(cc); };
  MYDFS_ASSIGN(node_, RaftNode::open(std::move(no), *impl_->transport, [this](const Entry& e) { apply(e); }));
  replay_through_ = node_->last_index_at_open();
  return ok_status();
}

void GroupReplicator::start() { node_->start(); }

void GroupReplicator::stop() {
  if (impl_->stopping.exchange(true)) return;
  if (node_) node_->stop();
  impl_->pool.join();
  // The node's thread has ended: applied_ is final and the store holds everything up to it.
  Status st = checkpoint_at(applied_.load());
  if (!st.ok()) spdlog::error("checkpoint at stop failed: {}", st.error().to_string());
}

Replicator::RoleInfo GroupReplicator::role_info() const {
  auto inf = node_->info();
  RoleInfo r;
  switch (inf.role) {
    case Role::LEADER: r.role = "leader"; break;
    case Role::FOLLOWER: r.role = "follower"; break;
    default: r.role = "candidate"; break;
  }
  r.term = inf.term;
  r.commit = inf.commit;
  r.leader = address_of(inf.leader);
  return r;
}

Error GroupReplicator::not_leader() const {
  auto ri = role_info();
  Error e = make_error(Code::NOT_LEADER, ri.leader.empty()
                                             ? fmt::format("member {} of group {} does not lead it; no leader is known yet",
                                                           opt_.self, opt_.group)
                                             : fmt::format("member {} of group {} does not lead it; {} does",
                                                           opt_.self, opt_.group, ri.leader));
  e.hint = ri.leader;
  return e;
}

// Proposes one command and returns the result of applying it here.
asio::awaitable<Result<SlotMeta>> GroupReplicator::propose(const Command& cmd, std::span<const std::byte> data) {
  std::string body = encode_entry(cmd, data);
  co_return co_await await_completion<Result<SlotMeta>>([&](auto done) {
    node_->propose(std::move(body), [this, done](Result<uint64_t> idx) mutable {
      // Called on the node's thread right after the entry was applied: last_result is its result.
      if (!idx.ok()) {
        Error e = idx.take_error();
        if (e.code == Code::NOT_LEADER) e = not_leader();
        done(Result<SlotMeta>(std::move(e)));
      } else {
        done(std::move(impl_->last_result));
      }
    });
  });
}

asio::awaitable<Status> GroupReplicator::read_barrier() {
  Status st = co_await await_completion<Status>([&](auto done) { node_->read_barrier(done); });
  if (!st.ok() && st.code() == Code::NOT_LEADER) co_return not_leader();
  co_return st;
}

asio::awaitable<Status> GroupReplicator::transfer(NodeId to) {
  co_return co_await await_completion<Status>([&](auto done) { node_->transfer_leadership(to, done); });
}

asio::awaitable<Result<SlotMeta>> GroupReplicator::submit(Command cmd, AlignedBuffer data) {
  if (impl_->stopping) co_return make_error(Code::UNAVAILABLE, "shutting down");
  if (node_->info().role != Role::LEADER) co_return not_leader();
  if (cmd.type == CmdType::RESERVE) {
    // Allocation reads the applied state: it must include everything earlier leaders committed.
    MYDFS_CO_TRY(co_await read_barrier());
    auto loc = store_.allocate();
    if (!loc.ok()) co_return loc.take_error();
    cmd.loc = *loc;
    auto res = co_await propose(cmd, {});
    if (!res.ok()) store_.release(*loc);
    co_return res;
  }
  MYDFS_CO_ASSIGN(auto answered, impl_->gate.enter(sm_, cmd, data.size()));
  if (answered) co_return *answered;
  if (cmd.type == CmdType::PATCH || cmd.type == CmdType::SET_VALID_LEN) {
    uint32_t slot = cmd.loc.slot;
    Status v = co_await run_on(impl_->pool, [&] { return store_.verify(slot); });
    if (!v.ok()) co_return v.take_error();
  }
  if (cmd.type != CmdType::WRITE_SLOT) co_return co_await propose(cmd, data.span());

  uint32_t slot = cmd.loc.slot;
  Status st = co_await replicate_slice(cmd, std::move(data));
  Result<SlotMeta> res;
  if (st.ok()) res = co_await propose(cmd, {});
  else res = st.take_error();
  impl_->gate.leave(slot);
  co_return res;
}

// WRITE_SLOT on the leader: the slice into the local slot and to every follower at once; returns
// once it is durable on a majority of the group.
asio::awaitable<Status> GroupReplicator::replicate_slice(const Command& cmd, AlignedBuffer data) {
  if (is_hole(cmd, data.size())) {
    // A slice of zeros: every member makes it by emptying the slot (has_slice, apply); nothing
    // travels. The emptying is made durable like a slice's bytes.
    co_return co_await run_on(impl_->pool, [&]() -> Status {
      {
        std::unique_lock lk(store_.locks().of(cmd.loc.slot));
        if (newer_bytes(cmd.loc)) return not_leader();
        MYDFS_TRY(store_.clear_payload(cmd.loc.slot));
        wrote_bytes(cmd.loc);
      }
      return impl_->batcher.sync(store_, impl_->syncs);
    });
  }
  if (data.size() != cmd.len) co_return make_error(Code::BAD_REQUEST, "slice length differs from the command's");
  if (xxh64(data.span()) != cmd.checksum)
    co_return make_error(Code::CHECKSUM_MISMATCH, "slice bytes do not match their checksum");
  auto bytes = std::make_shared<const AlignedBuffer>(std::move(data));
  SlotKey key{cmd.loc.slot, cmd.loc.gen};
  {
    std::lock_guard g(impl_->held_mu);
    auto now = std::chrono::steady_clock::now();
    impl_->held[key] = Impl::Held{cmd.checksum, cmd.len, bytes, false, 0, now};
    prune_registry(now);
  }
  // Pushes: each follower's answer counts toward the majority; the rest go on in the background.
  // The wait state is touched on the network thread only (this coroutine runs there too).
  struct Wait {
    size_t acked = 0, failed = 0;
    std::optional<bool> result;
    std::function<void(bool)> done;
    void decide(bool ok) {
      if (result) return;
      result = ok;
      if (done) done(ok);
    }
  };
  // The voters of the configuration in this member's log (a removed member gets nothing more).
  std::vector<NodeId> voters = node_->info().voters;
  if (voters.empty()) co_return not_leader();
  size_t peers = voters.size() - 1;
  size_t need = voters.size() / 2;  // followers needed besides this member
  auto w = std::make_shared<Wait>();
  if (need == 0) w->decide(true);
  for (NodeId id : voters) {
    if (id == opt_.self) continue;
    asio::co_spawn(net_, push_to(id, cmd, bytes), [this, w, key, peers, need](std::exception_ptr, Status s) {
      if (s.ok()) {
        ++w->acked;
        std::lock_guard g(impl_->held_mu);
        auto it = impl_->held.find(key);
        if (it != impl_->held.end() && ++it->second.confirmed >= peers) it->second.bytes.reset();
      } else {
        ++w->failed;
        spdlog::debug("push of {} to a follower failed: {}", key.first, s.error().to_string());
      }
      if (w->acked >= need) w->decide(true);
      else if (w->failed > peers - need) w->decide(false);
    });
  }
  // The local write runs while the pushes travel.
  Status local = co_await run_on(impl_->pool, [&]() -> Status {
    {
      std::unique_lock lk(store_.locks().of(cmd.loc.slot));
      if (newer_bytes(cmd.loc)) return not_leader();  // the group moved past this slot without us
      MYDFS_TRY(store_.write_slice(cmd.loc.slot, bytes->span()));
      wrote_bytes(cmd.loc);
    }
    return impl_->batcher.sync(store_, impl_->syncs);
  });
  if (!local.ok()) co_return local;
  {
    std::lock_guard g(impl_->held_mu);
    if (auto it = impl_->held.find(key); it != impl_->held.end()) it->second.durable = true;
  }
  bool enough = co_await await_completion<bool>([&](auto done) {
    asio::post(net_, [w, done]() mutable {
      if (w->result) done(*w->result);
      else w->done = done;
    });
  });
  if (!enough)
    co_return make_error(Code::UNAVAILABLE, fmt::format("the slice for {} reached too few members of group {}",
                                                        cmd.loc, opt_.group));
  co_return ok_status();
}

asio::awaitable<Status> GroupReplicator::push_to(NodeId id, Command cmd, std::shared_ptr<const AlignedBuffer> bytes) {
  auto c = data_client(id);
  if (!c.ok()) co_return c.take_error();
  auto client = *c;
  proto::SlicePushReq req{opt_.group, cmd.loc, cmd.checksum};
  impl_->pushes->inc();
  auto r = co_await client->call(req, proto::Bulk::of(bytes));
  if (!r.ok()) co_return r.take_error();
  co_return ok_status();
}

// May this member write (slot, gen)'s bytes into the slot now? Only if nothing it still holds
// lives there: the slot is reserved for exactly this gen and not written, or it is free or
// deleted at an older gen (a committed delete freed it; nothing reads it any more).
bool GroupReplicator::may_write(const Location& loc) const {
  if (newer_bytes(loc)) return false;
  auto m = store_.meta(loc.slot);
  if (!m.ok()) return false;
  if (m->loc.gen == loc.gen) return m->state == SlotState::PREPARED && m->valid_len == 0;
  if (m->loc.gen > loc.gen) return false;
  return m->state == SlotState::FREE || m->state == SlotState::DELETED;
}

// SLICE_PUSH on a follower: store the bytes and make them durable before answering.
asio::awaitable<Result<proto::SlicePushResp>> GroupReplicator::on_push(proto::SlicePushReq req, AlignedBuffer bulk) {
  if (req.group != opt_.group) co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}", opt_.group));
  if (impl_->installing) co_return make_error(Code::UNAVAILABLE, "this member is being rebuilt");
  auto bytes = std::make_shared<const AlignedBuffer>(std::move(bulk));
  Status st = co_await run_on(impl_->pool, [&]() -> Status {
    if (xxh64(bytes->span()) != req.checksum)
      return make_error(Code::CHECKSUM_MISMATCH, "pushed slice does not match its checksum");
    {
      // Under the slot's lock, as apply and a rebuild write it: the check and the write are one step.
      std::unique_lock lk(store_.locks().of(req.loc.slot));
      if (impl_->installing) return make_error(Code::UNAVAILABLE, "this member is being rebuilt");
      if (newer_bytes(req.loc))
        return make_error(Code::NOT_LEADER, fmt::format("{} is obsolete: a newer slice is in its slot here", req.loc));
      if (!may_write(req.loc))
        return make_error(Code::UNAVAILABLE, fmt::format("{} is still in use here; fetched when its entry arrives", req.loc));
      MYDFS_TRY(store_.write_slice(req.loc.slot, bytes->span()));
      wrote_bytes(req.loc);
    }
    return impl_->batcher.sync(store_, impl_->syncs);
  });
  if (!st.ok()) co_return st.take_error();
  std::lock_guard g(impl_->held_mu);
  auto now = std::chrono::steady_clock::now();
  impl_->held[{req.loc.slot, req.loc.gen}] =
      Impl::Held{req.checksum, static_cast<uint32_t>(bytes->size()), nullptr, true, 0, now};
  prune_registry(now);
  co_return proto::SlicePushResp{};
}

// SLICE_FETCH: the bytes a WRITE_SLOT entry wrote, or "obsolete" if the slot moved on. The bytes
// may be newer than the entry (later PATCHes applied here); the asker then applies those same
// patches on top, which leaves the bytes as they are.
Result<std::pair<proto::SliceFetchResp, AlignedBuffer>> GroupReplicator::serve_fetch(const proto::SliceFetchReq& req) {
  Location loc = req.loc;
  std::shared_lock lk(store_.locks().of(loc.slot));
  MYDFS_ASSIGN(SlotMeta m, store_.meta(loc.slot));
  // Obsolete first: the registry may still hold the bytes of a slice whose slot moved on since.
  if (m.loc.gen > loc.gen || (m.loc.gen == loc.gen && (m.state == SlotState::DELETED || m.state == SlotState::REDIRECT)))
    return std::pair{proto::SliceFetchResp{true, m.applied_index}, AlignedBuffer{}};
  if (newer_bytes(loc)) return std::pair{proto::SliceFetchResp{true, m.applied_index}, AlignedBuffer{}};
  {
    std::lock_guard g(impl_->held_mu);
    auto it = impl_->held.find({loc.slot, loc.gen});
    if (it != impl_->held.end() && it->second.bytes && it->second.checksum == req.checksum)
      return std::pair{proto::SliceFetchResp{false, 0}, AlignedBuffer::copy_of(it->second.bytes->span())};
  }
  if (m.loc.gen < loc.gen || m.state == SlotState::FREE)
    return make_error(Code::NOT_FOUND, fmt::format("{} is not here yet", loc));
  if (m.valid_len == 0) {  // reserved, not applied here: the bytes may have been pushed
    AlignedBuffer b(req.len);
    MYDFS_TRY(store_.read_payload(loc.slot, 0, b.span()));
    if (xxh64(b.span()) != req.checksum) return make_error(Code::NOT_FOUND, fmt::format("{} has no bytes here", loc));
    return std::pair{proto::SliceFetchResp{false, 0}, std::move(b)};
  }
  AlignedBuffer b(m.valid_len);
  MYDFS_TRY(store_.read_payload(loc.slot, 0, b.span()));
  if (xxh64(b.span()) != m.payload_checksum)
    return make_error(Code::CHECKSUM_MISMATCH, fmt::format("{} is damaged here", loc));
  return std::pair{proto::SliceFetchResp{false, m.applied_index}, std::move(b)};
}

bool GroupReplicator::newer_bytes(const Location& loc) const {
  std::lock_guard g(impl_->held_mu);
  auto it = impl_->bytes_gen.find(loc.slot);
  return it != impl_->bytes_gen.end() && it->second > loc.gen;
}

void GroupReplicator::wrote_bytes(const Location& loc) {
  std::lock_guard g(impl_->held_mu);
  auto& gen = impl_->bytes_gen[loc.slot];
  gen = std::max(gen, loc.gen);
}

void GroupReplicator::prune_registry(std::chrono::steady_clock::time_point now) {
  std::vector<std::pair<std::chrono::steady_clock::time_point, SlotKey>> with_bytes;
  uint64_t bytes = 0;
  for (auto it = impl_->held.begin(); it != impl_->held.end();) {
    if (now - it->second.at > opt_.registry_ttl) {
      it = impl_->held.erase(it);  // a record older than this is looked up in the slot instead
      continue;
    }
    if (it->second.bytes) {
      bytes += it->second.bytes->size();
      with_bytes.emplace_back(it->second.at, it->first);
    }
    ++it;
  }
  if (bytes <= opt_.registry_bytes) return;
  std::sort(with_bytes.begin(), with_bytes.end());
  for (const auto& [at, key] : with_bytes) {
    if (bytes <= opt_.registry_bytes) break;
    auto& h = impl_->held[key];
    bytes -= h.bytes->size();
    h.bytes.reset();  // a fetch of it is served from the store from now on
  }
}

Result<AlignedBuffer> GroupReplicator::read_staged(const std::string& path) const {
  MYDFS_ASSIGN(auto f, File::open(path, O_RDONLY));
  MYDFS_ASSIGN(uint64_t n, f->size());
  AlignedBuffer b(n);
  MYDFS_TRY(f->pread_all(0, b.span()));
  return b;
}

std::string GroupReplicator::staged_path(const Command& cmd) const {
  return fmt::format("{}/staged/{}-{}-{:016x}", opt_.dir, cmd.loc.slot, cmd.loc.gen, cmd.checksum);
}

// On the node's thread, before entries are persisted: every WRITE_SLOT among them must name
// bytes durable here.
bool GroupReplicator::before_persist(const std::vector<Entry>& entries) {
  bool wrote = false;
  for (const auto& e : entries) {
    if (e.type != EntryType::NORMAL) continue;
    Command cmd;
    std::string_view data;
    if (!decode_entry(e.data, cmd, data) || cmd.type != CmdType::WRITE_SLOT) continue;
    if (has_slice(cmd, &wrote)) continue;
    bool got = false;
    for (int attempt = 0; !impl_->stopping; ++attempt) {
      Status st = fetch_slice(cmd, e.index);
      if (st.ok()) {
        wrote = got = true;
        break;
      }
      if (attempt % 10 == 0)
        spdlog::warn("group {}: entry {} names {} whose bytes are not here yet: {}", opt_.group, e.index, cmd.loc,
                     st.error().to_string());
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 50 << std::min(attempt, 4))));
    }
    if (!got) return false;  // stopping without the bytes: persist nothing
  }
  if (wrote) {
    impl_->syncs->inc();
    Status st = store_.sync();
    if (!st.ok()) {
      spdlog::critical("group {}: cannot sync fetched slices, stopping: {}", opt_.group, st.error().to_string());
      std::_Exit(70);
    }
  }
  return true;
}

// *sync: set when the bytes were found in the slot, where they may not be durable yet (a push
// still syncing them, or a write before a crash that the page cache kept).
bool GroupReplicator::has_slice(const Command& cmd, bool* sync) {
  if (newer_bytes(cmd.loc)) return true;  // obsolete: a later slice of the slot is here already
  // A hole: an empty payload reads as its zeros (the leader sends none; apply empties the slot).
  if (is_hole(cmd, 0)) return true;
  {
    std::lock_guard g(impl_->held_mu);
    auto it = impl_->held.find({cmd.loc.slot, cmd.loc.gen});
    if (it != impl_->held.end() && it->second.durable && it->second.checksum == cmd.checksum) return true;
  }
  auto m = store_.meta(cmd.loc.slot);
  if (!m.ok()) return false;
  if (m->loc.gen > cmd.loc.gen) return true;  // the slot moved on: these bytes are needed no more
  if (m->loc.gen == cmd.loc.gen && !(m->state == SlotState::PREPARED && m->valid_len == 0))
    return true;  // applied here already (an entry sent again)
  if (std::filesystem::exists(staged_path(cmd))) return true;
  // Pushed before a restart (durable, but the registry is memory): check the bytes.
  if (m->loc.gen == cmd.loc.gen || may_write(cmd.loc)) {
    auto sum = store_.checksum_payload(cmd.loc.slot, cmd.len);
    if (sum.ok() && *sum == cmd.checksum && m->loc.gen == cmd.loc.gen) {
      *sync = true;
      return true;
    }
  }
  return false;
}

std::vector<NodeId> GroupReplicator::peers_leader_first() const {
  std::vector<NodeId> order;
  NodeId leader = node_->info().leader;
  if (leader && leader != opt_.self) order.push_back(leader);
  std::lock_guard g(members_mu_);
  for (auto& [id, addr] : members_)
    if (id != opt_.self && id != leader) order.push_back(id);
  return order;
}

std::string GroupReplicator::address_of(NodeId id) const {
  std::lock_guard g(members_mu_);
  auto it = members_.find(id);
  return it == members_.end() ? std::string() : it->second;
}

// The node's thread: a configuration change is about to enter this member's log.
void GroupReplicator::learn_member(const raft::ConfChange& cc) {
  if (cc.kind != raft::ConfChange::Kind::ADD || cc.context.empty() || cc.node == opt_.self) return;
  {
    std::lock_guard g(members_mu_);
    auto it = members_.find(cc.node);
    if (it != members_.end() && it->second == cc.context) return;
    members_[cc.node] = cc.context;
  }
  impl_->transport->set_peer(cc.node, cc.context);
  asio::post(net_, [this, id = cc.node] { impl_->clients.erase(id); });  // reconnect to the new address
  Status st = save_members();
  if (!st.ok()) spdlog::error("group {}: cannot save the member list: {}", opt_.group, st.error().to_string());
  spdlog::info("group {}: member {} is at {}", opt_.group, cc.node, cc.context);
}

// DIR/members: "ID=HOST:PORT" lines, the address book as configuration changes left it.
Result<std::map<NodeId, std::string>> GroupReplicator::read_members() const {
  std::string path = opt_.dir + "/members";
  if (!std::filesystem::exists(path)) return make_error(Code::NOT_FOUND, "no member list");
  std::ifstream f(path);
  std::map<NodeId, std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    auto eq = line.find('=');
    uint64_t id = 0;
    if (eq == std::string::npos || std::from_chars(line.data(), line.data() + eq, id).ptr != line.data() + eq || id == 0)
      return make_error(Code::CORRUPT, fmt::format("{}: bad line '{}'", path, line));
    out[id] = line.substr(eq + 1);
  }
  return out;
}

Status GroupReplicator::save_members() const {
  std::string text;
  {
    std::lock_guard g(members_mu_);
    for (auto& [id, addr] : members_) text += fmt::format("{}={}\n", id, addr);
  }
  return write_file_atomic(opt_.dir + "/members", as_bytes(std::span(text.data(), text.size())));
}

asio::awaitable<Result<uint64_t>> GroupReplicator::change_members(raft::ConfChange cc) {
  if (node_->info().role != Role::LEADER) co_return not_leader();
  if (cc.kind == raft::ConfChange::Kind::ADD) {
    if (cc.context.empty()) co_return make_error(Code::BAD_REQUEST, "an added member needs its address");
    if (auto hp = parse_host_port(cc.context); !hp.ok()) co_return hp.take_error();
    learn_member(cc);  // the leader sends to it as soon as the change is in its log
  }
  co_return co_await await_completion<Result<uint64_t>>([&](auto done) { node_->propose_conf(cc, done); });
}

Status GroupReplicator::fetch_slice(const Command& cmd, uint64_t index) {
  // The leader first (it holds recent slices in memory), then the others.
  std::vector<NodeId> order = peers_leader_first();
  Error last = make_error(Code::UNAVAILABLE, "no other member");
  for (NodeId id : order) {
    auto r = call_peer(id, proto::SliceFetchReq{opt_.group, cmd.loc, cmd.len, cmd.checksum});
    if (!r.ok()) {
      last = r.take_error();
      continue;
    }
    auto& [resp, bytes] = *r;
    impl_->fetches->inc();
    if (resp.obsolete) return ok_status();
    bool exact = xxh64(bytes.span()) == cmd.checksum;
    if (!exact && resp.applied <= index) {
      last = make_error(Code::CHECKSUM_MISMATCH, fmt::format("member {} sent other bytes for {}", id, cmd.loc));
      continue;
    }
    // Newer bytes: until the later patches are applied here too, they differ from the header.
    if (!exact) impl_->unverified.insert({cmd.loc.slot, cmd.loc.gen});
    {
      std::unique_lock lk(store_.locks().of(cmd.loc.slot));
      if (newer_bytes(cmd.loc)) return ok_status();  // obsolete meanwhile: a later slice was pushed
      if (may_write(cmd.loc)) {
        MYDFS_TRY(store_.write_slice(cmd.loc.slot, bytes.span()));
        wrote_bytes(cmd.loc);
        return ok_status();
      }
    }
    // The slot still holds an older slice this member has not seen deleted yet: keep the bytes
    // beside it until the entry is applied.
    return write_file_atomic(staged_path(cmd), bytes.span());
  }
  return last;
}

// On the node's thread, in log order.
void GroupReplicator::apply(const Entry& e) {
  Command cmd;
  std::string_view data;
  if (!decode_entry(e.data, cmd, data)) {
    spdlog::critical("group {}: entry {} does not decode; stopping", opt_.group, e.index);
    std::_Exit(70);
  }
  bool tx = cmd.type == CmdType::TX_DECIDE || cmd.type == CmdType::TX_FINISH || cmd.type == CmdType::TX_FORGET;
  // Two header writes to one slot must not both be in flight: each goes to the other of its two
  // copies, and a crash may tear an unsynced one. Sync between them.
  if (impl_->all_dirty || (tx && !impl_->dirty.empty()) || impl_->dirty.count(cmd.loc.slot)) {
    impl_->syncs->inc();
    Status st = store_.sync();
    if (!st.ok()) {
      spdlog::critical("group {}: store sync failed, stopping: {}", opt_.group, st.error().to_string());
      std::_Exit(70);
    }
    impl_->dirty.clear();
    impl_->all_dirty = false;
  }
  if (cmd.type == CmdType::WRITE_SLOT) {
    std::string staged = staged_path(cmd);
    if (std::filesystem::exists(staged)) {
      // may_write is false only if a later slice of the slot is here: these bytes are obsolete.
      std::unique_lock lk(store_.locks().of(cmd.loc.slot));
      if (may_write(cmd.loc)) {
        auto bytes = read_staged(staged);
        Status st = bytes.ok() ? store_.write_slice(cmd.loc.slot, bytes->span()) : Status(bytes.take_error());
        if (st.ok()) st = store_.sync();
        if (!st.ok()) {
          spdlog::critical("group {}: cannot move staged {} into its slot, stopping: {}", opt_.group, cmd.loc,
                           st.error().to_string());
          std::_Exit(70);
        }
      }
      std::error_code ec;
      std::filesystem::remove(staged, ec);
    }
  }
  // Entries up to the log's end at open may have been applied, wholly or in part, before a crash:
  // patches are redone without first checking the old bytes (a torn earlier attempt may be in
  // them), and a slice written again is checked against its header before it is next served.
  if (is_hole(cmd, 0) && !store_.payload_empty(cmd.loc.slot)) {
    // A hole (found in place by has_slice, maybe before older bytes were written here): empty it.
    std::unique_lock lk(store_.locks().of(cmd.loc.slot));
    if (may_write(cmd.loc)) {
      Status st = store_.clear_payload(cmd.loc.slot);
      if (st.ok()) st = store_.sync();  // durable before the header says "zeros"
      if (!st.ok()) {
        spdlog::critical("group {}: cannot empty {} for a hole, stopping: {}", opt_.group, cmd.loc, st.error().to_string());
        std::_Exit(70);
      }
    }
  }
  bool replayed = e.index <= replay_through_;
  auto res = sm_.apply(e.index, cmd, as_bytes(data), replayed && cmd.type != CmdType::WRITE_SLOT);
  if (cmd.type == CmdType::WRITE_SLOT &&
      (replayed || impl_->unverified.erase({cmd.loc.slot, cmd.loc.gen})))
    store_.forget_verified(cmd.loc.slot);
  if (!res.ok() && (res.code() == Code::IO_ERROR || res.code() == Code::NO_SPACE)) {
    // Fail-stop: the entry is in the log; the next start applies it again.
    spdlog::critical("group {}: apply of entry {} failed, stopping: {}", opt_.group, e.index, res.error().to_string());
    std::_Exit(70);
  }
  if (tx) impl_->all_dirty = true;
  else impl_->dirty.insert(cmd.loc.slot);
  if (cmd.type == CmdType::WRITE_SLOT) {
    std::lock_guard g(impl_->held_mu);
    auto it = impl_->held.find({cmd.loc.slot, cmd.loc.gen});
    if (it != impl_->held.end() && !it->second.bytes) impl_->held.erase(it);
    // The header now speaks for these bytes; a newer gen's bytes stay guarded until theirs.
    auto b = impl_->bytes_gen.find(cmd.loc.slot);
    if (b != impl_->bytes_gen.end() && b->second <= cmd.loc.gen) impl_->bytes_gen.erase(b);
  }
  applied_ = e.index;
  impl_->last_result = std::move(res);
}

Status GroupReplicator::checkpoint_at(uint64_t index) {
  // The decision table first (see the single-node replicator), then the store's superblock.
  MYDFS_TRY(sm_.save_decisions(opt_.dir));
  MYDFS_TRY(store_.checkpoint(index));
  impl_->dirty.clear();
  impl_->all_dirty = false;
  return ok_status();
}

// The node's thread, for a snapshot the leader sent: this member is behind the compacted log (or
// lost its disk). Copies the state of a member that has applied at least meta.index, slot by slot
// while that member goes on; the entries after meta.index are then applied on top, and apply
// skips what a slot already holds (its applied_index), so the copy need not be one instant.
Status GroupReplicator::install_snapshot(const SnapshotMeta& meta) {
  impl_->installing = true;
  struct Done {
    Impl* impl;
    ~Done() { impl->installing = false; }
  } done{impl_.get()};
  {
    std::lock_guard g(impl_->held_mu);
    impl_->held.clear();
    impl_->bytes_gen.clear();  // every slot is copied as its owner holds it
  }
  std::vector<NodeId> order = peers_leader_first();
  Error last = make_error(Code::UNAVAILABLE, "no other member");
  for (NodeId id : order) {
    auto begin = call_peer(id, proto::SnapshotBeginReq{opt_.group});
    if (!begin.ok()) {
      last = begin.take_error();
      continue;
    }
    if (begin->first.applied < meta.index) {
      last = make_error(Code::UNAVAILABLE, fmt::format("member {} has applied only {}", id, begin->first.applied));
      continue;
    }
    spdlog::info("group {}: rebuilding from member {} (snapshot at {}, {} slots)", opt_.group, id, meta.index,
                 begin->first.high_water - 1);
    std::map<uint64_t, proto::TxDecision> decisions;
    for (auto& [t, d] : begin->first.decisions) decisions[t] = static_cast<proto::TxDecision>(d);
    sm_.set_decisions(std::move(decisions));
    Status st = ok_status();
    for (uint32_t slot = 1; slot < begin->first.high_water && st.ok() && !impl_->stopping; ++slot) {
      auto copy = call_peer(id, proto::SlotCopyReq{opt_.group, slot});
      if (!copy.ok()) {
        st = copy.take_error();
        break;
      }
      const SlotMeta& m = copy->first.meta;
      if (m.state == SlotState::FREE) continue;
      st = sm_.install(m, copy->second.span());
    }
    if (!st.ok()) {
      last = st.take_error();
      continue;
    }
    if (impl_->stopping) return make_error(Code::UNAVAILABLE, "shutting down");
    MYDFS_TRY(store_.sync());
    MYDFS_TRY(checkpoint_at(meta.index));
    applied_ = meta.index;
    spdlog::info("group {}: rebuilt up to at least index {}", opt_.group, meta.index);
    return ok_status();
  }
  return last;
}

template <typename Req>
Result<std::pair<typename Req::Response, AlignedBuffer>> GroupReplicator::call_peer(NodeId id, Req req) {
  auto fut = asio::co_spawn(
      net_,
      [this, id, req]() -> asio::awaitable<Result<std::pair<typename Req::Response, AlignedBuffer>>> {
        auto c = data_client(id);
        if (!c.ok()) co_return c.take_error();
        AlignedBuffer bulk;
        auto client = *c;
        auto r = co_await client->call(req, {}, &bulk);
        if (!r.ok()) co_return r.take_error();
        co_return std::pair{std::move(*r), std::move(bulk)};
      },
      asio::use_future);
  if (fut.wait_for(opt_.data_timeout + std::chrono::seconds(1)) != std::future_status::ready)
    return make_error(Code::TIMEOUT, fmt::format("member {} did not answer", id));
  return fut.get();
}

Result<std::shared_ptr<proto::RpcClient>> GroupReplicator::data_client(NodeId id) {
  auto& c = impl_->clients[id];
  if (!c) {
    auto hp = parse_host_port(address_of(id));
    if (!hp.ok()) return hp.take_error();
    proto::ClientOptions co;
    co.connect_timeout = std::chrono::milliseconds(500);
    co.call_timeout = opt_.data_timeout;
    c = std::make_shared<proto::RpcClient>(net_.get_executor(), hp->host, hp->port, co);
  }
  return c;
}

void GroupReplicator::register_routes(proto::RpcServer& server) {
  route_raft_messages(server, opt_.group, *node_);
  server.route<proto::SlicePushReq>([this](proto::SlicePushReq req, proto::Inbound& in, proto::Outbound&)
                                        -> asio::awaitable<Result<proto::SlicePushResp>> {
    co_return co_await on_push(req, std::move(in.bulk));
  });
  server.route<proto::SliceFetchReq>([this](proto::SliceFetchReq req, proto::Inbound&, proto::Outbound& out)
                                         -> asio::awaitable<Result<proto::SliceFetchResp>> {
    if (req.group != opt_.group)
      co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}", opt_.group));
    auto r = co_await run_on(impl_->pool, [&] { return serve_fetch(req); });
    if (!r.ok()) co_return r.take_error();
    out.bulk = std::move(r->second);
    co_return r->first;
  });
  server.route<proto::MemberChangeReq>([this](proto::MemberChangeReq req, proto::Inbound&, proto::Outbound&)
                                           -> asio::awaitable<Result<proto::MemberChangeResp>> {
    if (req.group != opt_.group)
      co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}", opt_.group));
    if (req.node == 0) co_return make_error(Code::BAD_REQUEST, "member id 0");
    raft::ConfChange cc;
    cc.kind = req.add ? raft::ConfChange::Kind::ADD : raft::ConfChange::Kind::REMOVE;
    cc.node = req.node;
    cc.context = req.address;
    MYDFS_CO_ASSIGN(uint64_t index, co_await change_members(cc));
    spdlog::info("group {}: member {} {} (configuration entry {})", opt_.group, req.node,
                 req.add ? fmt::format("added at {}", req.address) : std::string("removed"), index);
    co_return proto::MemberChangeResp{index};
  });
  server.route<proto::SnapshotBeginReq>([this](proto::SnapshotBeginReq req, proto::Inbound&, proto::Outbound&)
                                            -> asio::awaitable<Result<proto::SnapshotBeginResp>> {
    if (req.group != opt_.group)
      co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}", opt_.group));
    proto::SnapshotBeginResp resp;
    // Read first: the decisions and slots copied later are newer. The node's applied index counts
    // the entries that change nothing here too (no-ops, configuration changes).
    resp.applied = std::max(applied_.load(), node_->info().applied);
    resp.high_water = store_.high_water();
    for (auto& [t, d] : sm_.decisions()) resp.decisions.emplace_back(t, static_cast<uint8_t>(d));
    co_return resp;
  });
  server.route<proto::SlotCopyReq>([this](proto::SlotCopyReq req, proto::Inbound&, proto::Outbound& out)
                                       -> asio::awaitable<Result<proto::SlotCopyResp>> {
    if (req.group != opt_.group)
      co_return make_error(Code::NOT_FOUND, fmt::format("this node serves group {}", opt_.group));
    auto r = co_await run_on(impl_->pool, [&]() -> Result<std::pair<SlotMeta, AlignedBuffer>> {
      std::shared_lock lk(store_.locks().of(req.slot));
      MYDFS_ASSIGN(SlotMeta m, store_.meta(req.slot));
      AlignedBuffer b;
      bool data = m.state == SlotState::LIVE || m.state == SlotState::PREPARED || m.state == SlotState::REDIRECT;
      if (data && m.valid_len > 0) {
        b = AlignedBuffer(m.valid_len);
        MYDFS_TRY(store_.read_payload(req.slot, 0, b.span()));
        if (xxh64(b.span()) != m.payload_checksum)
          return make_error(Code::CHECKSUM_MISMATCH, fmt::format("slot {} is damaged here", req.slot));
      }
      return std::pair{m, std::move(b)};
    });
    if (!r.ok()) co_return r.take_error();
    out.bulk = std::move(r->second);
    co_return proto::SlotCopyResp{r->first};
  });
}

}  // namespace mydfs::storage
