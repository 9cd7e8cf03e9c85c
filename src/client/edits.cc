// Edits of a file's content: append, write-at, splice, truncate (docs/ARCHITECTURE.md "Edits").
//
// Every edit runs the same loop: walk the chain, compute the change against what the walk saw,
// and commit it with commands that are conditional on that state (expect_applied). If any slice
// changed meanwhile the storage node answers CONFLICT (or STALE/REDIRECT/DELETED), and the loop
// walks again after a bounded, jittered backoff. A successful edit is then published to the
// tracker (size, mtime) with a compare-and-set on the inode's version, which also retires
// redirects the edit left behind.
#include <cstring>
#include <random>

#include "client/client.h"
#include "client/transaction.h"
#include "common/async.h"
#include "common/checksum.h"
#include "proto/messages.h"

namespace mydfs::client {

namespace asio = boost::asio;
using namespace mydfs::proto;
using proto::kPayloadCapacity;

namespace {

// The bytes of d as a Source; d must outlive every use.
Source source_of(std::string_view d) {
  return [d](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), d.size() - std::min<uint64_t>(off, d.size())));
    if (n) std::memcpy(out.data(), d.data() + off, n);
    return n;
  };
}

Source zeros_then(uint64_t zeros, Source rest) {
  return [zeros, rest](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
    size_t done = 0;
    if (off < zeros) {
      done = static_cast<size_t>(std::min<uint64_t>(out.size(), zeros - off));
      std::memset(out.data(), 0, done);
    }
    if (done == out.size()) return done;
    MYDFS_ASSIGN(size_t more, rest(off + done - zeros, out.subspan(done)));
    return done + more;
  };
}

Source shifted(Source src, uint64_t by) {
  return [src, by](uint64_t off, std::span<std::byte> out) { return src(off + by, out); };
}

Result<std::string> read_all(const Source& src, uint64_t off, size_t len) {
  std::string s(len, '\0');
  size_t done = 0;
  while (done < len) {
    MYDFS_ASSIGN(size_t n, src(off + done, std::as_writable_bytes(std::span(s)).subspan(done)));
    if (n == 0) return make_error(Code::IO_ERROR, "the source ended early");
    done += n;
  }
  return s;
}

const Progress kNoProgress;

// len bytes of src from off, straight into a buffer the RPC layer can send (no extra copy).
Result<std::shared_ptr<AlignedBuffer>> read_buffer(const Source& src, uint64_t off, size_t len) {
  auto buf = std::make_shared<AlignedBuffer>(len);
  size_t done = 0;
  while (done < len) {
    MYDFS_ASSIGN(size_t n, src(off + done, buf->span().subspan(done)));
    if (n == 0) return make_error(Code::IO_ERROR, "the source ended early");
    done += n;
  }
  return buf;
}

uint64_t random_txid() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()) << 32);
  uint64_t t = 0;
  while (t == 0) t = rng();
  return t;
}

// Index of the slice holding byte off, or -1 if none (off at or past the end).
ptrdiff_t slice_at(const std::vector<SliceInfo>& slices, uint64_t off) {
  for (size_t i = 0; i < slices.size(); ++i)
    if (off >= slices[i].offset && off < slices[i].offset + slices[i].meta.valid_len) return static_cast<ptrdiff_t>(i);
  return -1;
}

}  // namespace

// A transaction's steps as calls to the groups' leaders (GroupChannel: a step whose answer was
// lost is sent again, which transaction steps allow).
class Client::TxChannels final : public TxGroups {
 public:
  explicit TxChannels(Client* c) : client_(c) {}
  asio::awaitable<Result<ReserveResp>> reserve(uint32_t group, const ReserveReq& req) override {
    co_return co_await call(group, req);
  }
  asio::awaitable<Result<SlotResp>> write(uint32_t group, const WriteSlotReq& req,
                                          const std::shared_ptr<const AlignedBuffer>& bytes) override {
    MYDFS_CO_ASSIGN(auto ch, co_await client_->storage_for(group));
    WriteSlotReq w = req;
    Bulk bulk;
    if (all_zero(bytes->span())) w.zeros = static_cast<uint32_t>(bytes->size());  // a hole travels as its length
    else bulk = Bulk::of(bytes);
    co_return co_await ch->call(w, bulk);
  }
  asio::awaitable<Result<SlotResp>> lock(uint32_t group, const LockReq& req) override {
    co_return co_await call(group, req);
  }
  asio::awaitable<Result<TxDecideResp>> decide(uint32_t group, uint64_t txid, TxDecision want) override {
    TxDecideReq req{txid, want};
    co_return co_await call(group, req);
  }
  asio::awaitable<Result<TxDecideResp>> finish(uint32_t group, uint64_t txid, bool commit) override {
    TxFinishReq req{txid, commit};
    co_return co_await call(group, req);
  }
  asio::awaitable<Result<TxDecideResp>> forget(uint32_t group, uint64_t txid) override {
    TxForgetReq req{txid};
    co_return co_await call(group, req);
  }

