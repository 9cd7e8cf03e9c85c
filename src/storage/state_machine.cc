#include "storage/state_machine.h"

#include <mutex>

#include <spdlog/spdlog.h>

#include "common/checksum.h"

namespace mydfs::storage {

Result<SlotMeta> StateMachine::writable(Location loc) const {
  MYDFS_ASSIGN(SlotMeta m, store_.resolve(loc));
  if (m.state != SlotState::LIVE && m.state != SlotState::PREPARED)
    return make_error(Code::CONFLICT, fmt::format("{} is not writable in state {}", loc, static_cast<int>(m.state)));
  return m;
}

Status StateMachine::precheck(const Command& cmd, size_t data_len) const {
  switch (cmd.type) {
    case CmdType::RESERVE:
      return ok_status();
    case CmdType::WRITE_SLOT: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc));
      if (m.state != SlotState::PREPARED || m.txid != 0 || m.valid_len != 0)
        return make_error(Code::CONFLICT, fmt::format("{} was already written", cmd.loc));
      if (m.file_id != cmd.file_id)
        return make_error(Code::CONFLICT, fmt::format("{} is reserved for file {}, not {}", cmd.loc, m.file_id, cmd.file_id));
      if (cmd.len > kPayloadCapacity)
        return make_error(Code::BAD_REQUEST, fmt::format("slice of {} bytes exceeds the slot capacity {}", cmd.len, kPayloadCapacity));
      if (cmd.state == SlotState::PREPARED && cmd.txid == 0)
        return make_error(Code::BAD_REQUEST, "a PREPARED write needs a transaction id");
      if (cmd.state != SlotState::PREPARED && cmd.state != SlotState::LIVE)
        return make_error(Code::BAD_REQUEST, "a slot is written LIVE or PREPARED");
      return ok_status();
    }
    case CmdType::PATCH: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc));
      if (cmd.offset > m.valid_len)
        return make_error(Code::BAD_REQUEST, fmt::format("patch at {} would leave a hole after valid_len {}", cmd.offset, m.valid_len));
      if (data_len > kPayloadCapacity - cmd.offset)
        return make_error(Code::BAD_REQUEST, "patch extends past the slot capacity");
      return ok_status();
    }
    case CmdType::SET_NEXT: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc));
      (void)m;
      return ok_status();
    }
    case CmdType::SET_VALID_LEN: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc));
      if (cmd.len > m.valid_len)
        return make_error(Code::BAD_REQUEST, fmt::format("valid_len can only shrink ({} > {})", cmd.len, m.valid_len));
      return ok_status();
    }
    case CmdType::REDIRECT: {
      if (cmd.target.null()) return make_error(Code::BAD_REQUEST, "redirect to a null location");
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc));
      (void)m;
      return ok_status();
    }
    case CmdType::DELETE: {
      auto m = store_.resolve(cmd.loc);
      if (!m.ok() && m.code() != Code::REDIRECT) return m.take_error();
      return ok_status();
    }
  }
  return make_error(Code::BAD_REQUEST, "unknown command");
}

Result<SlotMeta> StateMachine::apply(uint64_t index, const Command& cmd, std::span<const std::byte> data,
                                     bool replay) {
  std::unique_lock lock(store_.locks().of(cmd.loc.slot));
  return apply_locked(index, cmd, data, replay);
}

