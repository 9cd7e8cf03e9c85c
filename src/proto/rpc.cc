#include "proto/rpc.h"

#include <array>
#include <sys/sendfile.h>

#include <spdlog/spdlog.h>

namespace mydfs::proto {

using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

// Completion condition for whole frames: Asio's default (transfer_all) caps every read or write
// at 64 KiB, which costs a 4 MiB slice 64 system calls and reactor turns; this asks for all that
// is left each time.
static size_t whole_frame(const error_code& ec, size_t /*done*/) { return ec ? 0 : size_t{1} << 30; }

std::string_view method_name(uint16_t m) {
  switch (static_cast<Method>(m)) {
    case Method::PING: return "ping";
    case Method::RESERVE: return "reserve";
    case Method::WRITE_SLOT: return "write_slot";
    case Method::PATCH: return "patch";
    case Method::SET_NEXT: return "set_next";
    case Method::SET_VALID_LEN: return "set_valid_len";
    case Method::REDIRECT: return "redirect";
    case Method::DELETE: return "delete";
    case Method::LOCK: return "lock";
    case Method::TX_DECIDE: return "tx_decide";
    case Method::TX_FINISH: return "tx_finish";
    case Method::TX_FORGET: return "tx_forget";
    case Method::RAFT_MESSAGE: return "raft_message";
    case Method::SLICE_PUSH: return "slice_push";
    case Method::SLICE_FETCH: return "slice_fetch";
    case Method::SNAPSHOT_BEGIN: return "snapshot_begin";
    case Method::SLOT_COPY: return "slot_copy";
    case Method::MEMBER_CHANGE: return "member_change";
    case Method::READ: return "read";
    case Method::STAT: return "stat";
    case Method::WALK: return "walk";
    case Method::INFO: return "info";
    case Method::NS_READ: return "ns_read";
    case Method::NS_WRITE: return "ns_write";
    case Method::ALLOCATE: return "allocate";
    case Method::HEARTBEAT: return "heartbeat";
    case Method::ADD_GROUP: return "add_group";
    case Method::CLUSTER_STATUS: return "cluster_status";
    case Method::REPLACE_MEMBER: return "replace_member";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// FrameWriter

static size_t frame_bytes(const OutFrame& f) {
  return f.payload.size() + f.bulk_buf.size() + f.bulk.bytes.size() + f.file.len;
}

void FrameWriter::push(OutFrame f) {
  if (closed_) return;
  queued_bytes_ += frame_bytes(f);
  queue_.push_back(std::move(f));
  wake_.cancel_one();
}

void FrameWriter::finish() {
  finishing_ = true;
  wake_.cancel_one();
}

void FrameWriter::close() {
  closed_ = true;
  wake_.cancel();
}

awaitable<bool> FrameWriter::send_file(const FileRange& f) {
  off_t off = f.offset;
  size_t left = f.len;
  while (left > 0) {
    ssize_t n = ::sendfile(sock_.native_handle(), f.fd, &off, left);
    if (n > 0) {
      left -= static_cast<size_t>(n);
      bytes_out_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      error_code ec;
      co_await sock_.async_wait(tcp::socket::wait_write, redirect_error(use_awaitable, ec));
      if (ec) co_return false;
      continue;
    }
    if (n == 0) {
      // The file ends before the range does: stores are sparse files, and a slice whose last
      // blocks are holes may end past the end of its file. Past the end reads as zeros.
      static const std::array<std::byte, 65536> zeros{};
      while (left > 0) {
        size_t k = std::min(left, zeros.size());
        error_code ec;
        co_await asio::async_write(sock_, asio::buffer(zeros.data(), k), redirect_error(use_awaitable, ec));
        if (ec) co_return false;
        left -= k;
        bytes_out_ += k;
      }
      break;
    }
    spdlog::error("sendfile failed: {}", std::strerror(errno));
    co_return false;
  }
  co_return true;
}

awaitable<void> FrameWriter::run() {
  sock_.native_non_blocking(true);
  while (!closed_) {
    if (queue_.empty()) {
      if (finishing_) break;
      error_code ec;
      wake_.expires_at(Clock::time_point::max());
      co_await wake_.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    OutFrame f = std::move(queue_.front());
    queue_.pop_front();
    size_t fb = frame_bytes(f);
    std::array<asio::const_buffer, 3> bufs = {
        asio::buffer(f.header), asio::buffer(f.payload),
        f.bulk_buf.empty() ? asio::buffer(f.bulk.bytes.data(), f.bulk.bytes.size())
                           : asio::buffer(f.bulk_buf.data(), f.bulk_buf.size())};
    error_code ec;
    size_t n = co_await asio::async_write(sock_, bufs, whole_frame, redirect_error(use_awaitable, ec));
    bytes_out_ += n;
    if (ec) break;
    if (f.file.fd >= 0 && !co_await send_file(f.file)) break;
    queued_bytes_ -= fb;
    if (on_sent) on_sent();
  }
  closed_ = true;
  queue_.clear();
  queued_bytes_ = 0;
  if (on_sent) on_sent();
  error_code ignored;
  sock_.close(ignored);
}

// ---------------------------------------------------------------------------------------------
// Server

class RpcServer::Conn : public std::enable_shared_from_this<RpcServer::Conn> {
 public:
  Conn(std::shared_ptr<Shared> srv, tcp::socket s)
      : srv_(std::move(srv)), sock_(std::move(s)), writer_(sock_), watchdog_(sock_.get_executor()),
        slot_free_(sock_.get_executor()) {
    srv_->connections->add(1);
  }
  ~Conn() { srv_->connections->add(-1); }

  void start() {
    auto self = shared_from_this();
    writer_.on_sent = [this] { slot_free_.cancel_one(); };
    asio::co_spawn(sock_.get_executor(), [self]() { return self->writer_.run(); }, asio::detached);
    asio::co_spawn(sock_.get_executor(), [self]() { return self->read_loop(); }, asio::detached);
    asio::co_spawn(sock_.get_executor(), [self]() { return self->watch(); }, asio::detached);
  }

  void close() {
    closing_ = true;
    error_code ignored;
    sock_.cancel(ignored);
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    writer_.close();
    watchdog_.cancel();
    slot_free_.cancel();
  }

 private:
  void set_deadline(std::chrono::milliseconds d) { deadline_ = Clock::now() + d; watchdog_.cancel(); }

  // Closes the connection when the current deadline passes (a stalled frame or an idle peer).
  awaitable<void> watch() {
    auto self = shared_from_this();
    while (!closing_) {
      error_code ec;
      watchdog_.expires_at(deadline_);
      co_await watchdog_.async_wait(redirect_error(use_awaitable, ec));
      if (!closing_ && Clock::now() >= deadline_) {
        spdlog::debug("rpc: closing connection: deadline passed");
        close();
      }
    }
  }

  // Replies BAD_REQUEST to a frame that failed its checks; the writer closes the socket once the
  // reply is out, and the watchdog closes it anyway if the peer does not read within a second.
  void reject(const FrameHeader& h, const std::string& why) {
    srv_->bad_frames->inc();
    spdlog::warn("rpc: bad frame from peer: {}; closing connection", why);
    Writer w;
    encode_error(w, make_error(Code::BAD_REQUEST, why));
    OutFrame f;
    f.payload = w.take();
    FrameHeader rh;
    rh.flags = kFlagResponse;
    rh.type = h.type;
    rh.request_id = h.request_id;
    rh.payload_len = static_cast<uint32_t>(f.payload.size());
    f.header = encode_frame(rh);
    writer_.push(std::move(f));
    writer_.finish();
    set_deadline(std::chrono::milliseconds(1000));  // the watchdog closes it if the peer never reads
  }

  awaitable<void> read_loop() {
    auto self = shared_from_this();
    FrameBytes hb;
    while (!closing_) {
      set_deadline(srv_->opt.idle_timeout);
      error_code ec;
      co_await asio::async_read(sock_, asio::buffer(hb), redirect_error(use_awaitable, ec));
      if (ec) break;
      set_deadline(srv_->opt.frame_timeout);
      FrameDecode d = decode_frame(hb.data(), srv_->opt.max_payload, srv_->opt.max_bulk);
      if (d.code != Code::OK) { reject(d.header, d.reason); co_return; }
      if (d.header.is_response()) { reject(d.header, "response frame sent to a server"); co_return; }
      auto in = std::make_shared<Inbound>();
      in->header = d.header;
      in->payload.resize(d.header.payload_len);
      in->bulk = AlignedBuffer(d.header.bulk_len);
      std::array<asio::mutable_buffer, 2> bufs = {asio::buffer(in->payload),
                                                  asio::buffer(in->bulk.data(), in->bulk.size())};
      co_await asio::async_read(sock_, bufs, whole_frame, redirect_error(use_awaitable, ec));
      if (ec) break;
      if (srv_->opt.metrics) {
        uint64_t n = kFrameHeaderSize + d.header.payload_len + d.header.bulk_len;
        srv_->bytes_in->inc(n);
        srv_->bytes_in_rate.add(n);
      }
      // Back-pressure: stop reading while too many requests of this connection are in flight or
      // too many reply bytes wait to be sent (a peer that does not read its replies). Waiting
      // here is the server's choice, so no deadline runs meanwhile.
      deadline_ = Clock::time_point::max();
      while ((in_flight_ >= srv_->opt.max_in_flight || writer_.queued_bytes() > srv_->opt.max_queued_bytes) &&
             !closing_) {
        slot_free_.expires_at(Clock::time_point::max());
        co_await slot_free_.async_wait(redirect_error(use_awaitable, ec));
      }
      ++in_flight_;
      asio::co_spawn(sock_.get_executor(), [self, in]() { return self->serve(in); }, asio::detached);
    }
    if (!closing_) close();
  }

  awaitable<void> serve(std::shared_ptr<Inbound> in) {
    auto self = shared_from_this();
    // Every request is counted here, in one place: totals, per method, rates, latency, bytes.
    const bool metered = srv_->opt.metrics;
    auto start = metered ? Clock::now() : Clock::time_point();
    if (metered) {
      srv_->in_flight->add(1);
      srv_->requests_total->inc();
      srv_->requests_rate.add(1);
    }
    Outbound out;
    auto it = srv_->routes.find(in->header.type);
    Route* route = it == srv_->routes.end() ? nullptr : &it->second;
    if (!route) {
      Writer w;
      encode_error(w, make_error(Code::UNKNOWN_METHOD,
                                 fmt::format("method 0x{:04x} is not served here", in->header.type)));
      out.payload = w.take();
    } else {
      if (metered) {
        route->requests->inc();
        route->rate->add(1);
      }
      try {
        out = co_await route->handler(*in);
      } catch (const std::exception& e) {
        spdlog::error("rpc: handler for {} threw: {}", method_name(in->header.type), e.what());
        Writer w;
        encode_error(w, make_error(Code::INTERNAL, e.what()));
        out = Outbound{};
        out.payload = w.take();
      }
      if (metered) {
        if (out.payload.size() >= 2 && (out.payload[0] != 0 || out.payload[1] != 0)) route->errors->inc();
        route->latency->observe_ns(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
      }
    }
    OutFrame f;
    FrameHeader rh;
    rh.flags = kFlagResponse;
    rh.type = in->header.type;
    rh.request_id = in->header.request_id;
    rh.payload_len = static_cast<uint32_t>(out.payload.size());
    rh.bulk_len = static_cast<uint32_t>(out.file.fd >= 0 ? out.file.len
                                        : !out.bulk.empty() ? out.bulk.size()
                                                            : out.shared.bytes.size());
    f.header = encode_frame(rh);
    if (metered) {
      srv_->bytes_out->inc(kFrameHeaderSize + rh.payload_len + rh.bulk_len);
      srv_->bytes_out_rate.add(kFrameHeaderSize + rh.payload_len + rh.bulk_len);
    }
    f.payload = std::move(out.payload);
    f.bulk_buf = std::move(out.bulk);
    if (f.bulk_buf.empty()) f.bulk = std::move(out.shared);
    f.file = std::move(out.file);
    writer_.push(std::move(f));
    if (metered) srv_->in_flight->add(-1);
    --in_flight_;
    slot_free_.cancel_one();
  }

  std::shared_ptr<Shared> srv_;
  tcp::socket sock_;
  FrameWriter writer_;
  asio::steady_timer watchdog_;
  asio::steady_timer slot_free_;
  Clock::time_point deadline_ = Clock::time_point::max();
  uint32_t in_flight_ = 0;
  bool closing_ = false;
};

RpcServer::RpcServer(asio::io_context& io, ServerOptions opt, Metrics* metrics, std::string daemon)
    : io_(io), metrics_(metrics), shared_(std::make_shared<Shared>()), acceptor_(io) {
  (void)daemon;
  Shared& sh = *shared_;
  sh.opt = opt;
  sh.requests_total = metrics_->counter("mydfs_rpc_requests_total", "", "RPC requests received");
  sh.bad_frames = metrics_->counter("mydfs_rpc_bad_frames_total", "", "Frames rejected as malformed");
  sh.bytes_in = metrics_->counter("mydfs_rpc_bytes_in_total", "", "Bytes received in RPC frames");
  sh.bytes_out = metrics_->counter("mydfs_rpc_bytes_out_total", "", "Bytes sent in RPC frames");
  sh.in_flight = metrics_->gauge("mydfs_rpc_in_flight", "", "RPC requests being handled");
  sh.connections = metrics_->gauge("mydfs_rpc_connections", "", "Open RPC connections");
  if (!opt.metrics) return;
  for (const char* w : {"1s", "1m"}) {
    bool sec = w[1] == 's';
    std::string l = fmt::format("window=\"{}\"", w);
    auto shp = shared_;  // the gauges keep it alive as long as the registry
    metrics_->gauge_fn("mydfs_rpc_requests_per_second", l, "RPC requests per second over the window",
                       [shp, sec] { return sec ? shp->requests_rate.rate_1s() : shp->requests_rate.rate_1m(); });
    metrics_->gauge_fn("mydfs_rpc_bytes_in_per_second", l, "Bytes received per second over the window",
                       [shp, sec] { return sec ? shp->bytes_in_rate.rate_1s() : shp->bytes_in_rate.rate_1m(); });
    metrics_->gauge_fn("mydfs_rpc_bytes_out_per_second", l, "Bytes sent per second over the window",
                       [shp, sec] { return sec ? shp->bytes_out_rate.rate_1s() : shp->bytes_out_rate.rate_1m(); });
  }
}

RpcServer::Rates RpcServer::rates() const {
  const Shared& sh = *shared_;
  Rates r;
  r.qps_1s = sh.requests_rate.rate_1s();
  r.qps_1m = sh.requests_rate.rate_1m();
  r.bytes_in_1s = sh.bytes_in_rate.rate_1s();
  r.bytes_out_1s = sh.bytes_out_rate.rate_1s();
  return r;
}

Status RpcServer::listen(const std::string& host, uint16_t port) {
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return make_error(Code::BAD_REQUEST, fmt::format("bad listen address '{}'", host));
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(Code::UNAVAILABLE, fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
  port_ = acceptor_.local_endpoint().port();
  return ok_status();
}

void RpcServer::handle(Method m, Handler h) {
  auto name = std::string(method_name(static_cast<uint16_t>(m)));
  Route r;
  r.handler = std::move(h);
  r.requests = metrics_->counter("mydfs_rpc_method_requests_total", "method=\"" + name + "\"",
                                 "RPC requests per method");
  r.errors = metrics_->counter("mydfs_rpc_method_errors_total", "method=\"" + name + "\"",
                               "RPC replies with a non-OK status per method");
  r.latency = metrics_->histogram("mydfs_rpc_latency_seconds", "method=\"" + name + "\"",
                                  "RPC handling latency per method");
  r.rate = std::make_unique<RateWindow>();
  if (shared_->opt.metrics) {
    std::shared_ptr<RateWindow> rw(shared_, r.rate.get());  // aliasing: keeps Shared (and the route) alive
    metrics_->gauge_fn("mydfs_rpc_method_requests_per_second", "method=\"" + name + "\",window=\"1s\"",
                       "RPC requests per second per method over the window", [rw] { return rw->rate_1s(); });
    metrics_->gauge_fn("mydfs_rpc_method_requests_per_second", "method=\"" + name + "\",window=\"1m\"",
                       "RPC requests per second per method over the window", [rw] { return rw->rate_1m(); });
  }
  shared_->routes[static_cast<uint16_t>(m)] = std::move(r);
}

void RpcServer::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void RpcServer::stop() {
  error_code ignored;
  acceptor_.close(ignored);
  std::lock_guard g(conns_mu_);
  for (auto& [p, w] : conns_)
    if (auto c = w.lock()) c->close();
  conns_.clear();
}

awaitable<void> RpcServer::accept_loop() {
  while (acceptor_.is_open()) {
    error_code ec;
    tcp::socket s = co_await acceptor_.async_accept(redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) break;
      spdlog::warn("rpc: accept failed: {}", ec.message());
      continue;
    }
    s.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Conn>(shared_, std::move(s));
    {
      std::lock_guard g(conns_mu_);
      for (auto it = conns_.begin(); it != conns_.end();)
        it = it->second.expired() ? conns_.erase(it) : std::next(it);
      conns_[c.get()] = c;
    }
    c->start();
  }
}

// ---------------------------------------------------------------------------------------------
// Client

struct RpcClient::Pending {
  explicit Pending(asio::any_io_executor ex) : done(ex) {}
  asio::steady_timer done;  // cancelled when the reply (or a failure) arrives
  bool finished = false;
  uint16_t method = 0;
  Result<RawReply> result = make_error(Code::TIMEOUT);
};

struct RpcClient::Conn {
  explicit Conn(asio::any_io_executor ex) : sock(ex), writer(sock) {}
  tcp::socket sock;
  FrameWriter writer;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> pending;
  bool dead = false;
  Clock::time_point last_rx = Clock::now();  // when the last complete frame arrived
};

RpcClient::RpcClient(asio::any_io_executor ex, std::string host, uint16_t port, ClientOptions opt)
    : ex_(ex), host_(std::move(host)), port_(port), addr_(fmt::format("{}:{}", host_, port_)), opt_(opt) {}

RpcClient::~RpcClient() { close(); }

void RpcClient::close() {
  if (conn_) {
    conn_->dead = true;
    error_code ignored;
    conn_->sock.close(ignored);
    conn_->writer.close();
    fail_all(conn_, make_error(Code::UNAVAILABLE, "client closed"));
    conn_.reset();
  }
}

void RpcClient::fail_all(std::shared_ptr<Conn> c, const Error& e) {
  for (auto& [id, p] : c->pending) {
    p->finished = true;
    p->result = e;
    p->done.cancel();
  }
  c->pending.clear();
}

awaitable<Status> RpcClient::ensure_connected() {
  while (connecting_) {  // another call is connecting: wait for it
    error_code ec;
    co_await connect_wait_->async_wait(redirect_error(use_awaitable, ec));
  }
  if (conn_ && !conn_->dead) co_return ok_status();
  connecting_ = true;
  connect_wait_ = std::make_unique<asio::steady_timer>(ex_, Clock::time_point::max());
  auto c = std::make_shared<Conn>(ex_);
  error_code ec;
  tcp::endpoint ep(asio::ip::make_address(host_, ec), port_);
  Status st = ok_status();
  if (ec) {
    st = make_error(Code::BAD_REQUEST, fmt::format("bad address '{}'", host_));
  } else {
    asio::steady_timer t(ex_);
    t.expires_after(opt_.connect_timeout);
    bool timed_out = false;
    t.async_wait([&, c](error_code e) { if (!e) { timed_out = true; error_code i; c->sock.close(i); } });
    co_await c->sock.async_connect(ep, redirect_error(use_awaitable, ec));
    t.cancel();
    if (ec || timed_out) {
      st = make_error(timed_out ? Code::TIMEOUT : Code::UNAVAILABLE,
                      fmt::format("cannot connect to {}: {}", addr_, timed_out ? "timed out" : ec.message()));
    } else {
      c->sock.set_option(tcp::no_delay(true), ec);
      conn_ = c;
      auto self = shared_from_this();
      asio::co_spawn(ex_, [c]() { return c->writer.run(); }, asio::detached);
      asio::co_spawn(ex_, [self, c]() { return self->read_loop(c); }, asio::detached);
    }
  }
  connecting_ = false;
  connect_wait_->cancel();
  co_return st;
}

awaitable<void> RpcClient::read_loop(std::shared_ptr<Conn> c) {
  FrameBytes hb;
  Error failure = make_error(Code::UNAVAILABLE, fmt::format("connection to {} closed", addr_));
  while (!c->dead) {
    error_code ec;
    co_await asio::async_read(c->sock, asio::buffer(hb), redirect_error(use_awaitable, ec));
    if (ec) break;
    FrameDecode d = decode_frame(hb.data(), opt_.max_payload, opt_.max_bulk);
    if (d.code != Code::OK || !d.header.is_response()) {
      failure = make_error(Code::BAD_REQUEST,
                           fmt::format("bad frame from {}: {}", addr_, d.code != Code::OK ? d.reason : "not a response"));
      spdlog::warn("rpc: {}", failure.message);
      break;
    }
    RawReply reply;
    reply.payload.resize(d.header.payload_len);
    reply.bulk = AlignedBuffer(d.header.bulk_len);
    std::array<asio::mutable_buffer, 2> bufs = {asio::buffer(reply.payload),
                                                asio::buffer(reply.bulk.data(), reply.bulk.size())};
    co_await asio::async_read(c->sock, bufs, whole_frame, redirect_error(use_awaitable, ec));
    if (ec) break;
    c->last_rx = Clock::now();
    auto it = c->pending.find(d.header.request_id);
    if (it == c->pending.end()) continue;  // the caller gave up (deadline)
    auto p = it->second;
    if (p->method != d.header.type) {
      failure = make_error(Code::BAD_REQUEST, fmt::format("reply from {} answers another method", addr_));
      break;
    }
    c->pending.erase(it);
    p->finished = true;
    p->result = std::move(reply);
    p->done.cancel();
  }
  c->dead = true;
  error_code ignored;
  c->sock.close(ignored);
  c->writer.close();
  fail_all(c, failure);
  if (conn_ == c) conn_.reset();
}

awaitable<Result<RawReply>> RpcClient::call_raw(Method m, std::string payload, Bulk bulk,
                                                std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  auto deadline = Clock::now() + timeout;
  if (payload.size() > opt_.max_payload || bulk.bytes.size() > opt_.max_bulk)
    co_return make_error(Code::TOO_LARGE, "request larger than the maximum frame size");
  Status st = co_await ensure_connected();
  if (!st.ok()) co_return st.take_error();
  auto c = conn_;
  auto p = std::make_shared<Pending>(ex_);
  p->method = static_cast<uint16_t>(m);
  auto sent_at = Clock::now();
  uint64_t id = next_id_++;
  c->pending[id] = p;
  FrameHeader h;
  h.type = static_cast<uint16_t>(m);
  h.request_id = id;
  h.payload_len = static_cast<uint32_t>(payload.size());
  h.bulk_len = static_cast<uint32_t>(bulk.bytes.size());
  OutFrame f;
  f.header = encode_frame(h);
  f.payload = std::move(payload);
  f.bulk = std::move(bulk);
  c->writer.push(std::move(f));
  p->done.expires_at(deadline);
  error_code ec;
  co_await p->done.async_wait(redirect_error(use_awaitable, ec));
  if (!p->finished) {
    c->pending.erase(id);
    if (c->last_rx < sent_at && !c->dead) {
      // Nothing at all arrived while we waited: the peer or the path is stuck. Drop the
      // connection so the next call starts a fresh one instead of queueing behind it.
      c->dead = true;
      error_code ignored;
      c->sock.close(ignored);
    }
    co_return make_error(Code::TIMEOUT, fmt::format("{} to {} timed out after {} ms",
                                                    method_name(static_cast<uint16_t>(m)), addr_, timeout.count()));
  }
  co_return std::move(p->result);
}

SyncClient::SyncClient(std::string host, uint16_t port, ClientOptions opt) {
  work_.emplace(io_.get_executor());
  client_ = std::make_shared<RpcClient>(io_.get_executor(), std::move(host), port, opt);
  thread_ = std::thread([this] { io_.run(); });
}

SyncClient::~SyncClient() {
  std::promise<void> closed;
  asio::post(io_, [c = client_, &closed] { c->close(); closed.set_value(); });
  closed.get_future().wait();
  client_.reset();
  work_.reset();
  io_.stop();
  thread_.join();
}

}  // namespace mydfs::proto
