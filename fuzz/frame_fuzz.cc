// libFuzzer target for the wire decoders: proto/frame.h (decode_frame), proto/messages.h and
// proto/tracker_messages.h (decode_message<M> for every request and response, decode_status, the
// response envelope).
//
// Input layout:
//   * all of it (>= 32 bytes): a frame header for decode_frame. If the header is valid and the
//     payload_len bytes after it are present, they are decoded as the message its type and
//     response flag name (the path a real peer takes).
//   * bytes 0..1 (u16 LE, modulo the number of cases) choose a decoder, bytes 2.. are its payload;
//     the last cases instead build a variable-size message (ReserveResp, WalkResp, error body)
//     from the payload with the encoder and check that it decodes; after those come the tracker
//     messages (requests, responses, response envelopes), appended last so the selector values of
//     the older seeds in fuzz/seeds/frame still pick the same decoders.
// MYDFS_FUZZ_SKIP names (fuzz_check.h): build.
// Properties, besides "no crash, no sanitizer report":
//   * decode_frame: a header that passes re-encodes (encode_frame) to the same 32 bytes; a failure
//     is BAD_REQUEST with a reason.
//   * messages: whatever decodes OK re-encodes (encode_message) to exactly the input bytes, and
//     those decode again and re-encode to the same bytes; a failure is BAD_REQUEST.
//   * built messages: encoder output decodes and re-encodes to the same bytes (fuzzed with up to 15
//     items; the maximum sizes are checked once at start-up, in LLVMFuzzerInitialize).
//   * decode_status: an error re-encodes (encode_error) and decodes back to an equal Error, and a
//     well-formed error body re-encodes to the bytes it was read from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "proto/tracker_messages.h"

