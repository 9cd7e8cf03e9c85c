#include "storage/service.h"

#include <fcntl.h>

#include <shared_mutex>

#include "common/async.h"
#include "common/checksum.h"

namespace mydfs::storage {

namespace asio = boost::asio;
using namespace mydfs::proto;

constexpr int kReadAheadSlices = 3;  // slices of a chain read ahead behind a whole-slice read

StorageService::StorageService(SliceStore& store, Replicator& repl, MeteredPool& io_pool, uint32_t node_id)
    : store_(store), repl_(repl), io_pool_(io_pool), node_id_(node_id), recovery_(store, repl, io_pool) {}

asio::awaitable<Result<SlotMeta>> StorageService::mutate(Command cmd, AlignedBuffer data) {
  co_return co_await repl_.submit(std::move(cmd), std::move(data));
}

asio::awaitable<Result<SlotResp>> StorageService::slot_command(Command cmd, AlignedBuffer data) {
  MYDFS_CO_ASSIGN(SlotMeta m, co_await mutate(std::move(cmd), std::move(data)));
  co_return SlotResp{m};
}

asio::awaitable<Result<TxDecideResp>> StorageService::tx_command(Command cmd) {
  MYDFS_CO_ASSIGN(SlotMeta m, co_await mutate(std::move(cmd), {}));
  co_return tx_response(m);
}

void StorageService::register_routes(RpcServer& s) {
  register_mutations(s);
  register_transactions(s);
  register_reads(s);
}

void StorageService::register_mutations(RpcServer& s) {
  s.route<ReserveReq>([this](ReserveReq req, Inbound&, Outbound&) -> asio::awaitable<Result<ReserveResp>> {
    co_return co_await reserve(req);
  });
  s.route<WriteSlotReq>([this](WriteSlotReq req, Inbound& in, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    // A slice of zeros comes as its length: a hole (is_hole), made without its bytes.
    if (req.zeros && !in.bulk.empty()) co_return make_error(Code::BAD_REQUEST, "a slice of zeros comes without bytes");
    Command c = to_command(req, req.zeros ? req.zeros : in.bulk.size());
    if (req.zeros && !is_hole(c, 0))
      co_return make_error(Code::CHECKSUM_MISMATCH, "a slice of zeros with another checksum");
    co_return co_await slot_command(c, std::move(in.bulk));
  });
  s.route<PatchReq>([this](PatchReq req, Inbound& in, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req, in.bulk.size());
    if (xxh64(in.bulk.span()) != req.checksum)
      co_return make_error(Code::CHECKSUM_MISMATCH, "patch bytes do not match their checksum");
    co_return co_await slot_command(c, std::move(in.bulk));
  });
  s.route<SetNextReq>([this](SetNextReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req);
    co_return co_await slot_command(c, {});
  });
  s.route<SetValidLenReq>([this](SetValidLenReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req);
    co_return co_await slot_command(c, {});
  });
  s.route<RedirectReq>([this](RedirectReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req);
    co_return co_await slot_command(c, {});
  });
  s.route<DeleteReq>([this](DeleteReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req);
    co_return co_await slot_command(c, {});
  });
  s.route<LockReq>([this](LockReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    Command c = to_command(req);
    co_return co_await slot_command(c, {});
  });
}

asio::awaitable<Result<ReserveResp>> StorageService::reserve(const ReserveReq& req) {
  if (req.count == 0 || req.count > kMaxReserve)
    co_return make_error(Code::BAD_REQUEST, fmt::format("reserve count must be 1..{}", kMaxReserve));
  // Submit all at once so they share one group commit.
  struct State {
    std::vector<std::optional<Result<SlotMeta>>> results;
    size_t left;
  };
  auto st = std::make_shared<State>();
  st->results.resize(req.count);
  st->left = req.count;
  const Command c = to_command(req);
  auto ex = co_await asio::this_coro::executor;
  co_await await_completion<bool>([&](auto done) {
    for (uint32_t i = 0; i < req.count; ++i) {
      asio::co_spawn(ex, mutate(c, {}), [st, i, done](std::exception_ptr e, Result<SlotMeta> r) mutable {
        st->results[i] = e ? Result<SlotMeta>(make_error(Code::INTERNAL, "reserve threw")) : std::move(r);
        if (--st->left == 0) done(true);
      });
    }
  });
  ReserveResp resp;
  std::optional<Error> first_err;
  for (auto& r : st->results) {
    if (r->ok()) resp.slots.push_back((*r)->loc);
    else if (!first_err) first_err = r->error();
  }
  if (!first_err) co_return resp;
  // All or nothing: give back what was reserved.
  for (auto& l : resp.slots) {
    Command d = to_command(DeleteReq{l, 0});
    (void)co_await mutate(d, {});
  }
  co_return *first_err;
}

