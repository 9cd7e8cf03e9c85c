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

namespace {
Command on_slot(CmdType type, Location loc) {
  Command c;
  c.type = type;
  c.loc = loc;
  return c;
}
Command on_tx(CmdType type, uint64_t txid) {
  Command c;
  c.type = type;
  c.txid = txid;
  return c;
}
}  // namespace

Command to_command(const proto::ReserveReq& r) {
  Command c;
  c.type = CmdType::RESERVE;
  c.file_id = r.file_id;
  c.txid = r.txid;
  c.tx_primary = r.tx_primary;
  return c;
}

Command to_command(const proto::WriteSlotReq& r, size_t bulk_len) {
  Command c = on_slot(CmdType::WRITE_SLOT, r.loc);
  c.file_id = r.file_id;
  c.next = r.next;
  c.len = static_cast<uint32_t>(bulk_len);
  c.checksum = r.checksum;
  c.state = r.state;
  c.txid = r.txid;
  c.tx_primary = r.tx_primary;
  return c;
}

Command to_command(const proto::PatchReq& r, size_t bulk_len) {
  Command c = on_slot(CmdType::PATCH, r.loc);
  c.offset = r.offset;
  c.len = static_cast<uint32_t>(bulk_len);
  c.checksum = r.checksum;
  c.expect_applied = r.expect_applied;
  c.flags = r.flags;
  c.next = r.next;
  return c;
}

Command to_command(const proto::SetNextReq& r) {
  Command c = on_slot(CmdType::SET_NEXT, r.loc);
  c.next = r.next;
  c.expect_applied = r.expect_applied;
  return c;
}

Command to_command(const proto::SetValidLenReq& r) {
  Command c = on_slot(CmdType::SET_VALID_LEN, r.loc);
  c.len = r.valid_len;
  c.clear_next = r.clear_next;
  c.expect_applied = r.expect_applied;
  return c;
}

Command to_command(const proto::RedirectReq& r) {
  Command c = on_slot(CmdType::REDIRECT, r.loc);
  c.target = r.target;
  return c;
}

Command to_command(const proto::DeleteReq& r) {
  Command c = on_slot(CmdType::DELETE, r.loc);
  c.expect_applied = r.expect_applied;
  return c;
}

Command to_command(const proto::LockReq& r) {
  Command c = on_slot(CmdType::LOCK, r.loc);
  c.txid = r.txid;
  c.tx_primary = r.tx_primary;
  c.expect_applied = r.expect_applied;
  c.target = r.on_commit;
  return c;
}

Command to_command(const proto::TxDecideReq& r) {
  Command c = on_tx(CmdType::TX_DECIDE, r.txid);
  c.decision = r.want;
  return c;
}

Command to_command(const proto::TxFinishReq& r) {
  Command c = on_tx(CmdType::TX_FINISH, r.txid);
  c.decision = r.commit ? proto::TxDecision::COMMIT : proto::TxDecision::ABORT;
  return c;
}

Command to_command(const proto::TxForgetReq& r) {
  Command c = on_tx(CmdType::TX_FORGET, r.txid);
  return c;
}

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
