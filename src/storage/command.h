// Commands of the group state machine: every slot mutation is one of these, applied in log order.
// The encoding is what the write-ahead log (and later the Raft log) stores; slice data never goes
// inside a command except PATCH bytes, which travel beside it in the same log record.
#pragma once
#include <cstdint>
#include <string>

#include "common/checksum.h"
#include "common/codec.h"
#include "proto/messages.h"

namespace mydfs::storage {

enum class CmdType : uint8_t {
  RESERVE = 1,        // loc (allocated by the leader), file_id  -> PREPARED, empty
  WRITE_SLOT = 2,     // loc, file_id, next, len, checksum, state, txid; payload already in the slot
  PATCH = 3,          // loc, offset, len, checksum; bytes beside the command
  SET_NEXT = 4,       // loc, next
  SET_VALID_LEN = 5,  // loc, len, clear_next
  REDIRECT = 6,       // loc, target
  DELETE = 7,         // loc
  LOCK = 8,           // loc, txid, tx_primary, target (on commit; null = delete)
  TX_DECIDE = 9,      // txid, decision: record it unless decided, finish this group's slots
  TX_FINISH = 10,     // txid, decision: finish this group's slots of the transaction
  TX_FORGET = 11,     // txid: drop the recorded decision
};
constexpr uint8_t kMaxCmdType = 11;

struct Command {
  CmdType type = CmdType::RESERVE;
  Location loc{};
  uint64_t file_id = 0;
  Location next{};
  Location target{};
  uint32_t offset = 0;
  uint32_t len = 0;
  uint64_t checksum = 0;
  proto::SlotState state = proto::SlotState::LIVE;
  uint64_t txid = 0;
  bool clear_next = false;
  uint32_t tx_primary = 0;
  uint64_t expect_applied = 0;  // != 0: CONFLICT unless the slot's applied_index is this
  uint8_t flags = 0;            // PATCH: proto::PatchFlags
  proto::TxDecision decision = proto::TxDecision::NONE;  // TX_DECIDE, TX_FINISH

  void encode(Writer& w) const;
  void decode(Reader& r);
};

std::string_view cmd_name(CmdType t);

// The command of each storage request: the one place that maps a request's fields to a command.
// bulk_len: the bytes that came with the request (the slice, the patch).
Command to_command(const proto::ReserveReq& r);  // loc is chosen by the leader
Command to_command(const proto::WriteSlotReq& r, size_t bulk_len);
// A WRITE_SLOT of a slice of zeros, sent without its bytes (data_len 0): its slot is emptied and
// nothing is written or sent to other members; an empty payload reads as the slice.
inline bool is_hole(const Command& c, size_t data_len) {
  return c.type == CmdType::WRITE_SLOT && data_len == 0 && c.len > 0 && c.checksum == xxh64_zeros(c.len);
}
Command to_command(const proto::PatchReq& r, size_t bulk_len);
Command to_command(const proto::SetNextReq& r);
Command to_command(const proto::SetValidLenReq& r);
Command to_command(const proto::RedirectReq& r);
Command to_command(const proto::DeleteReq& r);
Command to_command(const proto::LockReq& r);
Command to_command(const proto::TxDecideReq& r);  // want != NONE (NONE only asks: a read)
Command to_command(const proto::TxFinishReq& r);
Command to_command(const proto::TxForgetReq& r);

}  // namespace mydfs::storage
