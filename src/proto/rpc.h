// RPC over framed TCP connections (Boost.Asio C++20 coroutines).
//
// Server: one coroutine per connection owns its socket and reads frames; every request is handled
// in a coroutine of its own, so many are in flight per connection; replies go through a write
// queue drained by one writer coroutine. Replies may carry bulk from memory or straight from a file
// descriptor (sendfile). A frame that fails its checks gets a BAD_REQUEST reply and the connection
// is closed; a frame that stalls half-way is cut by the frame deadline.
//
// Client: one persistent connection, calls matched to replies by request id, a deadline on every
// call, reconnect on the next call after a failure.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <optional>
#include <thread>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include <boost/asio.hpp>

#include "common/buffer.h"
#include "common/metrics.h"
#include "common/result.h"
#include "proto/frame.h"
#include "proto/messages.h"

namespace mydfs::proto {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A byte range of an open file to send as bulk (sendfile). keep holds whatever keeps fd open.
struct FileRange {
  int fd = -1;
  off_t offset = 0;
  size_t len = 0;
  std::shared_ptr<const void> keep;
};

// Bulk supplied by a caller: bytes plus something that owns them until the write completes.
struct Bulk {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
  static Bulk of(std::shared_ptr<const AlignedBuffer> b) {
    Bulk x;
    x.bytes = b->span();
    x.owner = std::move(b);
    return x;
  }
};

struct Inbound {
  FrameHeader header;
  std::string payload;
  AlignedBuffer bulk;
};

struct Outbound {
  std::string payload;  // status envelope + message
  AlignedBuffer bulk;   // either bulk from memory ...
  Bulk shared;          // ... or from memory others hold too (the hot-slice cache) ...
  FileRange file;       // ... or from a file (file.fd >= 0); only one of the three
};

// One frame queued for writing.
struct OutFrame {
  FrameBytes header{};
  std::string payload;
  AlignedBuffer bulk_buf;
  Bulk bulk;
  FileRange file;
};

// Writes queued frames in order on one socket. Lives inside a connection; run() is its coroutine.
class FrameWriter {
 public:
  explicit FrameWriter(tcp::socket& s) : sock_(s), wake_(s.get_executor()) {}
  void push(OutFrame f);
  awaitable<void> run();  // returns when the socket fails or close() was called
  size_t queued_bytes() const { return queued_bytes_; }
  // Called after each frame is written (the server uses it to resume reading).
  std::function<void()> on_sent;
  void finish();  // close the socket once the queue is drained
  void close();
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  awaitable<bool> send_file(const FileRange& f);
  tcp::socket& sock_;
  asio::steady_timer wake_;
  std::deque<OutFrame> queue_;
  bool closed_ = false;
  bool finishing_ = false;
  uint64_t bytes_out_ = 0;
  size_t queued_bytes_ = 0;  // payload + bulk bytes waiting in queue_
};

struct ServerOptions {
  uint32_t max_payload = kDefaultMaxPayload;
  uint32_t max_bulk = kDefaultMaxBulk;
  std::chrono::milliseconds frame_timeout{10000};  // rest of a frame after its header
  std::chrono::milliseconds idle_timeout{600000};  // no frame at all
  uint32_t max_in_flight = 64;                      // per connection; reading pauses beyond
  size_t max_queued_bytes = 64u << 20;              // replies not yet sent; reading pauses beyond
  bool metrics = true;  // count requests, bytes, latency and rates (off: only connections)
};

class RpcServer {
 public:
  using Handler = std::function<awaitable<Outbound>(Inbound&)>;

  RpcServer(asio::io_context& io, ServerOptions opt, Metrics* metrics, std::string daemon);
  // Binds and listens (port 0 = any). Errors out with a message on failure.
  Status listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  void start();  // spawns the accept loop
  void stop();   // stops accepting and closes connections

  void handle(Method m, Handler h);
  // Typed route: f(Req, Inbound&, Outbound&) -> awaitable<Result<Req::Response>>; the envelope,
  // decode errors and metrics are handled here.
  template <typename Req, typename F>
  void route(F f) {
    handle(Req::kMethod, [f](Inbound& in) -> awaitable<Outbound> {
      Outbound out;
      auto req = decode_message<Req>(in.payload);
      Result<typename Req::Response> res;  // (no co_await inside ?: — GCC 12 miscompiles it)
      if (req.ok()) res = co_await f(std::move(req).value(), in, out);
      else res = req.take_error();
      Writer w;
      if (res.ok()) {
        encode_ok(w);
        res.value().encode(w);
      } else {
        encode_error(w, res.error());
        out.bulk = AlignedBuffer();
        out.shared = Bulk();
        out.file = FileRange();
      }
      out.payload = w.take();
      co_return out;
    });
  }

