#include "storage/state_machine.h"

#include <fcntl.h>

#include <spdlog/spdlog.h>

#include "common/checksum.h"
#include "common/file_io.h"

namespace mydfs::storage {

namespace {

constexpr uint32_t kDecisionsMagic = 0x5854444D;  // "MDTX"
constexpr const char* kDecisionsFile = "tx-decisions";

Status check_expect(const SlotMeta& m, uint64_t expect_applied) {
  if (expect_applied != 0 && m.applied_index != expect_applied)
    return make_error(Code::CONFLICT, fmt::format("{} changed since it was read (at {}, expected {})", m.loc,
                                                  m.applied_index, expect_applied));
  return ok_status();
}

}  // namespace

SlotMeta tx_result(uint64_t txid, TxDecision d, uint32_t finished) {
  SlotMeta m;
  m.txid = txid;
  m.state = d == TxDecision::COMMIT ? SlotState::LIVE : d == TxDecision::ABORT ? SlotState::DELETED : SlotState::FREE;
  m.valid_len = finished;
  return m;
}

proto::TxDecideResp tx_response(const SlotMeta& m) {
  proto::TxDecideResp r;
  r.decision = m.state == SlotState::LIVE ? TxDecision::COMMIT
               : m.state == SlotState::DELETED ? TxDecision::ABORT : TxDecision::NONE;
  r.finished = m.valid_len;
  return r;
}

Result<SlotMeta> StateMachine::writable(Location loc, uint64_t expect_applied) const {
  MYDFS_ASSIGN(SlotMeta m, store_.resolve(loc));
  if (m.state != SlotState::LIVE && m.state != SlotState::PREPARED)
    return make_error(Code::CONFLICT, fmt::format("{} is not writable in state {}", loc, static_cast<int>(m.state)));
  if (m.txid != 0)
    return make_error(Code::CONFLICT, fmt::format("{} is held by transaction {:016x}", loc, m.txid));
  MYDFS_TRY(check_expect(m, expect_applied));
  return m;
}

Status StateMachine::precheck(const Command& cmd, size_t data_len) const {
  switch (cmd.type) {
    case CmdType::RESERVE:
      return ok_status();
    case CmdType::WRITE_SLOT: {
      MYDFS_ASSIGN(SlotMeta m, store_.resolve(cmd.loc));
      if (m.state != SlotState::PREPARED || m.valid_len != 0 || m.txid != cmd.txid)
        return make_error(Code::CONFLICT, fmt::format("{} was already written or is not reserved for this write", cmd.loc));
      if (m.file_id != cmd.file_id)
        return make_error(Code::CONFLICT, fmt::format("{} is reserved for file {}, not {}", cmd.loc, m.file_id, cmd.file_id));
      if (cmd.len > kPayloadCapacity)
        return make_error(Code::BAD_REQUEST, fmt::format("slice of {} bytes exceeds the slot capacity {}", cmd.len, kPayloadCapacity));
      if (cmd.state == SlotState::PREPARED && cmd.txid == 0)
        return make_error(Code::BAD_REQUEST, "a PREPARED write needs a transaction id");
      if (cmd.state == SlotState::LIVE && cmd.txid != 0)
        return make_error(Code::BAD_REQUEST, "a transaction's slots are written PREPARED");
      if (cmd.state != SlotState::PREPARED && cmd.state != SlotState::LIVE)
        return make_error(Code::BAD_REQUEST, "a slot is written LIVE or PREPARED");
      return ok_status();
    }
    case CmdType::PATCH: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc, cmd.expect_applied));
      if ((cmd.flags & proto::PATCH_NO_EXTEND) && cmd.offset + data_len > m.valid_len)
        return make_error(Code::CONFLICT, fmt::format("{} is shorter than the client thought ({} bytes)", cmd.loc, m.valid_len));
      if (cmd.offset > m.valid_len)
        return make_error(Code::BAD_REQUEST, fmt::format("patch at {} would leave a hole after valid_len {}", cmd.offset, m.valid_len));
      if (data_len > kPayloadCapacity - cmd.offset)
        return make_error(Code::BAD_REQUEST, "patch extends past the slot capacity");
      return ok_status();
    }
    case CmdType::SET_NEXT:
    case CmdType::REDIRECT: {
      if (cmd.type == CmdType::REDIRECT && cmd.target.null())
        return make_error(Code::BAD_REQUEST, "redirect to a null location");
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc, cmd.expect_applied));
      (void)m;
      return ok_status();
    }
    case CmdType::SET_VALID_LEN: {
      MYDFS_ASSIGN(SlotMeta m, writable(cmd.loc, cmd.expect_applied));
      if (cmd.len > m.valid_len)
        return make_error(Code::BAD_REQUEST, fmt::format("valid_len can only shrink ({} > {})", cmd.len, m.valid_len));
      return ok_status();
    }
    case CmdType::DELETE: {
      auto m = store_.resolve(cmd.loc);
      if (!m.ok() && m.code() != Code::REDIRECT) return m.take_error();
      if (m.ok() && m->state == SlotState::LIVE && m->txid != 0)
        return make_error(Code::CONFLICT, fmt::format("{} is held by transaction {:016x}", cmd.loc, m->txid));
      if (m.ok()) MYDFS_TRY(check_expect(*m, cmd.expect_applied));
      return ok_status();
    }
    case CmdType::LOCK: {
      if (cmd.txid == 0) return make_error(Code::BAD_REQUEST, "a lock needs a transaction id");
      MYDFS_ASSIGN(SlotMeta m, store_.resolve(cmd.loc));
      if (m.state != SlotState::LIVE)
        return make_error(Code::CONFLICT, fmt::format("{} holds no committed data to replace", cmd.loc));
      if (m.txid == cmd.txid) return ok_status();  // a retried lock
      if (m.txid != 0)
        return make_error(Code::CONFLICT, fmt::format("{} is held by transaction {:016x}", cmd.loc, m.txid));
      return check_expect(m, cmd.expect_applied);
    }
    case CmdType::TX_DECIDE:
    case CmdType::TX_FINISH:
      if (cmd.txid == 0) return make_error(Code::BAD_REQUEST, "transaction id 0");
      if (cmd.decision != TxDecision::COMMIT && cmd.decision != TxDecision::ABORT)
        return make_error(Code::BAD_REQUEST, "a decision is commit or abort");
      return ok_status();
    case CmdType::TX_FORGET:
      if (cmd.txid == 0) return make_error(Code::BAD_REQUEST, "transaction id 0");
      return ok_status();
  }
  return make_error(Code::BAD_REQUEST, "unknown command");
}