void StorageService::register_transactions(RpcServer& s) {
  s.route<TxDecideReq>([this](TxDecideReq req, Inbound&, Outbound&) -> asio::awaitable<Result<TxDecideResp>> {
    if (req.want == TxDecision::NONE) {
      MYDFS_CO_TRY(co_await repl_.read_barrier());
      TxDecideResp r;
      r.decision = repl_.state_machine().decision(req.txid);
      co_return r;
    }
    Command c = to_command(req);
    co_return co_await tx_command(c);
  });
  s.route<TxFinishReq>([this](TxFinishReq req, Inbound&, Outbound&) -> asio::awaitable<Result<TxDecideResp>> {
    Command c = to_command(req);
    co_return co_await tx_command(c);
  });
  s.route<TxForgetReq>([this](TxForgetReq req, Inbound&, Outbound&) -> asio::awaitable<Result<TxDecideResp>> {
    Command c = to_command(req);
    co_return co_await tx_command(c);
  });
}

void StorageService::register_reads(RpcServer& s) {
  s.route<PingReq>([this](PingReq, Inbound&, Outbound&) -> asio::awaitable<Result<PingResp>> {
    co_return PingResp{node_id_, store_.group()};
  });

  s.route<InfoReq>([this](InfoReq, Inbound&, Outbound&) -> asio::awaitable<Result<InfoResp>> {
    InfoResp r;
    r.node_id = node_id_;
    r.group_id = store_.group();
    r.capacity_slots = store_.slot_capacity();
    r.used_bytes = store_.used_bytes();
    r.free_bytes = store_.free_bytes();
    r.free_slots = store_.free_slots();
    r.used_slots = store_.used_slots();
    r.high_water = store_.high_water();
    r.applied_index = repl_.applied_index();
    r.tx_slots = repl_.state_machine().pending_slots();
    r.tx_decisions = static_cast<uint32_t>(repl_.state_machine().decision_count());
    co_return r;
  });

  s.route<ReadReq>([this](ReadReq req, Inbound&, Outbound& out) -> asio::awaitable<Result<ReadResp>> {
    co_return co_await read(req, out);
  });

  s.route<StatReq>([this](StatReq req, Inbound&, Outbound&) -> asio::awaitable<Result<SlotResp>> {
    MYDFS_CO_TRY(co_await repl_.read_barrier());
    if (req.loc.group != store_.group())
      co_return make_error(Code::NOT_FOUND, fmt::format("{} is not in group {}", req.loc, store_.group()));
    // Under the slot's lock: an edit being applied (its bytes written, its header not yet) is
    // waited for, so a reader whose bytes were torn by it sees the new applied_index here.
    uint32_t slot = req.loc.slot;
    auto settled = [&] {
      std::shared_lock lock(store_.locks().of(slot));
      return store_.meta(slot);
    };
    MYDFS_CO_ASSIGN(SlotMeta m, co_await run_on(io_pool_, settled));
    if (m.state == SlotState::FREE) co_return make_error(Code::NOT_FOUND, fmt::format("slot {} is not in use", req.loc));
    if (m.loc.gen != req.loc.gen)
      co_return make_error(Code::STALE, fmt::format("{} is stale: the slot is at gen {}", req.loc, m.loc.gen));
    co_return SlotResp{m};
  });

  s.route<WalkReq>([this](WalkReq req, Inbound&, Outbound&) -> asio::awaitable<Result<WalkResp>> {
    MYDFS_CO_TRY(co_await repl_.read_barrier());
    co_return walk(req.loc, std::min(req.max, kMaxWalk));
  });
}

WalkResp StorageService::walk(Location loc, uint32_t max) const {
  WalkResp w;
  while (w.slices.size() < max) {
    auto m = store_.resolve(loc);
    if (!m.ok() && m.code() == Code::REDIRECT) {
      auto moved = store_.meta(loc.slot);
      if (moved.ok()) w.slices.push_back(*moved);
      loc = m.error().target;
      if (loc.group != store_.group()) { w.leaves = loc; return w; }
      continue;
    }
    if (m.ok() && m->state != SlotState::LIVE)
      m = make_error(Code::NOT_FOUND, fmt::format("{} holds no committed data", loc));
    if (!m.ok()) {
      w.end_code = m.code();
      w.end_at = loc;
      return w;
    }
    w.slices.push_back(*m);
    Location next = m->next;
    if (next.null() || next.group != store_.group()) { w.leaves = next; return w; }
    loc = next;
  }
  w.leaves = loc;  // stopped at max: continue from here
  return w;
}

