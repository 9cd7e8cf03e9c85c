// RPC server and client over real loopback sockets.
#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/checksum.h"
#include "proto/rpc.h"

namespace mydfs::proto {
namespace {

using namespace std::chrono_literals;

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions opt;
    opt.frame_timeout = 300ms;
    server_ = std::make_unique<RpcServer>(io_, opt, &metrics_, "test");
    server_->route<PingReq>([](PingReq, Inbound&, Outbound&) -> awaitable<Result<PingResp>> {
      co_return PingResp{1, 2};
    });
    // STAT: replies after loc.slot milliseconds, echoing the location (tests reply matching).
    server_->route<StatReq>([](StatReq req, Inbound&, Outbound&) -> awaitable<Result<SlotResp>> {
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_after(std::chrono::milliseconds(req.loc.slot));
      co_await t.async_wait(asio::use_awaitable);
      SlotResp r;
      r.meta.loc = req.loc;
      co_return r;
    });
    // WRITE_SLOT: echoes the bulk back with its checksum.
    server_->route<WriteSlotReq>([](WriteSlotReq, Inbound& in, Outbound& out) -> awaitable<Result<SlotResp>> {
      SlotResp r;
      r.meta.valid_len = static_cast<uint32_t>(in.bulk.size());
      r.meta.payload_checksum = xxh64(in.bulk.span());
      out.bulk = std::move(in.bulk);
      co_return r;
    });
    // READ: sends [offset, offset+len) of a file with sendfile.
    server_->route<ReadReq>([this](ReadReq req, Inbound&, Outbound& out) -> awaitable<Result<ReadResp>> {
      out.file = FileRange{file_fd_, static_cast<off_t>(req.offset), req.len, {}};
      co_return ReadResp{};
    });
    server_->route<DeleteReq>([](DeleteReq, Inbound&, Outbound&) -> awaitable<Result<SlotResp>> {
      co_return make_error(Code::DELETED, "gone");
    });
    ASSERT_TRUE(server_->listen("127.0.0.1", 0).ok());
    server_->start();
    thread_ = std::thread([this] {
      auto work = asio::make_work_guard(io_);  // keep running between servers
      io_.run();
    });
  }

  void TearDown() override {
    asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    thread_.join();
    if (file_fd_ >= 0) ::close(file_fd_);
  }

  // A raw blocking socket to the server, for malformed input.
  tcp::socket raw() {
    tcp::socket s(raw_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    return s;
  }

  // Reads one reply frame from a raw socket and returns its status; then expects EOF.
  Code read_rejection_then_eof(tcp::socket& s) {
    FrameBytes hb;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(hb), ec);
    if (ec) return Code::UNAVAILABLE;
    auto d = decode_frame(hb.data(), kDefaultMaxPayload, kDefaultMaxBulk);
    EXPECT_EQ(d.code, Code::OK);
    EXPECT_TRUE(d.header.is_response());
    std::string payload(d.header.payload_len, '\0');
    asio::read(s, asio::buffer(payload), ec);
    EXPECT_FALSE(ec);
    Reader r(payload);
    Error e;
    EXPECT_FALSE(decode_status(r, e));
    char c;
    asio::read(s, asio::buffer(&c, 1), ec);
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
        << "connection should be closed after a bad frame: " << ec.message();
    return e.code;
  }

  Metrics metrics_;  // outlives io_ (connections count themselves down when destroyed)
  asio::io_context io_;
  asio::io_context raw_io_;
  std::vector<std::unique_ptr<RpcServer>> retired_;
  std::unique_ptr<RpcServer> server_;
  std::thread thread_;
  int file_fd_ = -1;
};

TEST_F(RpcTest, ping_roundTrip) {
  SyncClient c("127.0.0.1", server_->port());
  auto r = c.call(PingReq{});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->node_id, 1u);
  EXPECT_EQ(r->group_id, 2u);
}

TEST_F(RpcTest, manyInFlight_repliesMatchedById) {
  SyncClient c("127.0.0.1", server_->port());
  constexpr int kCalls = 200;
  std::vector<std::future<Result<SlotResp>>> futs;
  for (int i = 0; i < kCalls; ++i) {
    StatReq req{Location{9, static_cast<uint32_t>((i * 37) % 60), static_cast<uint32_t>(i)}};
    futs.push_back(asio::co_spawn(c.io(), c.client().call(req), asio::use_future));
  }
  for (int i = 0; i < kCalls; ++i) {
    auto r = futs[i].get();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->meta.loc.gen, static_cast<uint32_t>(i));  // each caller got its own reply
  }
  EXPECT_GE(metrics_.value("mydfs_rpc_requests_total"), kCalls);
}

TEST_F(RpcTest, deadline_timesOut_thenConnectionStillWorks) {
  SyncClient c("127.0.0.1", server_->port());
  auto start = Clock::now();
  auto r = c.call(StatReq{Location{1, 800, 1}}, {}, nullptr, 50ms);
  EXPECT_EQ(r.code(), Code::TIMEOUT);
  EXPECT_LT(Clock::now() - start, 700ms);
  auto again = c.call(StatReq{Location{1, 1, 5}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->meta.loc.gen, 5u);
}

TEST_F(RpcTest, errorStatus_reachesCaller) {
  SyncClient c("127.0.0.1", server_->port());
  auto r = c.call(DeleteReq{Location{1, 2, 3}});
  EXPECT_EQ(r.code(), Code::DELETED);
  EXPECT_EQ(r.error().message, "gone");
}

TEST_F(RpcTest, bulk_echoedByteIdentical) {
  SyncClient c("127.0.0.1", server_->port());
  auto buf = std::make_shared<AlignedBuffer>(kDefaultMaxBulk);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < buf->size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(buf->data() + i, &v, 8);
  }
  AlignedBuffer back;
  auto r = c.call(WriteSlotReq{}, Bulk::of(buf), &back);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->meta.valid_len, buf->size());
  EXPECT_EQ(r->meta.payload_checksum, xxh64(buf->span()));
  ASSERT_EQ(back.size(), buf->size());
  EXPECT_EQ(std::memcmp(back.data(), buf->data(), back.size()), 0);
}