Status StateMachine::admit(const Command& cmd, size_t data_len) const {
  if (cmd.type == CmdType::WRITE_SLOT)  // a hole takes no space
    return cmd.checksum == xxh64_zeros(cmd.len) ? ok_status() : store_.check_space(round_block(cmd.len));
  if (cmd.type != CmdType::PATCH) return ok_status();
  auto m = store_.meta(cmd.loc.slot);
  uint64_t have = m.ok() ? round_block(m->valid_len) : 0;
  uint64_t want = round_block(uint64_t{cmd.offset} + data_len);
  return want > have ? store_.check_space(want - have) : ok_status();
}

Result<SlotMeta> StateMachine::apply(uint64_t index, const Command& cmd, std::span<const std::byte> data,
                                     bool replay) {
  if (cmd.type == CmdType::TX_DECIDE || cmd.type == CmdType::TX_FINISH || cmd.type == CmdType::TX_FORGET)
    return apply_tx(index, cmd);
  std::unique_lock lock(store_.locks().of(cmd.loc.slot));
  return apply_locked(index, cmd, data, replay);
}

Result<SlotMeta> StateMachine::apply_tx(uint64_t index, const Command& cmd) {
  MYDFS_TRY(precheck(cmd, 0));
  TxDecision d = cmd.decision;
  if (cmd.type == CmdType::TX_FORGET) {
    std::lock_guard g(tx_mu_);
    decisions_.erase(cmd.txid);
    return tx_result(cmd.txid, TxDecision::NONE, 0);
  }
  if (cmd.type == CmdType::TX_DECIDE) {
    std::lock_guard g(tx_mu_);
    auto [it, fresh] = decisions_.emplace(cmd.txid, cmd.decision);
    d = it->second;  // the first decision wins
    (void)fresh;
  }
  MYDFS_ASSIGN(uint32_t n, finish(index, cmd.txid, d));
  return tx_result(cmd.txid, d, n);
}

