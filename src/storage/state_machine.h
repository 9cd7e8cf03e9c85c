// The group state machine: applies slot commands to the SliceStore in log order. Deterministic:
// the same commands applied to the same store state give the same store state and results, on
// every replica. Idempotent: a command whose index is not above the slot's applied_index is
// skipped, so replay after a crash can start anywhere at or before the last checkpoint.
//
// Transactions (client-coordinated two-phase commit, docs/ARCHITECTURE.md "Edits"): a
// transaction's slots carry its txid in their headers — new slots PREPARED (invisible), old
// slots LIVE but locked against edits. The primary participant keeps the table of decisions
// (txid -> commit/abort), saved beside the log at every checkpoint; TX_DECIDE records a decision
// (the first one wins) and finishes the primary's own slots in the same command, so the switch
// to the new content is one atomic step on one group.
#pragma once
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "common/result.h"
#include "storage/command.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

using proto::TxDecision;

class StateMachine {
 public:
  explicit StateMachine(SliceStore& store);

  // Checks a command against the current state (before it is logged). data_len: bytes beside it.
  Status precheck(const Command& cmd, size_t data_len) const;
  // NO_SPACE if the disk has no room for what the command adds (a new slice's blocks, a patch's
  // growth). Only before a command is logged: an applied command never fails for space.
  Status admit(const Command& cmd, size_t data_len) const;

  // A WRITE_SLOT whose effect the slot already shows (the same bytes, state and links): a client
  // that lost the answer and sent it again. Answered with the slot as it is.
  std::optional<SlotMeta> already_written(const Command& cmd) const;

  // Applies cmd, logged at index. data: PATCH bytes. replay: the command is being re-applied
  // after a restart, so WRITE_SLOT re-verifies the payload it finds in the slot. Transaction
  // commands (TX_*) answer in the form of tx_result().
  Result<SlotMeta> apply(uint64_t index, const Command& cmd, std::span<const std::byte> data, bool replay);

  // The recorded decision of txid, NONE if there is none.
  TxDecision decision(uint64_t txid) const;
  size_t decision_count() const;
  // Unfinished transactions with slots here: txid -> the group that decides it.
  std::map<uint64_t, uint32_t> pending_transactions() const;
  uint32_t pending_slots() const;

  // Rebuilding from another member: the decision table as a whole, and one slot's header and
  // bytes as that member has them (the transaction index follows).
  std::map<uint64_t, TxDecision> decisions() const;
  void set_decisions(std::map<uint64_t, TxDecision> d);
  Status install(const SlotMeta& m, std::span<const std::byte> payload);

  // The decision table, kept beside the log: saved at every checkpoint, loaded before replay.
  Status save_decisions(const std::string& dir) const;
  Status load_decisions(const std::string& dir);

 private:
  Result<SlotMeta> apply_locked(uint64_t index, const Command& cmd, std::span<const std::byte> data, bool replay);
  // The pieces of apply_locked with more to them than setting fields of the header m.
  Result<SlotMeta> apply_reserve(uint64_t index, const Command& cmd, const SlotMeta& cur);
  Status apply_write_slot(const Command& cmd, bool replay, SlotMeta& m);
  Status apply_patch(const Command& cmd, std::span<const std::byte> data, const SlotMeta& cur, SlotMeta& m);
  Result<SlotMeta> apply_tx(uint64_t index, const Command& cmd);
  // Commits or aborts every slot of txid here; returns how many it changed.
  Result<uint32_t> finish(uint64_t index, uint64_t txid, TxDecision d);
  // resolve() plus: the slot holds data (LIVE or PREPARED) and no transaction holds it.
  Result<SlotMeta> writable(Location loc, uint64_t expect_applied) const;

  // Keeps the index of transaction slots in step with a header change.
  void track(const SlotMeta& before, const SlotMeta& after);

  SliceStore& store_;
  mutable std::mutex tx_mu_;
  std::map<uint64_t, TxDecision> decisions_;
  std::map<uint64_t, std::set<uint32_t>> tx_slots_;  // txid -> slots it holds here
  std::map<uint64_t, uint32_t> tx_primary_;          // txid -> its primary group
};

// The answer of a transaction command, carried in a SlotMeta: txid, state LIVE = committed,
// DELETED = aborted, FREE = undecided, valid_len = slots finished by the command.
SlotMeta tx_result(uint64_t txid, TxDecision d, uint32_t finished);
proto::TxDecideResp tx_response(const SlotMeta& m);

}  // namespace mydfs::storage