 private:
  template <typename Req>
  asio::awaitable<Result<typename Req::Response>> call(uint32_t group, const Req& req) {
    MYDFS_CO_ASSIGN(auto ch, co_await client_->storage_for(group));
    co_return co_await ch->call(req);
  }
  Client* client_;
};

uint32_t Client::slice_bytes() const {
  return opt_.slice_bytes == 0 ? kPayloadCapacity : std::min(opt_.slice_bytes, kPayloadCapacity);
}

asio::awaitable<void> Client::backoff(uint32_t attempt) {
  thread_local std::mt19937 rng(std::random_device{}());
  double cap = std::min(100.0, 1.0 * (1u << std::min(attempt, 7u)));  // ms: 1, 2, 4 ... 100
  double ms = std::uniform_real_distribution<double>(cap / 2, cap)(rng);
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Client::discard(std::vector<Location> slots) {
  for (const auto& l : slots) {
    auto sc = co_await storage_for(l.group);
    if (!sc.ok()) continue;
    DeleteReq d{l, 0};
    (void)co_await (*sc)->call(d);
  }
}

asio::awaitable<void> Client::free_chains(std::vector<Location> heads) {
  // Chains no file refers to any more (unlink, rename over, put over): delete every slot from
  // the head on, redirects included. Best effort: what fails here stays as unreachable garbage.
  for (Location at : heads) {
    for (int hops = 0; !at.null() && hops < 1000000; ++hops) {
      auto sc = co_await storage_for(at.group);
      if (!sc.ok()) break;
      WalkReq wreq{at, kMaxWalk};
      auto w = co_await (*sc)->call(wreq);
      if (!w.ok()) break;
      for (const auto& m : w->slices) {
        DeleteReq d{m.loc, m.applied_index};
        (void)co_await (*sc)->call(d);
      }
      if (w->end_code != Code::OK) break;
      at = w->leaves;
    }
  }
}

asio::awaitable<Result<std::vector<Location>>> Client::write_new_slices(uint64_t ino, const Span& data, Location last_next,
                                                                        const Progress& progress, uint64_t* blocks) {
  // A group the tracker chose may be fuller than its last report said: it refuses with NO_SPACE
  // (nothing written stays), and the tracker, told by the next heartbeats, places elsewhere.
  // Only when the tracker itself finds no room is the answer ENOSPC.
  for (uint32_t attempt = 0;; ++attempt) {
    auto r = co_await write_new_slices_once(ino, data, last_next, progress, blocks);
    if (r.ok() || r.code() != Code::NO_SPACE) co_return r;
    if (attempt >= 3) co_return fs_error(ENOSPC, fmt::format("no storage group could take the data: {}", r.error().message));
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(1000));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<Result<std::vector<Location>>> Client::write_new_slices_once(uint64_t ino, const Span& data,
                                                                             Location last_next,
                                                                             const Progress& progress,
                                                                             uint64_t* blocks) {
  const uint64_t sb = slice_bytes();
  if (blocks) *blocks = 0;
  uint64_t n = (data.size + sb - 1) / sb;
  std::vector<Location> slots;
  if (n == 0) co_return slots;
  // Runs from the tracker, then the slots on each run's group.
  if (!tracker_) tracker_ = connect(opt_.tracker);
  // The tracker places by room: slices wholly inside a known gap take none.
  uint64_t hole_slices = data.zeros / sb;
  AllocateReq areq{ino, static_cast<uint32_t>(n), std::max<uint64_t>(data.size - hole_slices * sb, 1)};
  AllocateResp runs;
  // EAGAIN: no group has a leader right now (the cluster is starting, or elections run): wait.
  auto give_up = std::chrono::steady_clock::now() + opt_.failover_timeout;
  for (uint32_t attempt = 0;; ++attempt) {
    MYDFS_CO_ASSIGN(runs, co_await tracker_->call(areq));
    if (runs.err != EAGAIN || std::chrono::steady_clock::now() >= give_up) break;
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::milliseconds(std::min<uint32_t>(500, 50u << std::min<uint32_t>(attempt, 3))));
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (runs.err) co_return fs_error(runs.err, "allocate");  // ALLOCATE's errno (AllocateResp)
  for (const auto& run : runs.runs) {
    leaders_[run.group] = run.leader;
    auto sc = co_await storage_for(run.group);
    Result<ReserveResp> got = sc.ok() ? Result<ReserveResp>(make_error(Code::INTERNAL, "")) : sc.error();
    if (sc.ok()) {
      ReserveReq rreq{ino, run.count, 0, 0};
      got = co_await (*sc)->call(rreq);
    }
    if (!got.ok() || got->slots.size() != run.count) {
      co_await discard(slots);
      co_return got.ok() ? make_error(Code::INTERNAL, "reserve returned the wrong count") : got.take_error();
    }
    slots.insert(slots.end(), got->slots.begin(), got->slots.end());
  }
  // Write the slices, several at a time; each knows its successor already. They stay
  // unreachable until the caller links them (commit-file, or the command on the old tail).
  std::optional<Error> failure;
  uint64_t done_bytes = 0;
  auto ex = co_await asio::this_coro::executor;
  auto next_of = [&](uint64_t i) { return i + 1 < n ? slots[i + 1] : last_next; };
  // One slice to its group; false (with `failure` set) if it failed. Every argument is a named
  // variable of the caller (GCC 12 and temporaries across co_await: docs/ARCHITECTURE.md).
  auto send = [&](uint64_t i, const WriteSlotReq& w, const Bulk& bulk, size_t len) -> asio::awaitable<bool> {
    auto sc = co_await storage_for(slots[i].group);
    if (!sc.ok()) {
      failure = sc.error();
      co_return false;
    }
    auto wr = co_await (*sc)->call(w, bulk);
    if (!wr.ok()) {
      failure = wr.error();
      co_return false;
    }
    done_bytes += len;
    if (progress) progress(done_bytes, data.size);
    co_return true;
  };
  // Slices wholly inside the known gap: holes, sent as their length, many at a time (no buffer).
  uint64_t next_hole = 0;
  auto holes = [&]() -> asio::awaitable<void> {
    while (!failure && next_hole < hole_slices) {
      uint64_t i = next_hole++;
      size_t len = static_cast<size_t>(std::min<uint64_t>(sb, data.size - i * sb));
      WriteSlotReq w{slots[i], ino, next_of(i), xxh64_zeros(len), SlotState::LIVE, 0, 0};
      w.zeros = static_cast<uint32_t>(len);
      Bulk none;
      bool sent = co_await send(i, w, none, len);
      if (!sent) co_return;
    }
  };
  co_await run_workers(ex, std::min<uint64_t>(std::max<uint32_t>(opt_.slices_in_flight, 64), hole_slices), holes);
  // The rest, several at a time; each knows its successor already. They stay unreachable until
  // the caller links them (commit-file, or the command on the old tail).
  uint64_t next_slice = hole_slices;
  auto worker = [&]() -> asio::awaitable<void> {
    while (!failure && next_slice < n) {
      uint64_t i = next_slice++;
      uint64_t off = i * sb;
      size_t len = static_cast<size_t>(std::min<uint64_t>(sb, data.size - off));
      auto buf = std::make_shared<AlignedBuffer>(len);
      size_t got = 0;
      while (got < len) {
        auto r = data.src(off + got, buf->span().subspan(got));
        if (!r.ok() || *r == 0) {
          failure = r.ok() ? make_error(Code::IO_ERROR, "the source ended early") : r.error();
          co_return;
        }
        got += *r;
      }
      WriteSlotReq w{slots[i], ino, next_of(i), xxh64(buf->span()), SlotState::LIVE, 0, 0};
      // A slice of zeros (a sparse source) is sent as its length too: a hole on every member.
      Bulk bulk;
      if (all_zero(buf->span())) {
        w.zeros = static_cast<uint32_t>(len);
      } else {
        bulk = Bulk::of(buf);
        if (blocks) *blocks += blocks_of(buf->span());
      }
      bool sent = co_await send(i, w, bulk, len);
      if (!sent) co_return;
    }
  };
  if (!failure) co_await run_workers(ex, std::min<uint64_t>(opt_.slices_in_flight, n - hole_slices), worker);
  if (failure) {
    co_await discard(slots);
    co_return *failure;
  }
  co_return slots;
}

asio::awaitable<Result<std::string>> Client::read_range(const SliceInfo& s, uint32_t off, uint32_t len) {
  if (len == 0) co_return std::string();
  MYDFS_CO_ASSIGN(auto sc, co_await storage_for(s.meta.loc.group));
  for (int attempt = 0;; ++attempt) {
    AlignedBuffer bulk;
    ReadReq rreq{s.meta.loc, off, len};
    MYDFS_CO_ASSIGN(ReadResp r, co_await sc->call(rreq, {}, &bulk));
    if (r.meta.applied_index != s.meta.applied_index)
      co_return make_error(Code::CONFLICT, fmt::format("slice {} changed since the chain was walked", s.meta.loc));
    uint64_t want = r.whole ? r.meta.payload_checksum : r.range_checksum;
    if (bulk.size() == len && xxh64(bulk.span()) == want)
      co_return std::string(reinterpret_cast<const char*>(bulk.data()), bulk.size());
    // The bytes travel after the answer's header was read: an edit of the slice in between
    // shows as a mismatch. Changed since: the caller walks again. Unchanged: read once more,
    // and a second mismatch is damage.
    StatReq sreq{s.meta.loc};
    auto now = co_await sc->call(sreq);
    if (!now.ok() || now->meta.applied_index != s.meta.applied_index)
      co_return make_error(Code::CONFLICT, fmt::format("slice {} changed while it was read", s.meta.loc));
    if (attempt > 0) co_return make_error(Code::CHECKSUM_MISMATCH, fmt::format("slice {} arrived damaged", s.meta.loc));
  }
}

asio::awaitable<Result<Client::FileView>> Client::view_async(uint64_t ino) {
  NsReadReq get{NsReadOp::GETATTR, ino, "", 0, 0};
  MYDFS_CO_ASSIGN(NsReply r, co_await ns_read_async(get));
  FileView v;
  v.attr = r.attr;
  if (v.attr.type == FileType::DIR) co_return fs_error(EISDIR, "");
  if (v.attr.type != FileType::REG) co_return fs_error(EINVAL, "");
  // Every acknowledged edit was published (its version bump) before it was acknowledged, so a
  // chain map walked at this very version holds every acknowledged edit: no walk needed.
  auto cached = chains_.find(ino);
  if (cached != chains_.end() && cached->second.head == v.attr.head && cached->second.version == v.attr.version) {
    v.slices = cached->second.slices;
  } else {
    MYDFS_CO_ASSIGN(v.slices, co_await chain_async(v.attr));
  }
  for (const auto& s : v.slices) v.size += s.meta.valid_len;
  co_return v;
}

// ---------------------------------------------------------------------------------------------
// The edit loop and publishing

asio::awaitable<Result<Attr>> Client::edit_async(std::string path, EditStep step) {
  MYDFS_CO_ASSIGN(Attr a, co_await resolve_async(path));
  co_return co_await edit_ino_async(a, std::move(step));
}

asio::awaitable<Result<Attr>> Client::edit_ino_async(Attr a, EditStep step) {
  if (a.type == FileType::DIR) co_return fs_error(EISDIR, "");
  if (a.type != FileType::REG) co_return fs_error(EINVAL, "");
  Error last = make_error(Code::CONFLICT, "");
  for (uint32_t attempt = 0; attempt < opt_.edit_attempts; ++attempt) {
    if (attempt > 0) co_await backoff(attempt);
    auto v = co_await view_async(a.ino);
    if (!v.ok()) {
      if (!retryable(v.code())) co_return v.take_error();
      last = v.take_error();
      continue;
    }
    Status st = co_await step(*v);
    if (st.ok() && v->published) {  // published by the step itself, or nothing to publish
      chains_.erase(a.ino);
      co_return *v->published;
    }
    if (st.ok()) {
      auto fast = co_await publish_fast(*v);
      if (fast.ok() || (fast.code() == Code::FS_ERROR && to_errno(fast.error()) != ESTALE)) co_return fast;
      // Someone published meanwhile, or the answer was lost (the tracker failed over): the edit
      // is in the chain either way, so publish what the chain now holds, walking for the size.
      // Publishing is a compare-and-set on a fresh walk, so repeating it is harmless.
      std::optional<Timespec> mtime = v->mtime;
      auto pub = co_await publish_async(a.ino, mtime);
      for (uint32_t k = 1; !pub.ok() && pub.code() != Code::FS_ERROR && k < 5; ++k) {
        co_await backoff(k);
        pub = co_await publish_async(a.ino, mtime);
      }
      co_return pub;
    }
    chains_.erase(a.ino);
    bool again = retryable(st.code()) || (st.code() == Code::FS_ERROR && to_errno(st.error()) == ESTALE);
    if (!again) co_return st.take_error();
    last = st.take_error();
  }
  Error e = fs_error(EAGAIN, "");
  e.message = fmt::format("the file kept changing under concurrent edits; gave up after {} attempts ({})",
                          opt_.edit_attempts, last.message);
  co_return e;
}

asio::awaitable<Result<Attr>> Client::publish_fast(const FileView& v) {
  // Nobody published since our view (the compare-and-set checks it): the size is the view's
  // plus what this edit changed, and what the edit replaced is known without a walk.
  if (v.retire) {
    const auto& r = *v.retire;
    auto sc = co_await storage_for(r.pred.group);
    if (sc.ok()) {
      SetNextReq link{r.pred, r.now, r.pred_applied};
      if ((co_await (*sc)->call(link)).ok()) {
        if (auto oc = co_await storage_for(r.old.group); oc.ok()) {
          DeleteReq d{r.old, 0};
          (void)co_await (*oc)->call(d);
        }
      }
    }
  }
  int64_t blocks = static_cast<int64_t>(v.attr.blocks) + v.delta_blocks;
  auto commit = NsOp::commit_file(v.attr.ino, v.attr.version, v.head ? *v.head : v.attr.head,
                                  static_cast<uint64_t>(static_cast<int64_t>(v.size) + v.delta),
                                  v.mtime ? *v.mtime : now_timespec(),
                                  static_cast<uint64_t>(std::max<int64_t>(blocks, 0)));
  auto cm = co_await ns_write_async(commit);
  if (!cm.ok()) {
    chains_.erase(v.attr.ino);
    co_return fs_context(cm.take_error(), "publish");
  }
  if (v.head && !v.attr.head.null()) {
    // The old head slot redirects to the new one, and nothing points at it any more.
    if (auto oc = co_await storage_for(v.attr.head.group); oc.ok()) {
      DeleteReq d{v.attr.head, 0};
      (void)co_await (*oc)->call(d);
    }
  }
  if (v.patched && !v.head && !v.retire) {
    // A patch changed one slice in place: the map stays good for the next edit.
    CachedChain c{v.attr.head, cm->attr.version, v.slices};
    c.slices[v.patched->first].meta = v.patched->second;
    uint64_t off = 0;
    for (auto& s : c.slices) {
      s.offset = off;
      off += s.meta.valid_len;
    }
    chains_.insert_or_assign(v.attr.ino, std::move(c));
  } else {
    chains_.erase(v.attr.ino);
  }
  co_return cm->attr;
}

asio::awaitable<Result<Attr>> Client::publish_async(uint64_t ino, std::optional<Timespec> mtime) {
  // The chain is the truth about the content; the tracker learns its length (and the edit's
  // mtime) here. The compare-and-set on the version makes the last publisher one whose walk
  // came after every edit before it, so concurrent editors end with the right size.
  for (uint32_t attempt = 0; attempt < opt_.edit_attempts; ++attempt) {
    if (attempt > 0) co_await backoff(attempt);
    auto v = co_await view_async(ino);
    if (!v.ok()) {
      if (retryable(v.code())) continue;
      co_return v.take_error();
    }
    // Retire redirects: point each predecessor straight at the new slice, then free the old
    // slot. Conditional on the predecessor being unchanged; anything busy is left for later.
    for (size_t i = 0; i + 1 < v->slices.size(); ++i) {
      const SlotMeta& p = v->slices[i].meta;
      Location to = v->slices[i + 1].meta.loc;
      if (p.next == to || p.next.null()) continue;
      auto sc = co_await storage_for(p.loc.group);
      if (!sc.ok()) continue;
      SetNextReq link{p.loc, to, p.applied_index};
      if (!(co_await (*sc)->call(link)).ok()) continue;
      auto oc = co_await storage_for(p.next.group);
      if (!oc.ok()) continue;
      StatReq sreq{p.next};
      auto old = co_await (*oc)->call(sreq);
      if (old.ok() && old->meta.state == SlotState::REDIRECT && old->meta.redirect == to) {
        DeleteReq d{p.next, old->meta.applied_index};
        (void)co_await (*oc)->call(d);
      }
    }
    Location head = v->slices.empty() ? v->attr.head : v->slices[0].meta.loc;
    uint64_t blocks = 0;
    for (const auto& s : v->slices) blocks += blocks_of(s.meta);
    // An edit that changed no byte (compaction) keeps the mtime, unless another edit came since.
    Timespec when = mtime && v->attr.mtime == *mtime ? *mtime : now_timespec();
    auto r = co_await ns_write_async(NsOp::commit_file(ino, v->attr.version, head, v->size, when, blocks));
    if (!r.ok() && to_errno(r.error()) == ESTALE) continue;
    if (!r.ok()) co_return fs_context(r.take_error(), "publish");
    NsReply& cm = *r;
    Location old_head = v->attr.head;
    if (!(old_head == head) && !old_head.null()) {
      // The head slot was replaced by a redirect; nothing points at it any more.
      auto oc = co_await storage_for(old_head.group);
      if (oc.ok()) {
        StatReq sreq{old_head};
        auto old = co_await (*oc)->call(sreq);
        if (old.ok() && old->meta.state == SlotState::REDIRECT) {
          DeleteReq d{old_head, old->meta.applied_index};
          (void)co_await (*oc)->call(d);
        }
      }
    }
    chains_.erase(ino);
    co_return cm.attr;
  }
  co_return fs_error(EAGAIN, "publishing the new size");
}

// ---------------------------------------------------------------------------------------------
// Steps

asio::awaitable<Status> Client::write_in_tail(FileView& v, uint64_t off, const Span& data, const Progress& progress) {
  // The region starts in the tail slice: fill the tail (one patch), put the rest in new slices
  // written unreachable, and link them with the same command — the append's commit point.
  const SliceInfo& tail = v.slices.back();
  uint32_t pos = static_cast<uint32_t>(off - tail.offset);
  uint32_t limit = std::max(tail.meta.valid_len, slice_bytes());
  uint64_t in_tail = std::min<uint64_t>(data.size, limit - pos);
  // A gap that fills the tail's room is not written into it: the tail stays as it is and the gap
  // starts the new slices (holes), linked by a patch of nothing.
  if (in_tail > 0 && data.zeros >= in_tail && data.size > in_tail) in_tail = 0;
  uint64_t rest = data.size - in_tail;
  MYDFS_CO_ASSIGN(auto buf, read_buffer(data.src, 0, static_cast<size_t>(in_tail)));
  std::vector<Location> fresh;
  uint64_t fresh_blocks = 0;
  if (rest > 0) {
    Span more{rest, shifted(data.src, in_tail), data.zeros > in_tail ? data.zeros - in_tail : 0};
    MYDFS_CO_ASSIGN(fresh, co_await write_new_slices(v.attr.ino, more, tail.meta.next, progress, &fresh_blocks));
  }
  PatchReq p{tail.meta.loc, pos, xxh64(buf->span()), tail.meta.applied_index,
             static_cast<uint8_t>(fresh.empty() ? 0 : PATCH_SET_NEXT), fresh.empty() ? Location{} : fresh[0]};
  auto sc = co_await storage_for(tail.meta.loc.group);
  Result<SlotResp> r = sc.ok() ? Result<SlotResp>(make_error(Code::INTERNAL, "")) : sc.error();
  if (sc.ok()) r = co_await (*sc)->call(p, Bulk::of(buf));
  if (!r.ok()) {
    // The new slices go only if the link was refused. A lost answer may mean the tail links
    // them already (or will, once a new leader commits the entry): deleting them then would
    // break the file's chain. Left unlinked, they are only space.
    if (refused(r.code())) co_await discard(fresh);
    co_return r.take_error();
  }
  v.delta = static_cast<int64_t>(off + data.size) - static_cast<int64_t>(v.size);
  v.delta_blocks = static_cast<int64_t>(blocks_of(r->meta) + fresh_blocks) - static_cast<int64_t>(blocks_of(tail.meta));
  co_return ok_status();
}

asio::awaitable<Status> Client::replace_range(FileView& v, uint64_t off, uint64_t del, const Span& data) {
  // Copy-on-write of the slices holding [off, off+del): their kept head and tail bytes plus the
  // new data go into new slices on the first slice's group, which is the primary participant.
  // Every replaced slice is locked on its own group (conditional on what the walk saw); the
  // primary's decision then redirects the first old slice to the new ones and makes them LIVE in
  // one command, and the other groups free their old slices (transaction.h runs the protocol).
  const auto& sl = v.slices;
  ptrdiff_t fi = slice_at(sl, off);
  size_t i = fi >= 0 ? static_cast<size_t>(fi) : sl.size() - 1;
  uint64_t end = off + del;
  size_t j = i;
  if (del > 0)
    while (j + 1 < sl.size() && sl[j + 1].offset < end) ++j;
  const SliceInfo& si = sl[i];
  const SliceInfo& sj = sl[j];
  MYDFS_CO_ASSIGN(std::string pre, co_await read_range(si, 0, static_cast<uint32_t>(off - si.offset)));
  uint32_t keep_from = static_cast<uint32_t>(end - sj.offset);
  MYDFS_CO_ASSIGN(std::string post, co_await read_range(sj, keep_from, sj.meta.valid_len - keep_from));
  MYDFS_CO_ASSIGN(std::string mid, read_all(data.src, 0, static_cast<size_t>(data.size)));
  TxPlan plan;
  plan.txid = random_txid();
  plan.ino = v.attr.ino;
  for (size_t k = i; k <= j; ++k) {
    plan.old.push_back(sl[k].meta);
    v.delta_blocks -= static_cast<int64_t>(blocks_of(sl[k].meta));
  }
  plan.content = std::move(pre) + mid + post;
  plan.piece_bytes = slice_bytes();
  for (size_t at = 0; at < plan.content.size(); at += plan.piece_bytes) {
    auto piece = std::as_bytes(std::span(plan.content)).subspan(at, std::min<size_t>(plan.piece_bytes, plan.content.size() - at));
    v.delta_blocks += static_cast<int64_t>(blocks_of(piece));
  }
  TxChannels groups(this);
  Transaction tx(groups, std::move(plan), opt_.after_prepare);
  MYDFS_CO_ASSIGN(std::vector<Location> fresh, co_await tx.run());
  v.delta = static_cast<int64_t>(data.size) - static_cast<int64_t>(del);
  if (i == 0 && v.attr.head == si.meta.loc) v.head = fresh[0];
  if (i > 0 && sl[i - 1].meta.next == si.meta.loc)
    v.retire = FileView::Retire{sl[i - 1].meta.loc, sl[i - 1].meta.applied_index, si.meta.loc, fresh[0]};
  co_return ok_status();
}

asio::awaitable<Status> Client::write_step(FileView& v, uint64_t off, const Span& in, const Progress& progress) {
  // (Spans are named, never temporaries inside a co_await: see docs/ARCHITECTURE.md on GCC 12.)
  if (in.size == 0) co_return ok_status();
  Span data = in;
  if (off > v.size) {  // a gap reads as zeros
    data.size = off - v.size + in.size;
    data.src = zeros_then(off - v.size, in.src);
    data.zeros = off - v.size;
    off = v.size;
  }
  if (v.slices.empty()) {
    // The file's first bytes: a new chain, published by the compare-and-set of its head.
    uint64_t blocks = 0;
    MYDFS_CO_ASSIGN(auto fresh, co_await write_new_slices(v.attr.ino, data, Location{}, progress, &blocks));
    auto cm = co_await ns_write_async(NsOp::commit_file(v.attr.ino, v.attr.version, fresh[0], data.size, now_timespec(),
                                                        blocks));
    if (cm.code() == Code::FS_ERROR) {  // refused: the new slices are nobody's (a lost reply keeps them)
      co_await discard(fresh);
      co_return cm.take_error();
    }
    if (!cm.ok()) co_return cm.take_error();
    v.published = cm->attr;
    co_return ok_status();
  }
  uint64_t end = off + data.size;
  ptrdiff_t i = slice_at(v.slices, off);
  if (i >= 0 && end <= v.slices[i].offset + v.slices[i].meta.valid_len) {
    // Inside one slice: one patch. Patches of one slice serialize on the node's lock.
    const SliceInfo& s = v.slices[i];
    MYDFS_CO_ASSIGN(auto buf, read_buffer(data.src, 0, static_cast<size_t>(data.size)));
    PatchReq p{s.meta.loc, static_cast<uint32_t>(off - s.offset), xxh64(buf->span()), 0, PATCH_NO_EXTEND, Location{}};
    MYDFS_CO_ASSIGN(auto sc, co_await storage_for(s.meta.loc.group));
    MYDFS_CO_ASSIGN(SlotResp done, co_await sc->call(p, Bulk::of(buf)));
    v.patched.emplace(static_cast<size_t>(i), done.meta);
    v.delta_blocks = static_cast<int64_t>(blocks_of(done.meta)) - static_cast<int64_t>(blocks_of(s.meta));
    co_return ok_status();
  }
  if (off >= v.slices.back().offset) co_return co_await write_in_tail(v, off, data, progress);
  co_return co_await replace_range(v, off, std::min<uint64_t>(data.size, v.size - off), data);
}

asio::awaitable<Status> Client::truncate_step(FileView& v, uint64_t size) {
  if (size == v.size) co_return ok_status();
  if (size > v.size) {
    uint64_t grow = size - v.size;
    Span zeros{grow, zeros_then(grow, source_of({})), grow};
    co_return co_await write_step(v, v.size, zeros, kNoProgress);
  }
  // Shrink: one command makes the slice holding the new last byte the tail.
  size_t k = 0;
  if (size > 0)
    while (v.slices[k].offset + v.slices[k].meta.valid_len < size) ++k;
  const SlotMeta& m = v.slices[k].meta;
  MYDFS_CO_ASSIGN(auto sc, co_await storage_for(m.loc.group));
  SetValidLenReq cut{m.loc, static_cast<uint32_t>(size - v.slices[k].offset), true, m.applied_index};
  MYDFS_CO_ASSIGN(SlotResp cut_to, co_await sc->call(cut));
  v.delta = static_cast<int64_t>(size) - static_cast<int64_t>(v.size);
  v.delta_blocks = static_cast<int64_t>(blocks_of(cut_to.meta)) - static_cast<int64_t>(blocks_of(m));
  std::vector<Location> gone;
  for (size_t x = k + 1; x < v.slices.size(); ++x) {
    gone.push_back(v.slices[x].meta.loc);
    v.delta_blocks -= static_cast<int64_t>(blocks_of(v.slices[x].meta));
  }
  co_await discard(gone);
  co_return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Public edits

Result<Attr> Client::append(const std::string& path, uint64_t size, const Source& src, const Progress& progress) {
  return run([this, path, size, &src, &progress]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, size, &src, &progress](FileView& v) -> asio::awaitable<Status> {
      Span data{size, src};
      co_return co_await write_step(v, v.size, data, progress);
    };
    co_return co_await edit_async(path, step);
  }());
}

Result<Attr> Client::write_at(const std::string& path, uint64_t offset, std::string_view bytes) {
  return run([this, path, offset, bytes]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, offset, bytes](FileView& v) -> asio::awaitable<Status> {
      Span data{bytes.size(), source_of(bytes)};
      co_return co_await write_step(v, offset, data, kNoProgress);
    };
    co_return co_await edit_async(path, step);
  }());
}