  Metrics* metrics() const { return metrics_; }
  // Requests and bytes per second over the last complete second / minute.
  struct Rates {
    double qps_1s = 0, qps_1m = 0, bytes_in_1s = 0, bytes_out_1s = 0;
  };
  Rates rates() const;

 private:
  class Conn;
  awaitable<void> accept_loop();
  struct Route {
    Handler handler;
    Counter* requests = nullptr;
    Counter* errors = nullptr;
    Histogram* latency = nullptr;
    std::unique_ptr<RateWindow> rate;
  };
  // What connections use, shared with them so a connection that outlives the server object
  // (its coroutines finish after stop()) never touches freed memory. The Metrics must outlive
  // the io_context.
  struct Shared {
    ServerOptions opt;
    std::unordered_map<uint16_t, Route> routes;  // filled before start(), read-only after
    Counter* requests_total;
    Counter* bad_frames;
    Counter* bytes_in;
    Counter* bytes_out;
    Gauge* in_flight;
    Gauge* connections;
    RateWindow requests_rate, bytes_in_rate, bytes_out_rate;
  };

  asio::io_context& io_;
  Metrics* metrics_;
  std::shared_ptr<Shared> shared_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::mutex conns_mu_;
  std::unordered_map<Conn*, std::weak_ptr<Conn>> conns_;
};

struct ClientOptions {
  uint32_t max_payload = kDefaultMaxPayload;
  uint32_t max_bulk = kDefaultMaxBulk;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds call_timeout{10000};  // default deadline of a call
};

struct RawReply {
  std::string payload;
  AlignedBuffer bulk;
};

// A connection to one server. All calls must be made from coroutines on the same executor
// (a single-threaded io_context, or a strand).
class RpcClient : public std::enable_shared_from_this<RpcClient> {
 public:
  RpcClient(asio::any_io_executor ex, std::string host, uint16_t port, ClientOptions opt = {});
  ~RpcClient();

  awaitable<Result<RawReply>> call_raw(Method m, std::string payload, Bulk bulk,
                                       std::chrono::milliseconds timeout);

  // Not a coroutine itself: the request is encoded here, at the call, so nothing of the caller's
  // has to outlive it. (This also keeps request temporaries out of co_await expressions, where
  // GCC 12 may destroy them twice.)
  template <typename Req>
  awaitable<Result<typename Req::Response>> call(const Req& req, Bulk bulk = {}, AlignedBuffer* bulk_out = nullptr,
                                                 std::chrono::milliseconds timeout = {}) {
    return call_encoded<typename Req::Response>(Req::kMethod, encode_message(req), std::move(bulk), bulk_out,
                                                timeout.count() ? timeout : opt_.call_timeout);
  }

  template <typename Resp>
  awaitable<Result<Resp>> call_encoded(Method m, std::string payload, Bulk bulk, AlignedBuffer* bulk_out,
                                       std::chrono::milliseconds timeout) {
    auto raw = co_await call_raw(m, std::move(payload), std::move(bulk), timeout);
    if (!raw.ok()) co_return raw.take_error();
    Reader r(raw->payload);
    Error err;
    if (!decode_status(r, err)) co_return err;
    Resp resp;
    resp.decode(r);
    if (!r.done()) co_return make_error(Code::BAD_REQUEST, "malformed response");
    if (bulk_out) *bulk_out = std::move(raw->bulk);
    co_return resp;
  }

  // Connects now if not connected: a failure here means no request was sent.
  awaitable<Status> connect() { return ensure_connected(); }
  void close();
  const std::string& address() const { return addr_; }

 private:
  struct Pending;
  struct Conn;
  awaitable<Status> ensure_connected();
  awaitable<void> read_loop(std::shared_ptr<Conn> c);
  void fail_all(std::shared_ptr<Conn> c, const Error& e);

  asio::any_io_executor ex_;
  std::string host_;
  uint16_t port_;
  std::string addr_;
  ClientOptions opt_;
  std::shared_ptr<Conn> conn_;
  bool connecting_ = false;
  std::unique_ptr<asio::steady_timer> connect_wait_;
  uint64_t next_id_ = 1;
};

// A client with its own io_context thread, for blocking callers (CLI, tests, benchmarks).
class SyncClient {
 public:
  SyncClient(std::string host, uint16_t port, ClientOptions opt = {});
  ~SyncClient();
  template <typename Req>
  Result<typename Req::Response> call(const Req& req, Bulk bulk = {}, AlignedBuffer* bulk_out = nullptr,
                                      std::chrono::milliseconds timeout = {}) {
    auto fut = asio::co_spawn(io_, client_->call(req, std::move(bulk), bulk_out, timeout), asio::use_future);
    return fut.get();
  }
  RpcClient& client() { return *client_; }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::shared_ptr<RpcClient> client_;
  std::thread thread_;
};

std::string_view method_name(uint16_t m);

}  // namespace mydfs::proto
