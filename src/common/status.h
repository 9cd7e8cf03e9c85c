// Status codes carried on the wire in every response. Numeric values are part of the protocol:
// never renumber or reuse one (docs/PROTOCOL.md lists them).
#pragma once
#include <cstdint>
#include <string_view>

namespace mydfs {

enum class Code : uint16_t {
  OK = 0,
  NOT_LEADER = 1,         // detail: hint = address of the member believed to lead
  NOT_FOUND = 2,          // no such slot / object
  REDIRECT = 3,           // slot is 301: detail target = where the content moved
  DELETED = 4,            // slot is 404
  STALE = 5,              // location's gen differs from the slot's gen
  NO_SPACE = 6,           // store is at capacity
  CONFLICT = 7,           // concurrent operation holds the slot (retry later)
  ABORTED = 8,            // transaction was aborted
  BAD_REQUEST = 9,        // malformed frame or message, argument out of range
  CHECKSUM_MISMATCH = 10, // data or header failed its xxHash64 check
  TIMEOUT = 11,           // deadline passed
  UNAVAILABLE = 12,       // peer unreachable, connection closed, shutting down
  INTERNAL = 13,          // bug or I/O error on the server
  UNKNOWN_METHOD = 14,    // message type not served here
  TOO_LARGE = 15,         // a request the client refuses to send: over the frame limits
  CORRUPT = 16,           // local on-disk structure (superblock, log) failed verification
  IO_ERROR = 17,          // local I/O failed (EIO, ...; the host's ENOSPC is NO_SPACE)
  FS_ERROR = 18,          // a file-system error; Error::sys_errno holds the errno (client side only)
};

// The errno a code stands for where an errno is answered (common/result.h's to_errno(Error) first
// takes an errno the error carries): NO_SPACE is ENOSPC, BAD_REQUEST EINVAL, TIMEOUT ETIMEDOUT,
// CONFLICT (held by another operation) EAGAIN, anything else EIO.
int to_errno(Code c);


constexpr std::string_view code_name(Code c) {
  switch (c) {
    case Code::OK: return "OK";
    case Code::NOT_LEADER: return "NOT_LEADER";
    case Code::NOT_FOUND: return "NOT_FOUND";
    case Code::REDIRECT: return "REDIRECT";
    case Code::DELETED: return "DELETED";
    case Code::STALE: return "STALE";
    case Code::NO_SPACE: return "NO_SPACE";
    case Code::CONFLICT: return "CONFLICT";
    case Code::ABORTED: return "ABORTED";
    case Code::BAD_REQUEST: return "BAD_REQUEST";
    case Code::CHECKSUM_MISMATCH: return "CHECKSUM_MISMATCH";
    case Code::TIMEOUT: return "TIMEOUT";
    case Code::UNAVAILABLE: return "UNAVAILABLE";
    case Code::INTERNAL: return "INTERNAL";
    case Code::UNKNOWN_METHOD: return "UNKNOWN_METHOD";
    case Code::TOO_LARGE: return "TOO_LARGE";
    case Code::CORRUPT: return "CORRUPT";
    case Code::IO_ERROR: return "IO_ERROR";
    case Code::FS_ERROR: return "FS_ERROR";
  }
  return "UNKNOWN";
}

}  // namespace mydfs