namespace mydfs::proto {
namespace {

using fuzz::hex;

template <typename M>
void check_message(std::string_view payload) {
  auto r = decode_message<M>(payload);
  if (!r.ok()) {
    FUZZ_CHECK(r.code() == Code::BAD_REQUEST, "failed decode is not BAD_REQUEST: " + r.error().to_string());
    return;
  }
  std::string e1 = encode_message(*r);
  FUZZ_CHECK(e1 == payload, "decoded message does not re-encode to its input:\n  in  " + hex(payload) +
                                "\n  out " + hex(e1));
  auto r2 = decode_message<M>(e1);
  FUZZ_CHECK(r2.ok(), "re-encoded message does not decode: " + hex(e1));
  std::string e2 = encode_message(*r2);
  FUZZ_CHECK(e2 == e1, "second round trip differs:\n  e1 " + hex(e1) + "\n  e2 " + hex(e2));
}

bool same_error(const Error& a, const Error& b) {
  return a.code == b.code && a.message == b.message && a.hint == b.hint && a.target == b.target;
}

// decode_status alone; returns true (and the rest of the payload) when the status is OK.
bool check_status(std::string_view payload, std::string_view& rest) {
  Reader r(payload);
  Error err;
  bool ok = decode_status(r, err);
  size_t used = payload.size() - r.remaining();
  if (ok) {
    Writer w;
    encode_ok(w);
    FUZZ_CHECK(r.ok() && used == 2 && w.data() == payload.substr(0, 2), "OK status is not u16 0: " + hex(payload));
    rest = payload.substr(used);
    return true;
  }
  FUZZ_CHECK(err.code != Code::OK, "decode_status failed with code OK: " + hex(payload));
  FUZZ_CHECK(err.message.size() <= 4096 && err.hint.size() <= 256, "oversize error strings: " + hex(payload));
  Writer w;
  encode_error(w, err);
  Reader r2(w.data());
  Error err2;
  FUZZ_CHECK(!decode_status(r2, err2), "re-encoded error decodes as OK: " + hex(w.data()));
  FUZZ_CHECK(r2.done(), "re-encoded error not consumed exactly: " + hex(w.data()));
  FUZZ_CHECK(same_error(err, err2), "error round trip differs: " + err.to_string() + " vs " + err2.to_string());
  uint16_t wire_code = payload.size() >= 2 ? static_cast<uint16_t>(static_cast<unsigned char>(payload[0]) |
                                                                   static_cast<unsigned char>(payload[1]) << 8)
                                           : 0;
  // An error body that was read as such (not one made up for a truncated or refused status).
  bool well_formed = r.ok() && payload.size() >= 2 && wire_code != 0 && static_cast<uint16_t>(err.code) == wire_code;
  if (well_formed)
    FUZZ_CHECK(w.data() == payload.substr(0, used), "error body does not re-encode to its input:\n  in  " +
                                                        hex(payload.substr(0, used)) + "\n  out " + hex(w.data()));
  return false;
}

// A response payload: status, then on OK the response message.
template <typename R>
void check_envelope(std::string_view payload) {
  std::string_view rest;
  if (check_status(payload, rest)) check_message<R>(rest);
}

template <typename... Ms>
struct List {};

using Requests = List<PingReq, ReserveReq, WriteSlotReq, PatchReq, SetNextReq, SetValidLenReq, RedirectReq,
                      DeleteReq, LockReq, TxDecideReq, TxFinishReq, TxForgetReq, RaftMessageReq, SlicePushReq, SliceFetchReq, SnapshotBeginReq, SlotCopyReq, MemberChangeReq, ReadReq, StatReq, WalkReq,
                      InfoReq>;
using Responses = List<PingResp, SlotResp, ReserveResp, ReadResp, WalkResp, InfoResp, TxDecideResp, RaftMessageResp, SlicePushResp, SliceFetchResp, SnapshotBeginResp, SlotCopyResp, MemberChangeResp>;
// Tracker service (proto/tracker_messages.h). All of them round-trip byte for byte, so they get
// the same strict check as the storage messages. HeartbeatReq.qps is a double carried as its raw
// u64 bits (memcpy both ways), so any NaN payload, signalling or not, comes back bit-identical on
// x86-64/AArch64 (copies of a double are plain moves, not arithmetic); if a platform ever
// canonicalised NaNs in a copy this check would flag it, and the fallback is to compare only the
// second encoding with the first re-encoding (which check_message also does).
using TrackerRequests = List<NsReadReq, NsWriteReq, AllocateReq, HeartbeatReq, AddGroupReq, ClusterStatusReq>;
using TrackerResponses = List<NsReply, AllocateResp, HeartbeatResp, AddGroupResp, ClusterStatusResp>;

template <typename... Ms>
constexpr size_t count(List<Ms...>) { return sizeof...(Ms); }

template <typename... Ms>
bool nth_message(List<Ms...>, size_t i, std::string_view p) {
  size_t k = 0;
  return ((k++ == i ? (check_message<Ms>(p), true) : false) || ...);
}
template <typename... Ms>
bool nth_envelope(List<Ms...>, size_t i, std::string_view p) {
  size_t k = 0;
  return ((k++ == i ? (check_envelope<Ms>(p), true) : false) || ...);
}

// What a server (request) or a client (response) does with a frame's payload.
template <typename... Reqs>
void by_method(List<Reqs...>, uint16_t type, bool response, std::string_view p) {
  (void)((type == static_cast<uint16_t>(Reqs::kMethod)
              ? (response ? check_envelope<typename Reqs::Response>(p) : check_message<Reqs>(p), true)
              : false) ||
         ...);
}

// The other direction: a message built by the encoder side (from fuzz bytes) must decode. Only
// the messages with a variable size need it; the fixed ones are covered by the decode round trip.
class Bytes {  // hands out the input's bytes, cycling (zeros if empty)
 public:
  explicit Bytes(std::string_view in) : in_(in) {}
  uint8_t u8() { return in_.empty() ? 0 : static_cast<uint8_t>(in_[pos_++ % in_.size()]); }
  uint32_t u32() { uint32_t v = 0; for (int i = 0; i < 4; ++i) v |= uint32_t{u8()} << (8 * i); return v; }
  uint64_t u64() { return uint64_t{u32()} | uint64_t{u32()} << 32; }
  Location loc() { return {u32(), u32(), u32()}; }
  std::string str(size_t n) { std::string s; for (size_t i = 0; i < n; ++i) s += static_cast<char>(u8()); return s; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

SlotMeta build_meta(Bytes& b) {
  static constexpr SlotState kStates[] = {SlotState::FREE, SlotState::PREPARED, SlotState::LIVE,
                                          SlotState::REDIRECT, SlotState::DELETED};
  SlotMeta m;
  m.loc = b.loc();
  m.state = kStates[b.u8() % 5];
  m.file_id = b.u64();
  m.next = b.loc();
  m.valid_len = b.u32();
  m.redirect = b.loc();
  m.txid = b.u64();
  m.payload_checksum = b.u64();
  m.applied_index = b.u64();
  return m;
}

template <typename M>
void check_built(const M& m, const std::string& what) {
  std::string e1 = encode_message(m);
  auto r = decode_message<M>(e1);
  FUZZ_CHECK(r.ok(), "encoder output does not decode (" + what + "): " + r.error().to_string() + ": " + hex(e1, 128));
  FUZZ_CHECK(encode_message(*r) == e1, "built message round trip differs (" + what + ")");
}

// Case payload: u16 item count, then bytes the fields are taken from. Fuzzed counts stay small
// (< 16, fast); max_sizes=true builds the largest legal messages (slow: done once, at start-up).
void check_build(size_t which, std::string_view p, bool max_sizes = false) {
  if (fuzz::skipped("build")) return;
  Reader r(p);
  uint16_t n = r.u16();
  auto build_count = [&](uint32_t max) { return max_sizes ? max : std::min<uint32_t>(n % 16, max); };
  Bytes b(p.substr(p.size() - r.remaining()));
  if (which == 0) {
    ReserveResp m;
    m.slots.resize(build_count(kMaxReserve));
    for (auto& l : m.slots) l = b.loc();
    check_built(m, fmt::format("ReserveResp with {} slots", m.slots.size()));
  } else if (which == 1) {
    WalkResp m;
    m.slices.resize(build_count(kMaxWalk));
    for (auto& s : m.slices) s = build_meta(b);
    m.leaves = b.loc();
    m.end_code = static_cast<Code>(b.u8() | b.u8() << 8);
    m.end_at = b.loc();
    check_built(m, fmt::format("WalkResp with {} slices", m.slices.size()));
  } else {
    Error e;
    uint16_t code = static_cast<uint16_t>(b.u8() | b.u8() << 8);
    e.code = static_cast<Code>(code == 0 ? 1 : code);  // codes this build does not name pass through
    e.message = b.str(max_sizes ? 5000 : n % 300);  // 5000: over the 4096 the encoder keeps
    e.hint = b.str(b.u8() + b.u8());
    e.target = b.loc();
    Writer w;
    encode_error(w, e);
    Reader r2(w.data());
    Error back;
    FUZZ_CHECK(!decode_status(r2, back) && r2.done(), "encoded error does not decode: " + hex(w.data(), 64));
    FUZZ_CHECK(back.code == e.code && back.message == e.message.substr(0, 4096) && back.hint == e.hint.substr(0, 256) &&
                   back.target == e.target,
               "error round trip differs: " + back.to_string());
  }
}
constexpr size_t kNumBuild = 3;

constexpr size_t kNumRequests = count(Requests{});
constexpr size_t kNumResponses = count(Responses{});
constexpr size_t kNumTrackerRequests = count(TrackerRequests{});
constexpr size_t kNumTrackerResponses = count(TrackerResponses{});
// Cases: every request, every response message, decode_status alone, every response envelope,
// then the encoder-side builds (ReserveResp, WalkResp, error body), then every tracker request,
// every tracker response message and every tracker response envelope.
constexpr size_t kNumCases = kNumRequests + kNumResponses + 1 + kNumResponses + kNumBuild + kNumTrackerRequests +
                             kNumTrackerResponses + kNumTrackerResponses;

void check_frame(const unsigned char* data, size_t size) {
  if (size < kFrameHeaderSize) return;
  FrameDecode d = decode_frame(data, kDefaultMaxPayload, kDefaultMaxBulk);
  std::string_view in(reinterpret_cast<const char*>(data), kFrameHeaderSize);
  if (d.code != Code::OK) {
    FUZZ_CHECK(d.code == Code::BAD_REQUEST && d.reason && *d.reason, "bad frame without BAD_REQUEST and reason");
    return;
  }
  const FrameHeader& h = d.header;
  FUZZ_CHECK(h.magic == kMagic && h.version == kVersion && (h.flags & ~kFlagResponse) == 0 &&
                 h.payload_len <= kDefaultMaxPayload && h.bulk_len <= kDefaultMaxBulk,
             "decode_frame accepted a header that breaks a check: " + hex(in));
  FrameBytes again = encode_frame(h);
  FUZZ_CHECK(std::string_view(reinterpret_cast<const char*>(again.data()), again.size()) == in,
             "frame header does not re-encode to its input: " + hex(in));
  if (h.payload_len > 0)
    FUZZ_CHECK(decode_frame(data, h.payload_len - 1, kDefaultMaxBulk).code == Code::BAD_REQUEST,
               "payload limit not enforced: " + hex(in));
  if (h.bulk_len > 0)
    FUZZ_CHECK(decode_frame(data, kDefaultMaxPayload, h.bulk_len - 1).code == Code::BAD_REQUEST,
               "bulk limit not enforced: " + hex(in));
  if (size - kFrameHeaderSize >= h.payload_len) {
    std::string_view payload(reinterpret_cast<const char*>(data) + kFrameHeaderSize, h.payload_len);
    by_method(Requests{}, h.type, h.is_response(), payload);
    by_method(TrackerRequests{}, h.type, h.is_response(), payload);
  }
}

}  // namespace
}  // namespace mydfs::proto

// The largest legal ReserveResp, WalkResp and error body (with over-long strings) must round-trip:
// checked once here rather than fuzzed, as they are big and slow under the sanitizers.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace mydfs::proto;
  const std::string fill = "\xff\xff\x01\x02\x03\xc8\x00\x2d\x01\x94\x01\x64\x00\x05\x00";
  for (size_t which = 0; which < kNumBuild; ++which) check_build(which, fill, /*max_sizes=*/true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mydfs::proto;
  check_frame(data, size);
  if (size < 2) return 0;
  size_t sel = static_cast<size_t>(data[0] | data[1] << 8) % kNumCases;
  // libFuzzer hands over an exactly sized heap copy, so ASan catches any read past the payload.
  std::string_view p(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (sel < kNumRequests) {
    nth_message(Requests{}, sel, p);
    return 0;
  }
  sel -= kNumRequests;
  if (sel < kNumResponses) {
    nth_message(Responses{}, sel, p);
    return 0;
  }
  sel -= kNumResponses;
  if (sel == 0) {
    std::string_view rest;
    check_status(p, rest);
    return 0;
  }
  sel -= 1;
  if (sel < kNumResponses) {
    nth_envelope(Responses{}, sel, p);
    return 0;
  }
  sel -= kNumResponses;
  if (sel < kNumBuild) {
    check_build(sel, p);
    return 0;
  }
  sel -= kNumBuild;
  if (sel < kNumTrackerRequests) {
    nth_message(TrackerRequests{}, sel, p);
    return 0;
  }
  sel -= kNumTrackerRequests;
  if (sel < kNumTrackerResponses) {
    nth_message(TrackerResponses{}, sel, p);
    return 0;
  }
  nth_envelope(TrackerResponses{}, sel - kNumTrackerResponses, p);
  return 0;
}