Result<uint32_t> StateMachine::finish(uint64_t index, uint64_t txid, TxDecision d) {
  std::vector<uint32_t> slots;
  {
    std::lock_guard g(tx_mu_);
    if (auto it = tx_slots_.find(txid); it != tx_slots_.end()) slots.assign(it->second.begin(), it->second.end());
  }
  // Readers walk the slot table while this runs, one slot at a time, so the order matters: new
  // slices become LIVE first (still unreachable), then the old first slice redirects to them
  // (the switch), then the other old slices go. A reader never meets a broken chain.
  enum Pass { FRESH, REDIRECTED, DROPPED };
  uint32_t n = 0;
  for (Pass pass : {FRESH, REDIRECTED, DROPPED}) {
    for (uint32_t slot : slots) {
      std::unique_lock lock(store_.locks().of(slot));
      auto cur = store_.meta(slot);
      if (!cur.ok() || cur->txid != txid || cur->applied_index >= index) continue;
      if (cur->state != SlotState::PREPARED && cur->state != SlotState::LIVE) continue;
      bool fresh = cur->state == SlotState::PREPARED;
      Pass mine = fresh ? FRESH : cur->redirect.null() ? DROPPED : REDIRECTED;
      if (mine != pass) continue;
      SlotMeta m = *cur;
      if (d == TxDecision::COMMIT) {
        if (fresh) m.state = SlotState::LIVE;
        else m.state = m.redirect.null() ? SlotState::DELETED : SlotState::REDIRECT;
      } else {
        if (fresh) m.state = SlotState::DELETED;
        else m.redirect = Location{};
      }
      m.txid = 0;
      m.tx_primary = 0;
      m.applied_index = index;
      MYDFS_TRY(store_.put_header(m, PayloadCheck::KEEP));
      track(*cur, m);
      ++n;
    }
  }
  return n;
}

std::optional<SlotMeta> StateMachine::already_written(const Command& cmd) const {
  if (cmd.type != CmdType::WRITE_SLOT) return std::nullopt;
  auto m = store_.resolve(cmd.loc);
  if (!m.ok() || m->state != cmd.state || m->state == SlotState::FREE || m->valid_len != cmd.len ||
      m->payload_checksum != cmd.checksum || !(m->next == cmd.next) || m->file_id != cmd.file_id ||
      m->txid != (cmd.state == SlotState::PREPARED ? cmd.txid : 0))
    return std::nullopt;
  return *m;
}

Result<SlotMeta> StateMachine::apply_locked(uint64_t index, const Command& cmd,
                                            std::span<const std::byte> data, bool replay) {
  if (cmd.loc.group != store_.group() || cmd.loc.slot == 0 || cmd.loc.slot > store_.capacity())
    return make_error(Code::NOT_FOUND, fmt::format("{} is not a slot of this store", cmd.loc));
  MYDFS_ASSIGN(SlotMeta cur, store_.meta(cmd.loc.slot));
  if (cur.applied_index >= index) return cur;  // applied before the crash; replay skips it

  if (cmd.type == CmdType::RESERVE) return apply_reserve(index, cmd, cur);

  if (cmd.type == CmdType::WRITE_SLOT) {
    if (auto same = already_written(cmd)) return *same;
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
    case CmdType::TX_DECIDE:
    case CmdType::TX_FINISH:
    case CmdType::TX_FORGET:
      break;
    case CmdType::WRITE_SLOT:
      MYDFS_TRY(apply_write_slot(cmd, replay, m));
      check = PayloadCheck::VERIFIED;
      break;
    case CmdType::PATCH:
      MYDFS_TRY(apply_patch(cmd, data, cur, m));
      check = replay ? PayloadCheck::UNVERIFIED : PayloadCheck::VERIFIED;
      break;
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
      m.txid = 0;
      m.tx_primary = 0;
      break;
    case CmdType::LOCK:
      m.txid = cmd.txid;
      m.tx_primary = cmd.tx_primary;
      m.redirect = cmd.target;
      break;
  }
  MYDFS_TRY(store_.put_header(m, check));
  track(cur, m);
  return m;
}

