#include "raft/types.h"

#include <algorithm>

namespace mydfs::raft {

namespace {
constexpr uint32_t kMaxVoters = 7;
constexpr uint32_t kMaxEntriesPerMsg = 1u << 16;
constexpr size_t kMaxEntryData = 64u << 20;
}  // namespace

void Entry::encode(Writer& w) const {
  w.u64(term);
  w.u64(index);
  w.u8(static_cast<uint8_t>(type));
  w.str(data);
}

void Entry::decode(Reader& r) {
  term = r.u64();
  index = r.u64();
  uint8_t t = r.u8();
  if (t < 1 || t > 3) r.fail();
  type = static_cast<EntryType>(t);
  data = r.str(kMaxEntryData);
}

void HardState::encode(Writer& w) const {
  w.u64(term);
  w.u64(vote);
  w.u64(commit);
}

void HardState::decode(Reader& r) {
  term = r.u64();
  vote = r.u64();
  commit = r.u64();
}

bool ConfState::contains(NodeId id) const { return std::binary_search(voters.begin(), voters.end(), id); }

void ConfState::encode(Writer& w) const {
  w.u32(static_cast<uint32_t>(voters.size()));
  for (NodeId v : voters) w.u64(v);
}

void ConfState::decode(Reader& r) {
  uint32_t n = r.count(8, kMaxVoters);
  voters.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) voters.push_back(r.u64());
  // Sorted and unique, as every writer keeps them; anything else is not a configuration.
  for (size_t i = 1; i < voters.size(); ++i)
    if (voters[i - 1] >= voters[i]) r.fail();
  for (NodeId v : voters)
    if (v == 0) r.fail();
}

void ConfChange::encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(kind));
  w.u64(node);
  w.str(context);
}

void ConfChange::decode(Reader& r) {
  uint8_t k = r.u8();
  if (k < 1 || k > 2) r.fail();
  kind = static_cast<Kind>(k);
  node = r.u64();
  if (node == 0) r.fail();
  context = r.str(1024);
}

void SnapshotMeta::encode(Writer& w) const {
  w.u64(index);
  w.u64(term);
  conf.encode(w);
}

void SnapshotMeta::decode(Reader& r) {
  index = r.u64();
  term = r.u64();
  conf.decode(r);
}

void Message::encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(type));
  w.u64(from);
  w.u64(to);
  w.u64(term);
  w.u64(log_term);
  w.u64(index);
  w.u32(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) e.encode(w);
  w.u64(commit);
  w.boolean(reject);
  w.u64(reject_hint);
  w.boolean(transfer);
  w.u64(context);
  snapshot.encode(w);
  w.str(snapshot_data);
}

void Message::decode(Reader& r) {
  uint8_t t = r.u8();
  if (t < 1 || t > 8) r.fail();
  type = static_cast<MsgType>(t);
  from = r.u64();
  to = r.u64();
  term = r.u64();
  log_term = r.u64();
  index = r.u64();
  uint32_t n = r.count(21, kMaxEntriesPerMsg);
  entries.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Entry e;
    e.decode(r);
    entries.push_back(std::move(e));
  }
  commit = r.u64();
  reject = r.boolean();
  reject_hint = r.u64();
  transfer = r.boolean();
  context = r.u64();
  snapshot.decode(r);
  snapshot_data = r.str(kMaxEntryData);
}

std::string_view msg_name(MsgType t) {
  switch (t) {
    case MsgType::PRE_VOTE: return "pre_vote";
    case MsgType::PRE_VOTE_RESP: return "pre_vote_resp";
    case MsgType::VOTE: return "vote";
    case MsgType::VOTE_RESP: return "vote_resp";
    case MsgType::APPEND: return "append";
    case MsgType::APPEND_RESP: return "append_resp";
    case MsgType::SNAPSHOT: return "snapshot";
    case MsgType::TIMEOUT_NOW: return "timeout_now";
  }
  return "unknown";
}

}  // namespace mydfs::raft
