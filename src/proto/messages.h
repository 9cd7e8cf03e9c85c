// Messages of the storage service. Each request names its method id (fixed forever, never reused)
// and its response type. A response payload is: u16 status, then on error an error body
// (message, and the hint or redirect target), on OK the response message. docs/PROTOCOL.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/codec.h"
#include "common/location.h"

namespace mydfs::proto {

// The sizes every party agrees on: a slice holds at most kPayloadCapacity bytes, and takes on
// disk only the 4 KiB blocks its data needs (its header lives in a table; docs/ON-DISK.md).
constexpr uint64_t kSlotSize = 4u << 20;
constexpr uint32_t kPayloadCapacity = kSlotSize;  // 4 MiB

enum class Method : uint16_t {
  PING = 0x0001,
  // storage: mutations (commands of the group state machine)
  RESERVE = 0x0101,
  WRITE_SLOT = 0x0102,
  PATCH = 0x0103,
  SET_NEXT = 0x0104,
  SET_VALID_LEN = 0x0105,
  REDIRECT = 0x0106,
  DELETE = 0x0107,
  LOCK = 0x0108,
  // storage: transactions (client-coordinated two-phase commit)
  TX_DECIDE = 0x0120,
  TX_FINISH = 0x0121,
  TX_FORGET = 0x0122,
  // storage: Raft between the members of a group
  RAFT_MESSAGE = 0x0130,
  SLICE_PUSH = 0x0131,   // leader -> follower: a slice's bytes, before its WRITE_SLOT is proposed
  SLICE_FETCH = 0x0132,  // member -> member: the bytes of a WRITE_SLOT entry it missed
  SNAPSHOT_BEGIN = 0x0133,  // member -> member: start copying its state (applied index, decisions)
  SLOT_COPY = 0x0134,       // member -> member: one slot's header and bytes, as they are now
  MEMBER_CHANGE = 0x0135,   // admin -> leader: add or remove one member of the group
  // storage: reads
  READ = 0x0110,
  STAT = 0x0111,
  WALK = 0x0112,
  INFO = 0x0113,
  // tracker (proto/tracker_messages.h)
  NS_READ = 0x0201,
  NS_WRITE = 0x0202,
  ALLOCATE = 0x0203,
  HEARTBEAT = 0x0210,
  ADD_GROUP = 0x0211,
  CLUSTER_STATUS = 0x0212,
  REPLACE_MEMBER = 0x0213,
};

// Slot states, numbered as in the original design.
enum class SlotState : uint16_t {
  FREE = 0,
  PREPARED = 100,  // reserved or written but invisible (owned by an upload or a transaction)
  LIVE = 200,
  REDIRECT = 301,
  DELETED = 404,
};
bool valid_slot_state(uint16_t s);

// What a slot header says, as the server reports it (the on-disk form is storage/slot_format.h).
struct SlotMeta {
  Location loc;                 // this slot (group, slot, gen)
  SlotState state = SlotState::FREE;
  uint64_t file_id = 0;         // inode of the owning file, 0 if none
  Location next;                // next slice of the chain, null at the tail
  uint32_t valid_len = 0;       // payload bytes that belong to the file
  Location redirect;            // REDIRECT: where the content went
  uint64_t txid = 0;            // PREPARED by a transaction, or LIVE and locked by one: its id
  uint32_t tx_primary = 0;      // txid != 0: the group that decides the transaction
  uint64_t payload_checksum = 0;  // xxHash64 of the valid_len payload bytes
  uint64_t applied_index = 0;   // log index of the last command applied to this slot

  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const SlotMeta&, const SlotMeta&) = default;
};

constexpr size_t kSlotMetaSize = 78;  // encoded size of a SlotMeta

struct PingResp {
  uint32_t node_id = 0;
  uint32_t group_id = 0;
  void encode(Writer& w) const { w.u32(node_id); w.u32(group_id); }
  void decode(Reader& r) { node_id = r.u32(); group_id = r.u32(); }
};
struct PingReq {
  static constexpr Method kMethod = Method::PING;
  using Response = PingResp;
  void encode(Writer&) const {}
  void decode(Reader&) {}
};

