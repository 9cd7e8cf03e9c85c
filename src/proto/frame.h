// Frame header: every message on a mydfs connection starts with these 32 bytes (little-endian).
// The message payload (payload_len bytes) follows, then the bulk data (bulk_len bytes, a slice or a
// part of one), which is never copied into the message so it can go to/from aligned buffers or a
// file descriptor. docs/PROTOCOL.md is the reference.
#pragma once
#include <array>
#include <cstdint>
#include <optional>

#include "common/status.h"

namespace mydfs::proto {

constexpr uint32_t kMagic = 0x5346444D;  // "MDFS" as bytes on the wire
constexpr uint8_t kVersion = 1;
constexpr size_t kFrameHeaderSize = 32;
constexpr uint8_t kFlagResponse = 0x01;  // set on replies; request id matches the request's

// Defaults for the limits a peer enforces; both are configurable per server/client.
constexpr uint32_t kDefaultMaxPayload = 1u << 20;  // 1 MiB of message
constexpr uint32_t kDefaultMaxBulk = 4u << 20;     // a little more than one slot's payload

struct FrameHeader {
  uint32_t magic = kMagic;     // 0: kMagic
  uint8_t version = kVersion;  // 4: kVersion
  uint8_t flags = 0;           // 5: kFlag* bits; unknown bits are rejected
  uint16_t type = 0;           // 6: method id (proto/messages.h), same in request and reply
  uint64_t request_id = 0;     // 8: chosen by the client, unique among its calls in flight
  uint32_t payload_len = 0;    // 16: message bytes after the header
  uint32_t bulk_len = 0;       // 20: bulk bytes after the message
  uint64_t checksum = 0;       // 24: xxHash64 of bytes 0..23

  bool is_response() const { return flags & kFlagResponse; }
};

using FrameBytes = std::array<unsigned char, kFrameHeaderSize>;

FrameBytes encode_frame(FrameHeader h);  // fills in h.checksum

// Checks magic, version, flags, checksum and the two limits. On failure code is BAD_REQUEST and
// reason says which check failed; the peer replies with it and closes the connection.
struct FrameDecode {
  Code code = Code::OK;
  const char* reason = "";
  FrameHeader header;
};
FrameDecode decode_frame(const unsigned char* p, uint32_t max_payload, uint32_t max_bulk);

}  // namespace mydfs::proto
