#include "proto/messages.h"

namespace mydfs::proto {

bool valid_slot_state(uint16_t s) {
  return s == 0 || s == 100 || s == 200 || s == 301 || s == 404;
}

void SlotMeta::encode(Writer& w) const {
  w.loc(loc);
  w.u16(static_cast<uint16_t>(state));
  w.u64(file_id);
  w.loc(next);
  w.u32(valid_len);
  w.loc(redirect);
  w.u64(txid);
  w.u32(tx_primary);
  w.u64(payload_checksum);
  w.u64(applied_index);
}

void SlotMeta::decode(Reader& r) {
  loc = r.loc();
  uint16_t s = r.u16();
  if (!valid_slot_state(s)) r.fail();
  state = static_cast<SlotState>(s);
  file_id = r.u64();
  next = r.loc();
  valid_len = r.u32();
  redirect = r.loc();
  txid = r.u64();
  tx_primary = r.u32();
  payload_checksum = r.u64();
  applied_index = r.u64();
}

void ReserveResp::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(slots.size()));
  for (const auto& l : slots) w.loc(l);
}
void ReserveResp::decode(Reader& r) {
  uint32_t n = r.count(12, kMaxReserve);
  slots.resize(n);
  for (auto& l : slots) l = r.loc();
}

void WriteSlotReq::encode(Writer& w) const {
  w.loc(loc);
  w.u64(file_id);
  w.loc(next);
  w.u64(checksum);
  w.u16(static_cast<uint16_t>(state));
  w.u64(txid);
  w.u32(tx_primary);
  w.u32(zeros);
}
void WriteSlotReq::decode(Reader& r) {
  loc = r.loc();
  file_id = r.u64();
  next = r.loc();
  checksum = r.u64();
  uint16_t s = r.u16();
  if (s != static_cast<uint16_t>(SlotState::LIVE) && s != static_cast<uint16_t>(SlotState::PREPARED))
    r.fail();
  state = static_cast<SlotState>(s);
  txid = r.u64();
  tx_primary = r.u32();
  zeros = r.u32();
  if (zeros > kPayloadCapacity) r.fail();
}

void WalkResp::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(slices.size()));
  for (const auto& m : slices) m.encode(w);
  w.loc(leaves);
  w.u16(static_cast<uint16_t>(end_code));
  w.loc(end_at);
}
void WalkResp::decode(Reader& r) {
  uint32_t n = r.count(kSlotMetaSize, kMaxWalk);
  slices.resize(n);
  for (auto& m : slices) m.decode(r);
  leaves = r.loc();
  end_code = static_cast<Code>(r.u16());  // unknown codes pass through (newer peers)
  end_at = r.loc();
}

void InfoResp::encode(Writer& w) const {
  w.u32(node_id); w.u32(group_id); w.u32(capacity_slots); w.u32(used_slots);
  w.u32(free_slots); w.u32(high_water); w.u64(used_bytes); w.u64(free_bytes); w.u64(applied_index);
  w.u32(tx_slots); w.u32(tx_decisions);
}
void InfoResp::decode(Reader& r) {
  node_id = r.u32(); group_id = r.u32(); capacity_slots = r.u32(); used_slots = r.u32();
  free_slots = r.u32(); high_water = r.u32(); used_bytes = r.u64(); free_bytes = r.u64(); applied_index = r.u64();
  tx_slots = r.u32(); tx_decisions = r.u32();
}

void encode_ok(Writer& w) { w.u16(0); }

void encode_error(Writer& w, const Error& e) {
  w.u16(static_cast<uint16_t>(e.code == Code::OK ? Code::INTERNAL : e.code));
  w.str(e.message.substr(0, 4096));
  w.str(e.hint.substr(0, 256));
  w.loc(e.target);
}

bool decode_status(Reader& r, Error& err) {
  uint16_t c = r.u16();
  if (!r.ok()) { err = make_error(Code::BAD_REQUEST, "truncated response"); return false; }
  if (c == 0) return true;
  err.code = static_cast<Code>(c);  // a code this build does not know is still an error
  err.message = r.str(4096);
  err.hint = r.str(256);
  err.target = r.loc();
  if (!r.ok()) err = make_error(Code::BAD_REQUEST, "malformed error response");
  return false;
}

}  // namespace mydfs::proto