struct SlotResp {
  SlotMeta meta;
  void encode(Writer& w) const { meta.encode(w); }
  void decode(Reader& r) { meta.decode(r); }
};

constexpr uint32_t kMaxReserve = 1024;
struct ReserveResp {
  std::vector<Location> slots;
  void encode(Writer& w) const;
  void decode(Reader& r);
};
// Reserve count slots for file_id: each comes back PREPARED with a fresh gen, ready for WRITE_SLOT.
// With txid the slots belong to that transaction (an abort, or its timeout, frees them).
struct ReserveReq {
  static constexpr Method kMethod = Method::RESERVE;
  using Response = ReserveResp;
  uint64_t file_id = 0;
  uint32_t count = 1;
  uint64_t txid = 0;
  uint32_t tx_primary = 0;
  void encode(Writer& w) const { w.u64(file_id); w.u32(count); w.u64(txid); w.u32(tx_primary); }
  void decode(Reader& r) { file_id = r.u64(); count = r.u32(); txid = r.u64(); tx_primary = r.u32(); }
};

// Fill a reserved slot with bulk (valid_len bytes); state LIVE or PREPARED (with txid).
struct WriteSlotReq {
  static constexpr Method kMethod = Method::WRITE_SLOT;
  using Response = SlotResp;
  Location loc;
  uint64_t file_id = 0;
  Location next;
  uint64_t checksum = 0;  // xxHash64 of the bulk
  SlotState state = SlotState::LIVE;
  uint64_t txid = 0;
  uint32_t tx_primary = 0;
  // Non-zero: the slice is this many zero bytes and travels without a bulk (a hole; checksum is
  // still xxHash64 of those bytes). It takes no space on disk.
  uint32_t zeros = 0;
  void encode(Writer& w) const;
  void decode(Reader& r);
};

// Conditions and options shared by the edit commands. expect_applied != 0: the slot's
// applied_index must still be that value (nothing changed it since the client read it), else
// CONFLICT. A slot locked by a transaction answers CONFLICT to every edit.
enum PatchFlags : uint8_t {
  PATCH_NO_EXTEND = 1,  // the bytes must lie inside valid_len (CONFLICT otherwise)
  PATCH_SET_NEXT = 2,   // also set the next pointer, in the same command (an append's commit)
};

// Overwrite bulk bytes at offset of a LIVE/PREPARED slot; may extend valid_len (no holes).
struct PatchReq {
  static constexpr Method kMethod = Method::PATCH;
  using Response = SlotResp;
  Location loc;
  uint32_t offset = 0;
  uint64_t checksum = 0;  // xxHash64 of the bulk
  uint64_t expect_applied = 0;
  uint8_t flags = 0;      // PatchFlags
  Location next;          // PATCH_SET_NEXT
  void encode(Writer& w) const { w.loc(loc); w.u32(offset); w.u64(checksum); w.u64(expect_applied); w.u8(flags); w.loc(next); }
  void decode(Reader& r) {
    loc = r.loc(); offset = r.u32(); checksum = r.u64(); expect_applied = r.u64(); flags = r.u8(); next = r.loc();
    if (flags & ~3u) r.fail();
  }
};

struct SetNextReq {
  static constexpr Method kMethod = Method::SET_NEXT;
  using Response = SlotResp;
  Location loc;
  Location next;
  uint64_t expect_applied = 0;
  void encode(Writer& w) const { w.loc(loc); w.loc(next); w.u64(expect_applied); }
  void decode(Reader& r) { loc = r.loc(); next = r.loc(); expect_applied = r.u64(); }
};

// Shrink valid_len; with clear_next the slot also becomes the tail (a truncate in one command).
struct SetValidLenReq {
  static constexpr Method kMethod = Method::SET_VALID_LEN;
  using Response = SlotResp;
  Location loc;
  uint32_t valid_len = 0;
  bool clear_next = false;
  uint64_t expect_applied = 0;
  void encode(Writer& w) const { w.loc(loc); w.u32(valid_len); w.boolean(clear_next); w.u64(expect_applied); }
  void decode(Reader& r) { loc = r.loc(); valid_len = r.u32(); clear_next = r.boolean(); expect_applied = r.u64(); }
};