asio::awaitable<Result<ReadResp>> StorageService::read(const ReadReq& req, Outbound& out) {
  MYDFS_CO_TRY(co_await repl_.read_barrier());
  MYDFS_CO_ASSIGN(SlotMeta m, store_.resolve(req.loc));
  if (m.state != SlotState::LIVE)  // PREPARED slots are invisible until committed
    co_return make_error(Code::NOT_FOUND, fmt::format("{} holds no committed data", req.loc));
  if (req.offset > m.valid_len)
    co_return make_error(Code::BAD_REQUEST, fmt::format("read offset {} past valid_len {}", req.offset, m.valid_len));
  if (stats_ && stats_->hot(stats_->record_read(m)) && stats_->fits(m.valid_len)) {
    auto hot = co_await read_hot(req, m, out);
    if (hot) co_return std::move(*hot);
  }
  uint32_t len = std::min(req.len, m.valid_len - req.offset);
  ReadResp r;
  r.offset = req.offset;
  uint32_t slot = req.loc.slot;
  if (req.offset == 0 && len == m.valid_len && len > 0) {
    // Whole slice: straight from the store to the socket. The reader checks the bytes against
    // meta.payload_checksum, which also catches a patch that raced with the send.
    MYDFS_CO_TRY(co_await run_on(io_pool_, [&] { return store_.verify(slot); }));
    MYDFS_CO_ASSIGN(r.meta, store_.resolve(req.loc));
    if (r.meta.valid_len != len || r.meta.applied_index != m.applied_index)
      co_return make_error(Code::CONFLICT, fmt::format("{} changed during the read; retry", req.loc));
    PayloadFile pf = store_.payload_file(slot);
    if (pf.fd < 0) co_return make_error(Code::INTERNAL, "payload file unavailable");
    // sendfile runs on the network thread and would block it on a page-cache miss; pull the
    // range into the cache on the I/O pool first (several slices are read from disk at once).
    // A reader of a chain asks for the next slices soon after: start reading the next few from
    // disk now (posix_fadvise does not wait), so the disk works ahead of the network.
    Location next = r.meta.next;
    co_await run_on(io_pool_, [&] {
      int rc = ::readahead(pf.fd, static_cast<off64_t>(pf.offset), len);
      for (int k = 0; k < kReadAheadSlices && !next.null() && next.group == store_.group(); ++k) {
        auto nm = store_.meta(next.slot);
        PayloadFile nf = store_.payload_file(next.slot);
        if (!nm.ok() || nf.fd < 0 || nm->loc.gen != next.gen) break;
        ::posix_fadvise(nf.fd, static_cast<off_t>(nf.offset), nm->valid_len, POSIX_FADV_WILLNEED);
        next = nm->next;
      }
      return rc;
    });
    out.file = FileRange{pf.fd, static_cast<off_t>(pf.offset), len, pf.keep};
    r.whole = true;
    co_return r;
  }
  // A part of a slice: copied under the slot's lock, so it is never torn by a concurrent patch.
  AlignedBuffer buf(len);
  auto res = co_await run_on(io_pool_, [&]() -> Result<SlotMeta> {
    std::shared_lock lock(store_.locks().of(slot));
    MYDFS_TRY(store_.verify(slot));
    MYDFS_ASSIGN(SlotMeta now, store_.resolve(req.loc));
    if (req.offset + len > now.valid_len) return make_error(Code::CONFLICT, "slice shrank during the read; retry");
    MYDFS_TRY(store_.read_payload(slot, req.offset, buf.span()));
    return now;
  });
  MYDFS_CO_ASSIGN(r.meta, std::move(res));
  r.range_checksum = xxh64(buf.span());
  out.bulk = std::move(buf);
  co_return r;
}

asio::awaitable<std::optional<Result<ReadResp>>> StorageService::read_hot(const ReadReq& req, const SlotMeta& m,
                                                                        Outbound& out) {
  std::shared_ptr<const AlignedBuffer> bytes = stats_->lookup(m);
  SlotMeta meta = m;
  if (!bytes) {
    // Load the whole slice under the slot's lock and keep it only if it matches its header (the
    // check verify() would make; a mismatch falls back to the store path, which marks it corrupt).
    uint32_t slot = req.loc.slot;
    auto loaded = co_await run_on(io_pool_, [&]() -> Result<std::pair<SlotMeta, std::shared_ptr<AlignedBuffer>>> {
      std::shared_lock lock(store_.locks().of(slot));
      MYDFS_ASSIGN(SlotMeta now, store_.resolve(req.loc));
      auto buf = std::make_shared<AlignedBuffer>(now.valid_len);
      MYDFS_TRY(store_.read_payload(slot, 0, buf->span()));
      if (xxh64(buf->span()) != now.payload_checksum)
        return make_error(Code::CONFLICT, "slice bytes do not match the header yet");
      return std::make_pair(now, std::move(buf));
    });
    if (!loaded.ok() || loaded->first.state != SlotState::LIVE) co_return std::nullopt;
    meta = loaded->first;
    bytes = std::move(loaded->second);
    stats_->insert(meta, bytes);
  }
  if (req.offset > meta.valid_len) co_return std::nullopt;  // it shrank: the store path answers
  uint32_t len = std::min(req.len, meta.valid_len - req.offset);
  ReadResp r;
  r.offset = req.offset;
  r.meta = meta;
  // Sent straight from the cached buffer, which the reply holds until it is written.
  out.shared.bytes = bytes->span().subspan(req.offset, len);
  out.shared.owner = bytes;
  r.whole = req.offset == 0 && len == meta.valid_len && len > 0;
  if (!r.whole) r.range_checksum = xxh64(out.shared.bytes);
  co_return Result<ReadResp>(std::move(r));
}

}  // namespace mydfs::storage
