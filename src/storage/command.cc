#include "storage/command.h"

namespace mydfs::storage {

std::string_view cmd_name(CmdType t) {
  switch (t) {
    case CmdType::RESERVE: return "reserve";
    case CmdType::WRITE_SLOT: return "write_slot";
    case CmdType::PATCH: return "patch";
    case CmdType::SET_NEXT: return "set_next";
    case CmdType::SET_VALID_LEN: return "set_valid_len";
    case CmdType::REDIRECT: return "redirect";
    case CmdType::DELETE: return "delete";
    case CmdType::LOCK: return "lock";
    case CmdType::TX_DECIDE: return "tx_decide";
    case CmdType::TX_FINISH: return "tx_finish";
    case CmdType::TX_FORGET: return "tx_forget";
  }
  return "unknown";
}

// Each request's one mapping to its command (fields in declaration order).
Command to_command(const proto::ReserveReq& r) {
  return Command{.type = CmdType::RESERVE, .file_id = r.file_id, .txid = r.txid, .tx_primary = r.tx_primary};
}

Command to_command(const proto::WriteSlotReq& r, size_t bulk_len) {
  return Command{.type = CmdType::WRITE_SLOT, .loc = r.loc, .file_id = r.file_id, .next = r.next,
                 .len = static_cast<uint32_t>(bulk_len), .checksum = r.checksum, .state = r.state, .txid = r.txid,
                 .tx_primary = r.tx_primary};
}

Command to_command(const proto::PatchReq& r, size_t bulk_len) {
  return Command{.type = CmdType::PATCH, .loc = r.loc, .next = r.next, .offset = r.offset,
                 .len = static_cast<uint32_t>(bulk_len), .checksum = r.checksum, .expect_applied = r.expect_applied,
                 .flags = r.flags};
}

Command to_command(const proto::SetNextReq& r) {
  return Command{.type = CmdType::SET_NEXT, .loc = r.loc, .next = r.next, .expect_applied = r.expect_applied};
}

Command to_command(const proto::SetValidLenReq& r) {
  return Command{.type = CmdType::SET_VALID_LEN, .loc = r.loc, .len = r.valid_len, .clear_next = r.clear_next,
                 .expect_applied = r.expect_applied};
}

Command to_command(const proto::RedirectReq& r) {
  return Command{.type = CmdType::REDIRECT, .loc = r.loc, .target = r.target};
}

Command to_command(const proto::DeleteReq& r) {
  return Command{.type = CmdType::DELETE, .loc = r.loc, .expect_applied = r.expect_applied};
}

Command to_command(const proto::LockReq& r) {
  return Command{.type = CmdType::LOCK, .loc = r.loc, .target = r.on_commit, .txid = r.txid,
                 .tx_primary = r.tx_primary, .expect_applied = r.expect_applied};
}

Command to_command(const proto::TxDecideReq& r) {
  return Command{.type = CmdType::TX_DECIDE, .txid = r.txid, .decision = r.want};
}

Command to_command(const proto::TxFinishReq& r) {
  return Command{.type = CmdType::TX_FINISH, .txid = r.txid,
                 .decision = r.commit ? proto::TxDecision::COMMIT : proto::TxDecision::ABORT};
}

Command to_command(const proto::TxForgetReq& r) { return Command{.type = CmdType::TX_FORGET, .txid = r.txid}; }

void Command::encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(type));
  w.loc(loc);
  w.u64(file_id);
  w.loc(next);
  w.loc(target);
  w.u32(offset);
  w.u32(len);
  w.u64(checksum);
  w.u16(static_cast<uint16_t>(state));
  w.u64(txid);
  w.boolean(clear_next);
  w.u32(tx_primary);
  w.u64(expect_applied);
  w.u8(flags);
  w.u8(static_cast<uint8_t>(decision));
}

void Command::decode(Reader& r) {
  uint8_t t = r.u8();
  if (t < 1 || t > kMaxCmdType) r.fail();
  type = static_cast<CmdType>(t);
  loc = r.loc();
  file_id = r.u64();
  next = r.loc();
  target = r.loc();
  offset = r.u32();
  len = r.u32();
  checksum = r.u64();
  uint16_t s = r.u16();
  if (!proto::valid_slot_state(s)) r.fail();
  state = static_cast<proto::SlotState>(s);
  txid = r.u64();
  clear_next = r.boolean();
  tx_primary = r.u32();
  expect_applied = r.u64();
  flags = r.u8();
  uint8_t d = r.u8();
  if (d > 2 || (flags & ~3u)) r.fail();
  decision = static_cast<proto::TxDecision>(d);
}

}  // namespace mydfs::storage