struct RedirectReq {
  static constexpr Method kMethod = Method::REDIRECT;
  using Response = SlotResp;
  Location loc;
  Location target;
  void encode(Writer& w) const { w.loc(loc); w.loc(target); }
  void decode(Reader& r) { loc = r.loc(); target = r.loc(); }
};

struct DeleteReq {
  static constexpr Method kMethod = Method::DELETE;
  using Response = SlotResp;
  Location loc;
  uint64_t expect_applied = 0;
  void encode(Writer& w) const { w.loc(loc); w.u64(expect_applied); }
  void decode(Reader& r) { loc = r.loc(); expect_applied = r.u64(); }
};

// Prepare of an old slot in a transaction: the LIVE slot stays readable with its old content but
// refuses every edit until the transaction ends. On commit it becomes REDIRECT -> on_commit, or
// DELETED if on_commit is null; on abort it is unlocked unchanged.
struct LockReq {
  static constexpr Method kMethod = Method::LOCK;
  using Response = SlotResp;
  Location loc;
  uint64_t txid = 0;
  uint32_t tx_primary = 0;
  uint64_t expect_applied = 0;
  Location on_commit;
  void encode(Writer& w) const { w.loc(loc); w.u64(txid); w.u32(tx_primary); w.u64(expect_applied); w.loc(on_commit); }
  void decode(Reader& r) { loc = r.loc(); txid = r.u64(); tx_primary = r.u32(); expect_applied = r.u64(); on_commit = r.loc(); }
};

enum class TxDecision : uint8_t { NONE = 0, COMMIT = 1, ABORT = 2 };
struct TxDecideResp {
  TxDecision decision = TxDecision::NONE;
  uint32_t finished = 0;  // slots of this group the decision finished
  void encode(Writer& w) const { w.u8(static_cast<uint8_t>(decision)); w.u32(finished); }
  void decode(Reader& r) {
    uint8_t d = r.u8();
    if (d > 2) r.fail();
    decision = static_cast<TxDecision>(d);
    finished = r.u32();
  }
};
// On the primary participant: records the decision unless one is recorded already (the first
// decision wins, so a participant's timeout abort and a late client commit cannot both win), and
// finishes this group's slots of the transaction in the same command. want NONE only asks.
struct TxDecideReq {
  static constexpr Method kMethod = Method::TX_DECIDE;
  using Response = TxDecideResp;
  uint64_t txid = 0;
  TxDecision want = TxDecision::NONE;
  void encode(Writer& w) const { w.u64(txid); w.u8(static_cast<uint8_t>(want)); }
  void decode(Reader& r) {
    txid = r.u64();
    uint8_t d = r.u8();
    if (d > 2) r.fail();
    want = static_cast<TxDecision>(d);
  }
};
// On another participant, after the primary decided: applies the decision to this group's slots.
struct TxFinishReq {
  static constexpr Method kMethod = Method::TX_FINISH;
  using Response = TxDecideResp;
  uint64_t txid = 0;
  bool commit = false;
  void encode(Writer& w) const { w.u64(txid); w.boolean(commit); }
  void decode(Reader& r) { txid = r.u64(); commit = r.boolean(); }
};
// On the primary, once every participant finished: drops the recorded decision.
struct TxForgetReq {
  static constexpr Method kMethod = Method::TX_FORGET;
  using Response = TxDecideResp;
  uint64_t txid = 0;
  void encode(Writer& w) const { w.u64(txid); }
  void decode(Reader& r) { txid = r.u64(); }
};

