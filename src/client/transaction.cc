#include "client/transaction.h"

#include <algorithm>
#include <span>

#include <spdlog/spdlog.h>

#include "common/checksum.h"

namespace mydfs::client {

namespace asio = boost::asio;
using namespace mydfs::proto;

uint32_t TxPlan::pieces() const {
  return static_cast<uint32_t>(std::max<uint64_t>(1, (content.size() + piece_bytes - 1) / piece_bytes));
}

std::set<uint32_t> TxPlan::others() const {
  std::set<uint32_t> g;
  for (const auto& m : old)
    if (m.loc.group != primary()) g.insert(m.loc.group);
  return g;
}

Transaction::Transaction(TxGroups& groups, TxPlan plan, Hook after_prepare)
    : groups_(groups), plan_(std::move(plan)), after_prepare_(std::move(after_prepare)),
      primary_(plan_.primary()), others_(plan_.others()) {}

asio::awaitable<Result<std::vector<Location>>> Transaction::run() {
  // Nothing is locked before the reservation, so a failed one is not aborted (slots that a lost
  // answer reserved anyway are freed by the primary's timeout recovery).
  MYDFS_CO_TRY(co_await reserve());
  Status prepared = co_await write_pieces();
  if (prepared.ok()) prepared = co_await lock_all();
  if (!prepared.ok()) {
    co_await abort();
    co_return prepared.take_error();
  }
  if (after_prepare_) after_prepare_(plan_.txid);
  MYDFS_CO_ASSIGN(TxDecision d, co_await decide());
  if (d != TxDecision::COMMIT) {
    co_await abort();
    co_return make_error(Code::CONFLICT, fmt::format("transaction {:016x} was aborted (it timed out)", plan_.txid));
  }
  co_await finish_others();
  co_return fresh_;
}

asio::awaitable<Status> Transaction::reserve() {
  // Prepare, part one: new slots on the primary, owned by the transaction.
  ReserveReq req{plan_.ino, plan_.pieces(), plan_.txid, primary_};
  MYDFS_CO_ASSIGN(ReserveResp got, co_await groups_.reserve(primary_, req));
  if (got.slots.size() != req.count) co_return make_error(Code::INTERNAL, "reserve returned the wrong count");
  fresh_ = std::move(got.slots);
  co_return ok_status();
}

asio::awaitable<Status> Transaction::write_pieces() {
  // Prepare, part two: the new content written PREPARED (invisible), one piece per new slot; the
  // last one points where the last old slice did.
  const auto content = std::as_bytes(std::span(plan_.content));
  const uint64_t sb = plan_.piece_bytes;
  for (size_t k = 0; k < fresh_.size(); ++k) {
    size_t from = static_cast<size_t>(std::min<uint64_t>(k * sb, content.size()));
    size_t len = static_cast<size_t>(std::min<uint64_t>(sb, content.size() - from));
    std::shared_ptr<const AlignedBuffer> bytes =
        std::make_shared<AlignedBuffer>(AlignedBuffer::copy_of(content.subspan(from, len)));
    Location next = k + 1 < fresh_.size() ? fresh_[k + 1] : plan_.old.back().next;
    WriteSlotReq w{fresh_[k], plan_.ino, next, xxh64(bytes->span()), SlotState::PREPARED, plan_.txid, primary_};
    MYDFS_CO_TRY(co_await groups_.write(primary_, w, bytes));
  }
  co_return ok_status();
}

asio::awaitable<Status> Transaction::lock_all() {
  // Prepare, part three: lock the old slices, in chain order, each conditional on the version
  // the walk saw. The first one redirects to the new slices on commit; the others are deleted.
  for (size_t k = 0; k < plan_.old.size(); ++k) {
    const SlotMeta& m = plan_.old[k];
    LockReq l{m.loc, plan_.txid, primary_, m.applied_index, k == 0 ? fresh_[0] : Location{}};
    MYDFS_CO_TRY(co_await groups_.lock(m.loc.group, l));
  }
  co_return ok_status();
}

asio::awaitable<Result<TxDecision>> Transaction::decide() {
  // The commit point: the primary records the decision and finishes its own slots.
  auto dec = co_await groups_.decide(primary_, plan_.txid, TxDecision::COMMIT);
  if (!dec.ok()) {
    // The answer was lost: ask again with abort-unless-committed, which settles it either way.
    auto again = co_await groups_.decide(primary_, plan_.txid, TxDecision::ABORT);
    if (!again.ok())
      co_return make_error(Code::UNAVAILABLE,
                           fmt::format("group {} did not answer the commit of transaction {:016x} ({}); the edit is "
                                       "rolled back unless it committed before the failure",
                                       primary_, plan_.txid, dec.error().message));
    dec = std::move(again);
  }
  co_return dec->decision;
}

asio::awaitable<void> Transaction::finish_others() {
  bool all_finished = true;
  for (uint32_t g : others_) {
    auto f = co_await groups_.finish(g, plan_.txid, true);
    if (!f.ok()) {
      all_finished = false;  // committed all the same; that group's recovery frees its old slots
      spdlog::warn("transaction {:016x} committed, but group {} could not be told yet: {}", plan_.txid, g,
                   f.error().message);
    }
  }
  // The primary keeps the decision until every participant has it.
  if (all_finished) (void)co_await groups_.forget(primary_, plan_.txid);
}

asio::awaitable<void> Transaction::abort() {
  // Best effort: whatever this misses, the participants' timeout recovery finishes.
  (void)co_await groups_.decide(primary_, plan_.txid, TxDecision::ABORT);
  for (uint32_t g : others_) (void)co_await groups_.finish(g, plan_.txid, false);
}

}  // namespace mydfs::client