Result<SlotMeta> StateMachine::apply_locked(uint64_t index, const Command& cmd,
                                            std::span<const std::byte> data, bool replay) {
  if (cmd.loc.group != store_.group() || cmd.loc.slot == 0 || cmd.loc.slot > store_.capacity())
    return make_error(Code::NOT_FOUND, fmt::format("{} is not a slot of this store", cmd.loc));
  MYDFS_ASSIGN(SlotMeta cur, store_.meta(cmd.loc.slot));
  if (cur.applied_index >= index) return cur;  // applied before the crash; replay skips it

  if (cmd.type == CmdType::RESERVE) {
    bool reusable = cur.state == SlotState::FREE || cur.state == SlotState::DELETED;
    if (!reusable || cmd.loc.gen != cur.loc.gen + 1)
      return make_error(Code::CONFLICT, fmt::format("{} cannot be reserved (slot at gen {})", cmd.loc, cur.loc.gen));
    SlotMeta m;
    m.loc = cmd.loc;
    m.state = SlotState::PREPARED;
    m.file_id = cmd.file_id;
    m.payload_checksum = xxh64(nullptr, 0);
    m.applied_index = index;
    MYDFS_TRY(store_.put_header(m, PayloadCheck::VERIFIED));
    return m;
  }

  MYDFS_TRY(precheck(cmd, data.size()));
  SlotMeta m = cur;
  m.applied_index = index;
  PayloadCheck check = PayloadCheck::KEEP;
  bool rewrites_payload = cmd.type == CmdType::PATCH ||
                          (cmd.type == CmdType::SET_VALID_LEN && cmd.len != cur.valid_len);
  if (rewrites_payload && !replay) {
    // The new checksum is computed over old bytes too: make sure they are good first, so damage
    // is never blessed with a fresh checksum. (Replay skips this: a torn earlier attempt of this
    // very command may be in the payload, and redoing the command overwrites it.)
    MYDFS_TRY(store_.verify(cmd.loc.slot));
  }
  switch (cmd.type) {
    case CmdType::RESERVE:
      break;
    case CmdType::WRITE_SLOT:
      if (replay) {
        MYDFS_ASSIGN(uint64_t sum, store_.checksum_payload(cmd.loc.slot, cmd.len));
        if (sum != cmd.checksum) {
          spdlog::error("replay: payload of {} does not match its logged checksum", cmd.loc);
          return make_error(Code::CHECKSUM_MISMATCH, fmt::format("payload of {} is damaged", cmd.loc));
        }
      }
      check = PayloadCheck::VERIFIED;
      m.state = cmd.state;
      m.next = cmd.next;
      m.valid_len = cmd.len;
      m.payload_checksum = cmd.checksum;
      m.txid = cmd.state == SlotState::PREPARED ? cmd.txid : 0;
      break;
    case CmdType::PATCH: {
      if (xxh64(data) != cmd.checksum)
        return make_error(Code::CHECKSUM_MISMATCH, "patch bytes do not match their checksum");
      MYDFS_TRY(store_.write_payload(cmd.loc.slot, cmd.offset, data));
      m.valid_len = std::max<uint32_t>(cur.valid_len, cmd.offset + static_cast<uint32_t>(data.size()));
      if (cmd.offset == 0 && data.size() == m.valid_len) {
        m.payload_checksum = cmd.checksum;
      } else {
        MYDFS_ASSIGN(m.payload_checksum, store_.checksum_payload(cmd.loc.slot, m.valid_len));
      }
      check = replay ? PayloadCheck::UNVERIFIED : PayloadCheck::VERIFIED;
      break;
    }
    case CmdType::SET_NEXT:
      m.next = cmd.next;
      break;
    case CmdType::SET_VALID_LEN:
      if (cmd.len != cur.valid_len) {
        MYDFS_ASSIGN(m.payload_checksum, store_.checksum_payload(cmd.loc.slot, cmd.len));
        check = replay ? PayloadCheck::UNVERIFIED : PayloadCheck::VERIFIED;
      }
      m.valid_len = cmd.len;
      if (cmd.clear_next) m.next = Location{};
      break;
    case CmdType::REDIRECT:
      m.state = SlotState::REDIRECT;
      m.redirect = cmd.target;
      break;
    case CmdType::DELETE:
      m.state = SlotState::DELETED;
      break;
  }
  MYDFS_TRY(store_.put_header(m, check));
  return m;
}

}  // namespace mydfs::storage
