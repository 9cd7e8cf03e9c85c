#include <gtest/gtest.h>

#include "common/checksum.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "proto/tracker_messages.h"

namespace mydfs::proto {
namespace {

Location L(uint32_t g, uint32_t s, uint32_t gen) { return Location{g, s, gen}; }

SlotMeta sample_meta() {
  SlotMeta m;
  m.loc = L(3, 17, 4);
  m.state = SlotState::REDIRECT;
  m.file_id = 0x1122334455667788ull;
  m.next = L(4, 9, 1);
  m.valid_len = 4190208;
  m.redirect = L(5, 6, 7);
  m.txid = 99;
  m.tx_primary = 3;
  m.payload_checksum = 0xdeadbeefcafef00dull;
  m.applied_index = 12345;
  return m;
}

// Encodes m, decodes it back, and checks equality by re-encoding (every message, every field).
template <typename M>
void expect_round_trip(const M& m) {
  std::string bytes = encode_message(m);
  auto back = decode_message<M>(bytes);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(encode_message(*back), bytes);
  // Every strict prefix is rejected: a decoder never reads past what is there.
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_message<M>(std::string_view(bytes).substr(0, n)).ok()) << "prefix " << n;
  // A trailing byte is rejected too.
  EXPECT_FALSE(decode_message<M>(bytes + "x").ok());
}

TEST(Codec, roundTrip_everyMessage) {
  expect_round_trip(PingReq{});
  expect_round_trip(PingResp{7, 8});
  expect_round_trip(ReserveReq{42, 5, 0x1234, 3});
  expect_round_trip(ReserveResp{{L(1, 2, 3), L(1, 4, 5)}});
  expect_round_trip(WriteSlotReq{L(1, 2, 3), 9, L(2, 3, 4), 0xabc, SlotState::PREPARED, 77, 2});
  expect_round_trip(PatchReq{L(1, 2, 3), 4096, 0x55, 12, PATCH_SET_NEXT, L(3, 2, 1)});
  expect_round_trip(SetNextReq{L(1, 2, 3), L(9, 8, 7), 5});
  expect_round_trip(SetValidLenReq{L(1, 2, 3), 100, true, 6});
  expect_round_trip(RedirectReq{L(1, 2, 3), L(4, 5, 6)});
  expect_round_trip(DeleteReq{L(1, 2, 3), 7});
  expect_round_trip(ReadReq{L(1, 2, 3), 10, 20});
  expect_round_trip(ReadResp{sample_meta(), 5, true, 0x77});
  expect_round_trip(StatReq{L(1, 2, 3)});
  expect_round_trip(SlotResp{sample_meta()});
  expect_round_trip(WalkReq{L(1, 2, 3), 17});
  WalkResp w;
  w.slices = {sample_meta(), sample_meta()};
  w.leaves = L(8, 8, 8);
  w.end_code = Code::STALE;
  w.end_at = L(1, 1, 1);
  expect_round_trip(w);
  expect_round_trip(InfoReq{});
  expect_round_trip(InfoResp{1, 2, 3, 4, 5, 6, 7, 8, 9});
  expect_round_trip(LockReq{L(1, 2, 3), 0xfeed, 4, 99, L(4, 5, 6)});
  expect_round_trip(TxDecideReq{0xfeed, TxDecision::ABORT});
  expect_round_trip(TxDecideResp{TxDecision::COMMIT, 3});
  expect_round_trip(TxFinishReq{0xfeed, true});
  expect_round_trip(TxForgetReq{0xfeed});
}

TEST(Codec, heartbeatLoad_roundTrip_andOlderNodesWithoutItDecode) {
  HeartbeatReq hb;
  hb.node_id = 3;
  hb.address = "127.0.0.1:7102";
  hb.role = "follower";
  hb.qps = 12.5;
  hb.load.qps_1m = 3.25;
  hb.load.bytes_out_per_s = 1e9;
  hb.load.commit_index = 77;
  hb.load.rss_bytes = 1 << 30;
  hb.load.hot = {HotSlice{5, 2, 12, 40, 140, true}, HotSlice{6, 1, 13, 21, 21, false}};
  std::string wire = encode_message(hb);
  auto back = decode_message<HeartbeatReq>(wire);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->qps, 12.5);
  EXPECT_TRUE(back->load == hb.load);
  // The same heartbeat from a node that reports no load (the fields before it only) still decodes.
  HeartbeatReq old = hb;
  old.load = NodeLoad{};
  std::string short_wire = encode_message(old).substr(0, wire.size() - (100 + 2 * 33));
  auto o = decode_message<HeartbeatReq>(short_wire);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->node_id, 3u);
  EXPECT_TRUE(o->load.hot.empty());
  EXPECT_FALSE(o->has_load);
  EXPECT_EQ(encode_message(*o), short_wire);  // and it is sent on as it came
  // A hot list longer than allowed, or cut short, is refused.
  hb.load.hot.resize(NodeLoad::kMaxHot + 1);
  EXPECT_FALSE(decode_message<HeartbeatReq>(encode_message(hb)).ok());
  EXPECT_FALSE(decode_message<HeartbeatReq>(wire.substr(0, wire.size() - 5)).ok());
}