TEST_F(RpcTest, bulkFromFile_sentWithSendfile) {
  char path[] = "/tmp/mydfs-rpc-XXXXXX";
  file_fd_ = mkstemp(path);
  ASSERT_GE(file_fd_, 0);
  unlink(path);
  std::string content(1 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 + 7);
  ASSERT_EQ(write(file_fd_, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  SyncClient c("127.0.0.1", server_->port());
  AlignedBuffer back;
  auto r = c.call(ReadReq{Location{1, 1, 1}, 1000, 500000}, {}, &back);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(back.size(), 500000u);
  EXPECT_EQ(std::memcmp(back.data(), content.data() + 1000, back.size()), 0);
}

TEST_F(RpcTest, unknownMethod_answeredAndConnectionKept) {
  SyncClient c("127.0.0.1", server_->port());
  auto r = c.call(InfoReq{});  // not routed on this server
  EXPECT_EQ(r.code(), Code::UNKNOWN_METHOD);
  EXPECT_TRUE(c.call(PingReq{}).ok());
}

TEST_F(RpcTest, malformedMessage_badRequest) {
  SyncClient c("127.0.0.1", server_->port());
  auto r = asio::co_spawn(c.io(), c.client().call_raw(Method::STAT, "short", {}, 1000ms), asio::use_future).get();
  ASSERT_TRUE(r.ok());
  Reader rd(r->payload);
  Error e;
  EXPECT_FALSE(decode_status(rd, e));
  EXPECT_EQ(e.code, Code::BAD_REQUEST);
}

TEST_F(RpcTest, wrongMagic_badRequestThenClosed) {
  auto s = raw();
  auto b = encode_frame(FrameHeader{});
  b[0] = 'X';
  asio::write(s, asio::buffer(b));
  EXPECT_EQ(read_rejection_then_eof(s), Code::BAD_REQUEST);
}

TEST_F(RpcTest, badHeaderChecksum_badRequestThenClosed) {
  auto s = raw();
  FrameHeader h;
  h.type = static_cast<uint16_t>(Method::PING);
  auto b = encode_frame(h);
  b[25] ^= 0x40;
  asio::write(s, asio::buffer(b));
  EXPECT_EQ(read_rejection_then_eof(s), Code::BAD_REQUEST);
}

TEST_F(RpcTest, oversizedFrame_badRequestThenClosed) {
  auto s = raw();
  FrameHeader h;
  h.type = static_cast<uint16_t>(Method::PING);
  h.payload_len = 64u << 20;
  asio::write(s, asio::buffer(encode_frame(h)));
  EXPECT_EQ(read_rejection_then_eof(s), Code::BAD_REQUEST);
}

TEST_F(RpcTest, garbage_badRequestThenClosed) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    auto s = raw();
    std::vector<unsigned char> junk(32 + rng() % 200);
    for (auto& c : junk) c = static_cast<unsigned char>(rng());
    asio::write(s, asio::buffer(junk));
    EXPECT_EQ(read_rejection_then_eof(s), Code::BAD_REQUEST);
  }
  SyncClient c("127.0.0.1", server_->port());
  EXPECT_TRUE(c.call(PingReq{}).ok()) << "server must survive garbage";
}

TEST_F(RpcTest, truncatedFrame_closedByFrameDeadline) {
  auto s = raw();
  FrameHeader h;
  h.type = static_cast<uint16_t>(Method::PING);
  h.payload_len = 100;
  asio::write(s, asio::buffer(encode_frame(h)));
  asio::write(s, asio::buffer("only ten b", 10));
  auto start = Clock::now();
  char c;
  boost::system::error_code ec;
  asio::read(s, asio::buffer(&c, 1), ec);  // blocks until the server gives up on the frame
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_LT(Clock::now() - start, 3s);
  SyncClient c2("127.0.0.1", server_->port());
  EXPECT_TRUE(c2.call(PingReq{}).ok());
}

TEST_F(RpcTest, serverGone_unavailableThenReconnects) {
  SyncClient c("127.0.0.1", server_->port());
  ASSERT_TRUE(c.call(PingReq{}).ok());
  uint16_t port = server_->port();
  std::promise<void> stopped;
  asio::post(io_, [&] { server_->stop(); stopped.set_value(); });
  stopped.get_future().wait();
  std::this_thread::sleep_for(50ms);
  auto r = c.call(PingReq{}, {}, nullptr, 1000ms);
  EXPECT_TRUE(r.code() == Code::UNAVAILABLE) << r.error().to_string();
  // A new server on the same port: the client reconnects on its next call.
  std::promise<void> restarted;
  asio::post(io_, [&] {
    ServerOptions opt;
    retired_.push_back(std::move(server_));  // its coroutines may still resume on io_
    server_ = std::make_unique<RpcServer>(io_, opt, &metrics_, "test");
    server_->route<PingReq>([](PingReq, Inbound&, Outbound&) -> awaitable<Result<PingResp>> {
      co_return PingResp{3, 4};
    });
    EXPECT_TRUE(server_->listen("127.0.0.1", port).ok());
    server_->start();
    restarted.set_value();
  });
  restarted.get_future().wait();
  auto again = c.call(PingReq{});
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(again->node_id, 3u);
}

}  // namespace
}  // namespace mydfs::proto