Result<SlotMeta> StateMachine::apply_reserve(uint64_t index, const Command& cmd, const SlotMeta& cur) {
  bool reusable = cur.state == SlotState::FREE || cur.state == SlotState::DELETED;
  if (!reusable || cmd.loc.gen != cur.loc.gen + 1)
    return make_error(Code::CONFLICT, fmt::format("{} cannot be reserved (slot at gen {})", cmd.loc, cur.loc.gen));
  SlotMeta m;
  m.loc = cmd.loc;
  m.state = SlotState::PREPARED;
  m.file_id = cmd.file_id;
  m.txid = cmd.txid;
  m.tx_primary = cmd.txid ? cmd.tx_primary : 0;
  m.payload_checksum = xxh64(nullptr, 0);
  m.applied_index = index;
  MYDFS_TRY(store_.put_header(m, PayloadCheck::VERIFIED));
  track(cur, m);
  return m;
}

// The payload is already in place (written beside the command); on replay it must match the
// logged checksum.
Status StateMachine::apply_write_slot(const Command& cmd, bool replay, SlotMeta& m) {
  if (replay) {
    MYDFS_ASSIGN(uint64_t sum, store_.checksum_payload(cmd.loc.slot, cmd.len));
    if (sum != cmd.checksum) {
      spdlog::error("replay: payload of {} does not match its logged checksum", cmd.loc);
      return make_error(Code::CHECKSUM_MISMATCH, fmt::format("payload of {} is damaged", cmd.loc));
    }
  }
  m.state = cmd.state;
  m.next = cmd.next;
  m.valid_len = cmd.len;
  m.payload_checksum = cmd.checksum;
  m.txid = cmd.state == SlotState::PREPARED ? cmd.txid : 0;
  if (m.txid) m.tx_primary = cmd.tx_primary;
  return ok_status();
}

Status StateMachine::apply_patch(const Command& cmd, std::span<const std::byte> data, const SlotMeta& cur, SlotMeta& m) {
  if (xxh64(data) != cmd.checksum) return make_error(Code::CHECKSUM_MISMATCH, "patch bytes do not match their checksum");
  MYDFS_TRY(store_.write_payload(cmd.loc.slot, cmd.offset, data));
  m.valid_len = std::max<uint32_t>(cur.valid_len, cmd.offset + static_cast<uint32_t>(data.size()));
  if (cmd.offset == 0 && data.size() == m.valid_len) {
    m.payload_checksum = cmd.checksum;
  } else {
    MYDFS_ASSIGN(m.payload_checksum, store_.checksum_payload(cmd.loc.slot, m.valid_len));
  }
  if (cmd.flags & proto::PATCH_SET_NEXT) m.next = cmd.next;
  return ok_status();
}

TxDecision StateMachine::decision(uint64_t txid) const {
  std::lock_guard g(tx_mu_);
  auto it = decisions_.find(txid);
  return it == decisions_.end() ? TxDecision::NONE : it->second;
}

std::map<uint64_t, TxDecision> StateMachine::decisions() const {
  std::lock_guard g(tx_mu_);
  return decisions_;
}

void StateMachine::set_decisions(std::map<uint64_t, TxDecision> d) {
  std::lock_guard g(tx_mu_);
  decisions_ = std::move(d);
}

Status StateMachine::install(const SlotMeta& m, std::span<const std::byte> payload) {
  std::unique_lock lk(store_.locks().of(m.loc.slot));
  auto before = store_.meta(m.loc.slot);
  SlotMeta old = before.ok() ? *before : SlotMeta{};
  if (!payload.empty()) MYDFS_TRY(store_.write_slice(m.loc.slot, payload));
  MYDFS_TRY(store_.put_header(m, PayloadCheck::UNVERIFIED));
  track(old, m);
  return ok_status();
}

