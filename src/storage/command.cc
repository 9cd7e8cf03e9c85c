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
  }
  return "unknown";
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
}

void Command::decode(Reader& r) {
  uint8_t t = r.u8();
  if (t < 1 || t > 7) r.fail();
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
}

}  // namespace mydfs::storage
