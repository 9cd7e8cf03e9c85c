// The coordinator of a transaction that replaces slices (client-coordinated two-phase commit,
// docs/ARCHITECTURE.md "Edits"). The client plans the change (which slices go, what new bytes
// replace them) and a Transaction carries it out over TxGroups, the participant groups as the
// protocol sees them: the Client's implementation sends each step to a group's leader, the unit
// tests put a fake there.
//
// The steps, in order: RESERVE the new slots on the primary (the first old slice's group) and
// WRITE them PREPARED; LOCK every old slice on its own group, in chain order, conditional on the
// version the walk saw; TX_DECIDE(commit) on the primary — the commit point; TX_FINISH(commit)
// on every other group; TX_FORGET on the primary once all finished. A failure before the
// decision aborts (best effort; the participants' timeout recovery finishes whatever it misses).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "common/buffer.h"
#include "common/result.h"
#include "proto/messages.h"

namespace mydfs::client {

// The protocol steps of a transaction, each sent to one group (whichever member leads it).
// A step that fails returns its error; whether it took effect is then unknown. Arguments by
// reference are the caller's, alive until the step completes (each step is awaited at once).
class TxGroups {
 public:
  virtual ~TxGroups() = default;
  virtual boost::asio::awaitable<Result<proto::ReserveResp>> reserve(uint32_t group, const proto::ReserveReq& req) = 0;
  // A new slice's bytes (req.checksum is theirs), written PREPARED.
  virtual boost::asio::awaitable<Result<proto::SlotResp>> write(uint32_t group, const proto::WriteSlotReq& req,
                                                                const std::shared_ptr<const AlignedBuffer>& bytes) = 0;
  virtual boost::asio::awaitable<Result<proto::SlotResp>> lock(uint32_t group, const proto::LockReq& req) = 0;
  // On the primary: record `want` unless a decision is recorded already; answers the decision.
  virtual boost::asio::awaitable<Result<proto::TxDecideResp>> decide(uint32_t group, uint64_t txid,
                                                                     proto::TxDecision want) = 0;
  // On another participant: apply the decision to its slots.
  virtual boost::asio::awaitable<Result<proto::TxDecideResp>> finish(uint32_t group, uint64_t txid, bool commit) = 0;
  // On the primary: drop the recorded decision.
  virtual boost::asio::awaitable<Result<proto::TxDecideResp>> forget(uint32_t group, uint64_t txid) = 0;
};

// What a transaction changes, as the client planned it from its walk of the chain.
struct TxPlan {
  uint64_t txid = 0;
  uint64_t ino = 0;                // the file the new slices belong to
  // The slices replaced, in chain order, as the walk saw them (each is locked at that
  // applied_index). The first one's group is the primary participant: it gets the new slices and
  // records the decision; on commit the first old slice redirects to the first new one, and the
  // last new slice points where the last old one did.
  std::vector<proto::SlotMeta> old;
  // The new bytes of the replaced range, cut into slices of at most piece_bytes (at least one
  // slice, which may be empty).
  std::string content;
  uint64_t piece_bytes = proto::kPayloadCapacity;

  uint32_t primary() const { return old.front().loc.group; }
  uint32_t pieces() const;
  // The other groups holding old slices (told TX_FINISH).
  std::set<uint32_t> others() const;
};

class Transaction {
 public:
  // Called once every participant prepared, before the decision (ClientOptions::after_prepare).
  using Hook = std::function<void(uint64_t txid)>;
  // groups must outlive the transaction; plan.old must not be empty.
  Transaction(TxGroups& groups, TxPlan plan, Hook after_prepare = {});

  // Runs the protocol once. Committed: the new slices, in chain order. Otherwise the error of the
  // step that failed (the transaction was aborted), CONFLICT "was aborted" (the primary had
  // decided abort: a participant's timeout), or UNAVAILABLE when the primary answered neither
  // decision request (committed or not is unknown to this client; the participants settle it).
  boost::asio::awaitable<Result<std::vector<Location>>> run();

 private:
  boost::asio::awaitable<Status> reserve();
  boost::asio::awaitable<Status> write_pieces();
  boost::asio::awaitable<Status> lock_all();
  boost::asio::awaitable<Result<proto::TxDecision>> decide();
  boost::asio::awaitable<void> finish_others();
  boost::asio::awaitable<void> abort();

  TxGroups& groups_;
  TxPlan plan_;
  Hook after_prepare_;
  uint32_t primary_;
  std::set<uint32_t> others_;
  std::vector<Location> fresh_;  // the new slots, once reserved
};

}  // namespace mydfs::client