Result<Attr> Client::splice(const std::string& path, uint64_t offset, uint64_t del_len, std::string_view bytes) {
  return run([this, path, offset, del_len, bytes]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, offset, del_len, bytes](FileView& v) -> asio::awaitable<Status> {
      if (offset > v.size)
        co_return fs_error(EINVAL, fmt::format("offset {} is past the end of the file ({} bytes)", offset, v.size));
      uint64_t del = std::min(del_len, v.size - offset);
      Span data{bytes.size(), source_of(bytes)};
      // Same length, or an insert at the end: a write. Otherwise the chain changes shape.
      if (del == data.size || (del == 0 && offset == v.size) || v.slices.empty())
        co_return co_await write_step(v, offset, data, kNoProgress);
      co_return co_await replace_range(v, offset, del, data);
    };
    co_return co_await edit_async(path, step);
  }());
}

Result<Attr> Client::truncate(const std::string& path, uint64_t size) {
  return run([this, path, size]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, size](FileView& v) -> asio::awaitable<Status> { co_return co_await truncate_step(v, size); };
    co_return co_await edit_async(path, step);
  }());
}

namespace {
// A slice of zeros: the storage nodes keep it as a hole, and merging it would write its zeros.
bool is_hole_slice(const SlotMeta& m) { return m.valid_len > 0 && m.payload_checksum == xxh64_zeros(m.valid_len); }

// At most this many slices in one merge: a merge is one transaction, and a concurrent edit of any
// of its slices makes it start over, so small steps keep compaction going on a busy file (a
// merged slice is merged again with its neighbours later).
constexpr size_t kMaxMerge = 16;

// The first run of two or more adjacent slices, none of them a hole, each linked straight to the
// next (a redirect between them would be left behind unreachable), whose bytes fit in one slice.
std::optional<std::pair<size_t, size_t>> mergeable(const std::vector<SliceInfo>& sl, uint64_t cap) {
  for (size_t i = 0; i < sl.size(); ++i) {
    if (is_hole_slice(sl[i].meta)) continue;
    uint64_t sum = sl[i].meta.valid_len;
    size_t j = i;
    while (j + 1 < sl.size() && j + 1 - i < kMaxMerge && !is_hole_slice(sl[j + 1].meta) &&
           sl[j].meta.next == sl[j + 1].meta.loc && sum + sl[j + 1].meta.valid_len <= cap)
      sum += sl[++j].meta.valid_len;
    if (j > i) return std::pair{i, j};
    i = j;
  }
  return std::nullopt;
}
}  // namespace

