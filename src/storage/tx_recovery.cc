#include "storage/tx_recovery.h"

#include <spdlog/spdlog.h>

#include "common/parse.h"
#include "proto/tracker_messages.h"
#include "storage/state_machine.h"

namespace mydfs::storage {

namespace asio = boost::asio;
using namespace mydfs::proto;

namespace {

proto::ClientOptions peer_options() {
  proto::ClientOptions co;
  co.connect_timeout = std::chrono::milliseconds(1000);
  co.call_timeout = std::chrono::milliseconds(5000);
  return co;
}

}  // namespace

TxRecovery::TxRecovery(SliceStore& store, Replicator& repl, MeteredPool& io_pool)
    : store_(store), repl_(repl), io_pool_(io_pool) {}

void TxRecovery::start(asio::io_context& io, std::string tracker, std::chrono::milliseconds timeout) {
  tracker_address_ = std::move(tracker);
  timeout_ = timeout;
  timer_.emplace(io);
  asio::co_spawn(io, loop(), asio::detached);
}

void TxRecovery::stop() {
  if (timer_) timer_->cancel();
  if (tracker_) tracker_->close();
  for (auto& [a, c] : peers_) c->close();
}

asio::awaitable<void> TxRecovery::loop() {
  auto period = std::clamp<std::chrono::milliseconds>(timeout_ / 4, std::chrono::milliseconds(50),
                                                      std::chrono::milliseconds(1000));
  for (;;) {
    timer_->expires_after(period);
    boost::system::error_code ec;
    co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    // Only a group's leader resolves its transactions (the others would only hear NOT_LEADER).
    if (repl_.role_info().role != "leader") {
      first_seen_.clear();
      continue;
    }
    co_await check();
  }
}

asio::awaitable<void> TxRecovery::check() {
  // A transaction is first seen when this check first meets it (after a restart: then), and
  // resolved once it has been pending for the whole timeout.
  auto pending = co_await run_on(io_pool_, [this] { return repl_.state_machine().pending_transactions(); });
  auto now = std::chrono::steady_clock::now();
  for (auto it = first_seen_.begin(); it != first_seen_.end();)
    it = pending.count(it->first) ? std::next(it) : first_seen_.erase(it);
  for (auto [txid, primary] : pending) {
    auto [it, fresh] = first_seen_.emplace(txid, now);
    if (fresh || now - it->second < timeout_) continue;
    auto r = co_await resolve(txid, primary);
    if (!r.ok()) {
      spdlog::warn("transaction {:016x} (primary group {}) is past its timeout and cannot be resolved yet: {}", txid,
                   primary, r.error().to_string());
      continue;
    }
    spdlog::info("transaction {:016x} was left unfinished; the primary group {} says {}: finished {} slot(s) here",
                 txid, primary, r->decision == TxDecision::COMMIT ? "committed" : "aborted", r->finished);
    first_seen_.erase(txid);
  }
}

asio::awaitable<Result<TxDecideResp>> TxRecovery::resolve(uint64_t txid, uint32_t primary) {
  // Abort unless committed: the first decision wins at the primary, so if the coordinator is
  // still alive and decides later, it learns the abort and retries.
  TxDecideReq ask{txid, TxDecision::ABORT};
  if (primary == store_.group()) {
    Command decide = to_command(ask);
    co_return co_await submit(decide);
  }
  MYDFS_CO_ASSIGN(auto peer, co_await leader_of(primary));
  auto d = co_await peer->call(ask);
  if (!d.ok()) {
    leaders_.clear();  // ask the tracker again next time
    co_return d.take_error();
  }
  if (d->decision == TxDecision::NONE) co_return make_error(Code::INTERNAL, "the primary recorded no decision");
  TxFinishReq fin{txid, d->decision == TxDecision::COMMIT};
  Command finish = to_command(fin);
  co_return co_await submit(finish);
}

asio::awaitable<Result<TxDecideResp>> TxRecovery::submit(Command cmd) {
  MYDFS_CO_ASSIGN(SlotMeta m, co_await repl_.submit(std::move(cmd), {}));
  co_return tx_response(m);
}

asio::awaitable<Result<std::shared_ptr<RpcClient>>> TxRecovery::leader_of(uint32_t group) {
  if (!leaders_.count(group)) {
    if (tracker_address_.empty())
      co_return make_error(Code::UNAVAILABLE, fmt::format("no --tracker to find group {}", group));
    MYDFS_CO_TRY(co_await refresh_leaders());
  }
  auto it = leaders_.find(group);
  if (it == leaders_.end() || it->second.empty())
    co_return make_error(Code::UNAVAILABLE, fmt::format("group {} has no reachable leader", group));
  auto& peer = peers_[it->second];
  if (!peer) {
    auto ex = co_await asio::this_coro::executor;
    MYDFS_CO_ASSIGN(HostPort hp, parse_host_port(it->second));
    peer = std::make_shared<RpcClient>(ex, hp.host, hp.port, peer_options());
  }
  co_return peer;
}

asio::awaitable<Status> TxRecovery::refresh_leaders() {
  if (!tracker_) {
    auto ex = co_await asio::this_coro::executor;
    MYDFS_CO_ASSIGN(HostPort hp, parse_host_port(tracker_address_));
    tracker_ = std::make_shared<RpcClient>(ex, hp.host, hp.port, peer_options());
  }
  ClusterStatusReq req;
  MYDFS_CO_ASSIGN(ClusterStatusResp st, co_await tracker_->call(req));
  MYDFS_CO_ASSIGN(leaders_, usable_group_leaders(st));
  co_return ok_status();
}

}  // namespace mydfs::storage
