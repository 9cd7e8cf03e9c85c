// The group state machine: applies slot commands to the SliceStore in log order. Deterministic:
// the same commands applied to the same store state give the same store state and results, on
// every replica. Idempotent: a command whose index is not above the slot's applied_index is
// skipped, so replay after a crash can start anywhere at or before the last checkpoint.
#pragma once
#include <span>

#include "common/result.h"
#include "storage/command.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

class StateMachine {
 public:
  explicit StateMachine(SliceStore& store) : store_(store) {}

  // Checks a command against the current state (before it is logged). data_len: bytes beside it.
  Status precheck(const Command& cmd, size_t data_len) const;

  // Applies cmd, logged at index. data: PATCH bytes. replay: the command is being re-applied
  // after a restart, so WRITE_SLOT re-verifies the payload it finds in the slot.
  Result<SlotMeta> apply(uint64_t index, const Command& cmd, std::span<const std::byte> data, bool replay);

 private:
  Result<SlotMeta> apply_locked(uint64_t index, const Command& cmd, std::span<const std::byte> data, bool replay);
  // resolve() plus: the slot must hold data (LIVE or PREPARED).
  Result<SlotMeta> writable(Location loc) const;
  SliceStore& store_;
};

}  // namespace mydfs::storage