Result<Client::CompactResult> Client::compact(const std::string& path, uint32_t max_merges,
                                              std::chrono::milliseconds pause) {
  return run([this, path, max_merges, pause]() -> asio::awaitable<Result<CompactResult>> {
    CompactResult res;
    MYDFS_CO_ASSIGN(Attr a, co_await resolve_async(path));
    bool first = true, redirects = false;
    for (uint32_t m = 0;; ++m) {
      bool done = false;
      EditStep step = [this, &res, &first, &done, &redirects, m, max_merges](FileView& v) -> asio::awaitable<Status> {
        if (first) res.slices_before = v.slices.size();
        first = false;
        res.slices_after = v.slices.size();
        auto run = m < max_merges ? mergeable(v.slices, slice_bytes()) : std::nullopt;
        if (!run) {
          done = true;
          v.published = v.attr;  // nothing to merge: nothing to publish
          // A slice still reached through a redirect (its predecessor changed before the merge
          // could link past it) is retired below.
          for (size_t k = 0; k + 1 < v.slices.size(); ++k)
            redirects |= !(v.slices[k].meta.next == v.slices[k + 1].meta.loc);
          co_return ok_status();
        }
        auto [i, j] = *run;
        uint64_t off = v.slices[i].offset, len = 0;
        std::string bytes;
        for (size_t k = i; k <= j; ++k) {
          MYDFS_CO_ASSIGN(std::string part, co_await read_range(v.slices[k], 0, v.slices[k].meta.valid_len));
          bytes += part;
          len += v.slices[k].meta.valid_len;
        }
        v.mtime = v.attr.mtime;  // the same bytes: the file is not modified
        Span same{len, source_of(bytes)};
        Status st = co_await replace_range(v, off, len, same);
        if (st.ok()) res.slices_after = v.slices.size() - (j - i);
        co_return st;
      };
      MYDFS_CO_ASSIGN(Attr after, co_await edit_ino_async(a, step));
      a = after;
      if (done) {
        if (redirects) {
          std::optional<Timespec> keep = a.mtime;
          MYDFS_CO_TRY(co_await publish_async(a.ino, keep));
        }
        break;
      }
      ++res.merges;
      if (pause.count() > 0) {
        asio::steady_timer t(co_await asio::this_coro::executor);
        t.expires_after(pause);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    co_return res;
  }());
}

Result<Attr> Client::write_ino(uint64_t ino, uint64_t offset, std::string_view bytes) {
  return run([this, ino, offset, bytes]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, offset, bytes](FileView& v) -> asio::awaitable<Status> {
      Span data{bytes.size(), source_of(bytes)};
      co_return co_await write_step(v, offset, data, kNoProgress);
    };
    Attr a;
    a.ino = ino;  // the edit reads the attributes itself; only a regular file gets this far
    co_return co_await edit_ino_async(a, step);
  }());
}

Result<Attr> Client::truncate_ino(uint64_t ino, uint64_t size) { return resize_ino(ino, size, false); }

Result<Attr> Client::grow_ino(uint64_t ino, uint64_t size) { return resize_ino(ino, size, true); }

Result<Attr> Client::resize_ino(uint64_t ino, uint64_t size, bool grow_only) {
  return run([this, ino, size, grow_only]() -> asio::awaitable<Result<Attr>> {
    EditStep step = [this, size, grow_only](FileView& v) -> asio::awaitable<Status> {
      co_return co_await truncate_step(v, grow_only ? std::max(size, v.size) : size);
    };
    Attr a;
    a.ino = ino;
    co_return co_await edit_ino_async(a, step);
  }());
}

}  // namespace mydfs::client
