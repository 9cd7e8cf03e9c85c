#include "proto/frame.h"

#include "common/checksum.h"
#include "common/codec.h"

namespace mydfs::proto {

FrameBytes encode_frame(FrameHeader h) {
  Writer w;
  w.u32(h.magic);
  w.u8(h.version);
  w.u8(h.flags);
  w.u16(h.type);
  w.u64(h.request_id);
  w.u32(h.payload_len);
  w.u32(h.bulk_len);
  h.checksum = xxh64(w.data().data(), w.size());
  w.u64(h.checksum);
  FrameBytes out{};
  std::memcpy(out.data(), w.data().data(), kFrameHeaderSize);
  return out;
}

FrameDecode decode_frame(const unsigned char* p, uint32_t max_payload, uint32_t max_bulk) {
  FrameDecode d;
  Reader r(p, kFrameHeaderSize);
  FrameHeader& h = d.header;
  h.magic = r.u32();
  h.version = r.u8();
  h.flags = r.u8();
  h.type = r.u16();
  h.request_id = r.u64();
  h.payload_len = r.u32();
  h.bulk_len = r.u32();
  h.checksum = r.u64();
  if (h.magic != kMagic) {
    d.reason = "bad magic";
  } else if (h.version != kVersion) {
    d.reason = "unsupported protocol version";
  } else if (h.flags & ~kFlagResponse) {
    d.reason = "unknown frame flags";
  } else if (h.checksum != xxh64(p, 24)) {
    d.reason = "frame header checksum mismatch";
  } else if (h.payload_len > max_payload) {
    d.reason = "message larger than the maximum frame size";
  } else if (h.bulk_len > max_bulk) {
    d.reason = "bulk data larger than the maximum";
  }
  if (*d.reason) d.code = Code::BAD_REQUEST;
  return d;
}

}  // namespace mydfs::proto