TEST(Codec, slotMetaFields_survive) {
  SlotResp r{sample_meta()};
  auto back = decode_message<SlotResp>(encode_message(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->meta, sample_meta());
}

TEST(Codec, invalidEnums_rejected) {
  SlotResp r{sample_meta()};
  std::string b = encode_message(r);
  b[12] = 7;  // state low byte: 0x012d (301) -> 0x0107, not a state
  EXPECT_FALSE(decode_message<SlotResp>(b).ok());
  WriteSlotReq w{L(1, 2, 3), 1, {}, 0, SlotState::LIVE, 0};
  std::string wb = encode_message(w);
  wb[40] = static_cast<char>(0x2d);  // state LIVE(200) -> 301: not writable
  wb[41] = 1;
  EXPECT_FALSE(decode_message<WriteSlotReq>(wb).ok());
  SetValidLenReq v{L(1, 2, 3), 1, true};
  std::string vb = encode_message(v);
  vb[16] = 2;  // clear_next: a bool must be 0 or 1
  EXPECT_FALSE(decode_message<SetValidLenReq>(vb).ok());
}

TEST(Codec, hostileCount_rejectedWithoutAllocating) {
  Writer w;
  w.u32(0xffffffff);  // claims 4 billion slices
  EXPECT_FALSE(decode_message<WalkResp>(w.data()).ok());
  EXPECT_FALSE(decode_message<ReserveResp>(w.data()).ok());
}

TEST(Codec, errorEnvelope_roundTrip) {
  Writer w;
  Error e = make_error(Code::REDIRECT, "moved");
  e.hint = "127.0.0.1:7101";
  e.target = L(2, 3, 4);
  encode_error(w, e);
  Reader r(w.data());
  Error back;
  EXPECT_FALSE(decode_status(r, back));
  EXPECT_EQ(back.code, Code::REDIRECT);
  EXPECT_EQ(back.message, "moved");
  EXPECT_EQ(back.hint, "127.0.0.1:7101");
  EXPECT_EQ(back.target, L(2, 3, 4));
  Writer ok;
  encode_ok(ok);
  Reader r2(ok.data());
  EXPECT_TRUE(decode_status(r2, back));
  Writer bad;
  bad.u16(999);
  Reader r3(bad.data());
  EXPECT_FALSE(decode_status(r3, back));
  EXPECT_EQ(back.code, Code::BAD_REQUEST);
}

FrameHeader sample_header() {
  FrameHeader h;
  h.type = 0x0102;
  h.request_id = 0x0102030405060708ull;
  h.payload_len = 100;
  h.bulk_len = 4096;
  return h;
}

TEST(Frame, roundTrip) {
  auto bytes = encode_frame(sample_header());
  auto d = decode_frame(bytes.data(), kDefaultMaxPayload, kDefaultMaxBulk);
  ASSERT_EQ(d.code, Code::OK) << d.reason;
  EXPECT_EQ(d.header.type, 0x0102);
  EXPECT_EQ(d.header.request_id, 0x0102030405060708ull);
  EXPECT_EQ(d.header.payload_len, 100u);
  EXPECT_EQ(d.header.bulk_len, 4096u);
  EXPECT_FALSE(d.header.is_response());
  // Layout is little-endian with the magic first.
  EXPECT_EQ(bytes[0], 'M');
  EXPECT_EQ(bytes[1], 'D');
  EXPECT_EQ(bytes[2], 'F');
  EXPECT_EQ(bytes[3], 'S');
}

TEST(Frame, badMagic_versionFlagsChecksum_rejected) {
  auto base = encode_frame(sample_header());
  auto check = [&](size_t byte, unsigned char value, const char* why) {
    auto b = base;
    b[byte] = value;
    auto d = decode_frame(b.data(), kDefaultMaxPayload, kDefaultMaxBulk);
    EXPECT_EQ(d.code, Code::BAD_REQUEST) << why;
  };
  check(0, 'X', "magic");
  check(4, 2, "version");
  check(5, 0x80, "flags");
  check(8, 0x09, "request id changed under the checksum");
  check(30, 0x00, "checksum");
}

TEST(Frame, oversize_rejected) {
  FrameHeader h = sample_header();
  h.payload_len = kDefaultMaxPayload + 1;
  auto b = encode_frame(h);
  EXPECT_EQ(decode_frame(b.data(), kDefaultMaxPayload, kDefaultMaxBulk).code, Code::BAD_REQUEST);
  h = sample_header();
  h.bulk_len = kDefaultMaxBulk + 1;
  b = encode_frame(h);
  auto d = decode_frame(b.data(), kDefaultMaxPayload, kDefaultMaxBulk);
  EXPECT_EQ(d.code, Code::BAD_REQUEST);
  EXPECT_STREQ(d.reason, "bulk data larger than the maximum");
}

TEST(Reader, everyReadChecked) {
  std::string three = "abc";
  Reader r(three);
  EXPECT_EQ(r.u16(), 0x6261);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.u32(), 0u);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);    // sticky
  EXPECT_FALSE(r.ok());
  Writer w;
  w.u32(1000);  // string claims 1000 bytes, none follow
  Reader r2(w.data());
  EXPECT_EQ(r2.str(), "");
  EXPECT_FALSE(r2.ok());
}

}  // namespace
}  // namespace mydfs::proto
