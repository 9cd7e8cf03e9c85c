// Raft data types shared by the core, its log storage and its transport: entries, hard state,
// configuration, snapshots and messages, with their little-endian encodings (docs/RAFT.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/codec.h"

namespace mydfs::raft {

using NodeId = uint64_t;  // 0 = nobody

enum class EntryType : uint8_t {
  NORMAL = 1,  // an application command (data)
  NOOP = 2,    // appended by every new leader, so it can commit entries of older terms
  CONF = 3,    // a configuration change: data is the encoded ConfChange
};

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  EntryType type = EntryType::NORMAL;
  std::string data;

  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const Entry&, const Entry&) = default;
};

// What must be durable before a node sends anything that depends on it.
struct HardState {
  uint64_t term = 0;
  NodeId vote = 0;     // whom this node voted for in term (0: nobody yet)
  uint64_t commit = 0;

  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const HardState&, const HardState&) = default;
};

// The voting members. Changes go one server at a time (add or remove), so any two consecutive
// configurations have overlapping majorities.
struct ConfState {
  std::vector<NodeId> voters;  // sorted, no duplicates

  bool contains(NodeId id) const;
  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const ConfState&, const ConfState&) = default;
};

struct ConfChange {
  enum class Kind : uint8_t { ADD = 1, REMOVE = 2 };
  Kind kind = Kind::ADD;
  NodeId node = 0;
  std::string context;  // opaque to the core; storage groups put an added member's RPC address here

  void encode(Writer& w) const;
  void decode(Reader& r);
};

// A snapshot covers every entry up to index. The state machine's contents travel outside the
// Raft messages (the application streams them); data is a small application descriptor.
struct SnapshotMeta {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfState conf;

  void encode(Writer& w) const;
  void decode(Reader& r);
  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

enum class MsgType : uint8_t {
  PRE_VOTE = 1,       // "would you vote for me in term?" (term = the term it would campaign in)
  PRE_VOTE_RESP = 2,
  VOTE = 3,
  VOTE_RESP = 4,
  APPEND = 5,         // entries after (index, log_term); also the heartbeat (no entries)
  APPEND_RESP = 6,    // see Message::index and reject_hint
  SNAPSHOT = 7,       // install snapshot (meta in `snapshot`, app descriptor in `snapshot_data`)
  TIMEOUT_NOW = 8,    // leader transfer: campaign now, without waiting or pre-voting
};

struct Message {
  MsgType type = MsgType::APPEND;
  NodeId from = 0, to = 0;
  uint64_t term = 0;
  uint64_t log_term = 0;  // APPEND: term of entry `index`; (PRE_)VOTE: term of the last entry
  // APPEND: the entry before `entries`; (PRE_)VOTE: last index; APPEND_RESP: the last index now
  // known to match (an APPEND below the follower's commit is answered with its commit), or, when
  // rejected, the APPEND's own index — the leader uses it to drop answers to older probes.
  uint64_t index = 0;
  std::vector<Entry> entries;
  uint64_t commit = 0;    // APPEND: leader's commit index
  bool reject = false;
  uint64_t reject_hint = 0;  // APPEND_RESP: rejected: min(index, follower's last); else the follower's last
  bool transfer = false;  // VOTE sent because of TIMEOUT_NOW: overrides the receivers' lease
  uint64_t context = 0;   // APPEND/APPEND_RESP: heartbeat round, for read-index confirmation
  SnapshotMeta snapshot;
  std::string snapshot_data;

  void encode(Writer& w) const;
  void decode(Reader& r);
};

std::string_view msg_name(MsgType t);

}  // namespace mydfs::raft