// Read [offset, offset+len) of the valid bytes (len is clipped to valid_len). The bulk carries
// the bytes; whole = the bulk is all valid bytes, to be checked against meta.payload_checksum,
// otherwise range_checksum is the xxHash64 of the bulk.
struct ReadResp {
  SlotMeta meta;
  uint32_t offset = 0;
  bool whole = false;
  uint64_t range_checksum = 0;
  void encode(Writer& w) const { meta.encode(w); w.u32(offset); w.boolean(whole); w.u64(range_checksum); }
  void decode(Reader& r) { meta.decode(r); offset = r.u32(); whole = r.boolean(); range_checksum = r.u64(); }
};
struct ReadReq {
  static constexpr Method kMethod = Method::READ;
  using Response = ReadResp;
  Location loc;
  uint32_t offset = 0;
  uint32_t len = UINT32_MAX;
  void encode(Writer& w) const { w.loc(loc); w.u32(offset); w.u32(len); }
  void decode(Reader& r) { loc = r.loc(); offset = r.u32(); len = r.u32(); }
};

struct StatReq {
  static constexpr Method kMethod = Method::STAT;
  using Response = SlotResp;
  Location loc;
  void encode(Writer& w) const { w.loc(loc); }
  void decode(Reader& r) { loc = r.loc(); }
};

// Walk from loc: headers of consecutive slices while the chain stays on this node (following
// local 301s), and `leaves` = the first pointer that leaves it (null at the chain's end). If a
// pointer on the way is stale/deleted/missing, the walk stops and end_code says why.
constexpr uint32_t kMaxWalk = 4096;
struct WalkResp {
  std::vector<SlotMeta> slices;
  Location leaves;
  Code end_code = Code::OK;
  Location end_at;  // the pointer that failed, when end_code != OK
  void encode(Writer& w) const;
  void decode(Reader& r);
};
struct WalkReq {
  static constexpr Method kMethod = Method::WALK;
  using Response = WalkResp;
  Location loc;
  uint32_t max = kMaxWalk;
  void encode(Writer& w) const { w.loc(loc); w.u32(max); }
  void decode(Reader& r) { loc = r.loc(); max = r.u32(); }
};

struct InfoResp {
  uint32_t node_id = 0;
  uint32_t group_id = 0;
  uint32_t capacity_slots = 0;  // usable slots (slot 0 excluded)
  uint32_t used_slots = 0;
  uint32_t free_slots = 0;
  uint32_t high_water = 0;      // next never-used position ("startIndex")
  uint64_t used_bytes = 0;      // what the slices take on disk
  uint64_t free_bytes = 0;      // what new data may still take
  uint64_t applied_index = 0;
  uint32_t tx_slots = 0;        // slots held by unfinished transactions
  uint32_t tx_decisions = 0;    // decisions recorded here as a primary, not yet forgotten
  void encode(Writer& w) const;
  void decode(Reader& r);
};
struct InfoReq {
  static constexpr Method kMethod = Method::INFO;
  using Response = InfoResp;
  void encode(Writer&) const {}
  void decode(Reader&) {}
};

// A Raft message between members of a group (raft/types.h encodes `message`). Answered at once
// with an empty OK: Raft does not need per-message replies, its own messages are the answers.
struct RaftMessageResp {
  void encode(Writer&) const {}
  void decode(Reader&) {}
};
struct RaftMessageReq {
  static constexpr Method kMethod = Method::RAFT_MESSAGE;
  using Response = RaftMessageResp;
  uint32_t group = 0;
  std::string message;
  void encode(Writer& w) const { w.u32(group); w.str(message); }
  void decode(Reader& r) { group = r.u32(); message = r.str(80u << 20); }
};

// The data path of a storage group (docs/RAFT.md "Data beside the log"): slice bytes travel
// between members apart from the Raft messages, which carry only (location, length, checksum).
struct SlicePushResp {
  void encode(Writer&) const {}
  void decode(Reader&) {}
};
struct SlicePushReq {  // + bulk: the slice
  static constexpr Method kMethod = Method::SLICE_PUSH;
  using Response = SlicePushResp;
  uint32_t group = 0;
  Location loc;
  uint64_t checksum = 0;  // xxHash64 of the bulk
  void encode(Writer& w) const { w.u32(group); w.loc(loc); w.u64(checksum); }
  void decode(Reader& r) { group = r.u32(); loc = r.loc(); checksum = r.u64(); }
};
struct SliceFetchResp {  // + bulk unless obsolete
  bool obsolete = false;  // the slot moved on (deleted or reused): its bytes are needed by no one
  uint64_t applied = 0;   // the slot's applied index where the bytes came from
  void encode(Writer& w) const { w.boolean(obsolete); w.u64(applied); }
  void decode(Reader& r) { obsolete = r.boolean(); applied = r.u64(); }
};
struct SliceFetchReq {
  static constexpr Method kMethod = Method::SLICE_FETCH;
  using Response = SliceFetchResp;
  uint32_t group = 0;
  Location loc;
  uint32_t len = 0;
  uint64_t checksum = 0;  // of the bytes as the WRITE_SLOT wrote them
  void encode(Writer& w) const { w.u32(group); w.loc(loc); w.u32(len); w.u64(checksum); }
  void decode(Reader& r) { group = r.u32(); loc = r.loc(); len = r.u32(); checksum = r.u64(); }
};