size_t StateMachine::decision_count() const {
  std::lock_guard g(tx_mu_);
  return decisions_.size();
}

namespace {
bool holds(const SlotMeta& m) {
  return m.txid != 0 && (m.state == SlotState::PREPARED || m.state == SlotState::LIVE);
}
}  // namespace

StateMachine::StateMachine(SliceStore& store) : store_(store) {
  // The index of transaction slots starts from the headers (the state at the checkpoint); replay
  // and every later apply keep it current through track().
  uint32_t top = std::min(store_.high_water(), store_.capacity() + 1);
  for (uint32_t slot = 1; slot < top; ++slot) {
    auto m = store_.meta(slot);
    if (m.ok() && holds(*m)) track(SlotMeta{}, *m);
  }
}

void StateMachine::track(const SlotMeta& before, const SlotMeta& after) {
  if (!holds(before) && !holds(after)) return;
  std::lock_guard g(tx_mu_);
  if (holds(before)) {
    auto it = tx_slots_.find(before.txid);
    if (it != tx_slots_.end()) {
      it->second.erase(after.loc.slot);
      if (it->second.empty()) {
        tx_slots_.erase(it);
        tx_primary_.erase(before.txid);
      }
    }
  }
  if (holds(after)) {
    tx_slots_[after.txid].insert(after.loc.slot);
    tx_primary_[after.txid] = after.tx_primary;
  }
}

std::map<uint64_t, uint32_t> StateMachine::pending_transactions() const {
  std::lock_guard g(tx_mu_);
  return tx_primary_;
}

uint32_t StateMachine::pending_slots() const {
  std::lock_guard g(tx_mu_);
  size_t n = 0;
  for (const auto& [txid, slots] : tx_slots_) n += slots.size();
  return static_cast<uint32_t>(n);
}

// tx-decisions: u32 magic, u32 count, count x {u64 txid, u8 decision}, u64 xxHash64 of the rest.
Status StateMachine::save_decisions(const std::string& dir) const {
  Writer w;
  {
    std::lock_guard g(tx_mu_);
    w.u32(kDecisionsMagic);
    w.u32(static_cast<uint32_t>(decisions_.size()));
    for (auto [txid, d] : decisions_) {
      w.u64(txid);
      w.u8(static_cast<uint8_t>(d));
    }
  }
  w.u64(xxh64(w.data().data(), w.size()));
  return write_file_atomic(dir + "/" + kDecisionsFile, std::as_bytes(std::span(w.data())));
}

Status StateMachine::load_decisions(const std::string& dir) {
  std::string path = dir + "/" + kDecisionsFile;
  auto f = File::open(path, O_RDONLY);
  if (!f.ok()) {
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return ok_status();  // none yet
    return f.take_error();
  }
  MYDFS_ASSIGN(uint64_t size, (*f)->size());
  if (size > (64u << 20)) return make_error(Code::CORRUPT, fmt::format("{} is implausibly large", path));
  std::string bytes(size, '\0');
  MYDFS_TRY((*f)->pread_all(0, std::as_writable_bytes(std::span(bytes))));
  Reader r(bytes);
  uint32_t magic = r.u32();
  uint32_t n = r.count(9, 1u << 24);
  std::map<uint64_t, TxDecision> table;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    uint64_t txid = r.u64();
    uint8_t d = r.u8();
    if (d < 1 || d > 2) r.fail();
    table[txid] = static_cast<TxDecision>(d);
  }
  size_t body = bytes.size() - std::min<size_t>(bytes.size(), 8);
  uint64_t sum = r.u64();
  if (!r.done() || magic != kDecisionsMagic || sum != xxh64(bytes.data(), body))
    return make_error(Code::CORRUPT, fmt::format("{} is damaged; the transaction decisions cannot be trusted", path));
  std::lock_guard g(tx_mu_);
  decisions_ = std::move(table);
  return ok_status();
}

}  // namespace mydfs::storage