// Rebuilding a member from another (a member behind the compacted log, or with an empty disk):
// SNAPSHOT_BEGIN, then SLOT_COPY of every slot below the high-water mark.
struct SnapshotBeginResp {
  uint64_t applied = 0;       // the state copied from here on is at least this recent
  uint32_t high_water = 0;
  std::vector<std::pair<uint64_t, uint8_t>> decisions;  // txid -> TxDecision
  void encode(Writer& w) const {
    w.u64(applied);
    w.u32(high_water);
    w.u32(static_cast<uint32_t>(decisions.size()));
    for (auto& [t, d] : decisions) {
      w.u64(t);
      w.u8(d);
    }
  }
  void decode(Reader& r) {
    applied = r.u64();
    high_water = r.u32();
    uint32_t n = r.u32();
    if (n > r.remaining() / 9) {
      r.fail();
      return;
    }
    decisions.clear();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
      uint64_t t = r.u64();
      decisions.emplace_back(t, r.u8());
    }
  }
};
struct SnapshotBeginReq {
  static constexpr Method kMethod = Method::SNAPSHOT_BEGIN;
  using Response = SnapshotBeginResp;
  uint32_t group = 0;
  void encode(Writer& w) const { w.u32(group); }
  void decode(Reader& r) { group = r.u32(); }
};
struct SlotCopyResp {  // + bulk: the first valid_len bytes when the slot holds data
  SlotMeta meta;
  void encode(Writer& w) const { meta.encode(w); }
  void decode(Reader& r) { meta.decode(r); }
};
struct SlotCopyReq {
  static constexpr Method kMethod = Method::SLOT_COPY;
  using Response = SlotCopyResp;
  uint32_t group = 0;
  uint32_t slot = 0;
  void encode(Writer& w) const { w.u32(group); w.u32(slot); }
  void decode(Reader& r) { group = r.u32(); slot = r.u32(); }
};

// Membership (one server at a time): on the group's leader, answered once the change is
// committed and applied there.
struct MemberChangeResp {
  uint64_t index = 0;  // of the configuration entry
  void encode(Writer& w) const { w.u64(index); }
  void decode(Reader& r) { index = r.u64(); }
};
struct MemberChangeReq {
  static constexpr Method kMethod = Method::MEMBER_CHANGE;
  using Response = MemberChangeResp;
  uint32_t group = 0;
  bool add = true;       // false: remove
  uint64_t node = 0;
  std::string address;   // add: the new member's RPC address
  void encode(Writer& w) const { w.u32(group); w.boolean(add); w.u64(node); w.str(address); }
  void decode(Reader& r) { group = r.u32(); add = r.boolean(); node = r.u64(); address = r.str(512); }
};

// Response envelope.
void encode_error(Writer& w, const Error& e);
void encode_ok(Writer& w);
// Decodes the status part; on error fills `err` and returns false.
bool decode_status(Reader& r, Error& err);

// Decodes a whole message; BAD_REQUEST unless every byte is consumed exactly.
template <typename M>
Result<M> decode_message(std::string_view payload) {
  Reader r(payload);
  M m;
  m.decode(r);
  if (!r.done()) return make_error(Code::BAD_REQUEST, "malformed message");
  return m;
}
template <typename M>
std::string encode_message(const M& m) {
  Writer w;
  m.encode(w);
  return w.take();
}

}  // namespace mydfs::proto
