#include "common/http_status.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace mydfs {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::redirect_error;
using asio::use_awaitable;

HttpStatusServer::HttpStatusServer(asio::io_context& io) : io_(io), acceptor_(io) {}

Status HttpStatusServer::listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return make_error(Code::BAD_REQUEST, fmt::format("bad HTTP listen address '{}'", host));
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return make_error(Code::UNAVAILABLE, fmt::format("cannot listen on {}:{} (http): {}", host, port, ec.message()));
  port_ = acceptor_.local_endpoint().port();
  return ok_status();
}

void HttpStatusServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void HttpStatusServer::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> HttpStatusServer::accept_loop() {
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    tcp::socket s = co_await acceptor_.async_accept(redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) break;
      continue;
    }
    asio::co_spawn(io_, serve(std::move(s)), asio::detached);
  }
}

asio::awaitable<void> HttpStatusServer::serve(tcp::socket s) {
  beast::flat_buffer buf;
  for (;;) {
    http::request<http::string_body> req;
    boost::system::error_code ec;
    // A slow or silent client is dropped after 10 s.
    asio::steady_timer guard(s.get_executor());
    guard.expires_after(std::chrono::seconds(10));
    guard.async_wait([&s](boost::system::error_code e) { if (!e) { boost::system::error_code i; s.close(i); } });
    co_await http::async_read(s, buf, req, redirect_error(use_awaitable, ec));
    guard.cancel();
    if (ec) break;
    HttpReply r;
    std::string path(req.target());
    if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      r = {405, "text/plain; charset=utf-8", "only GET is served here\n"};
    } else if (auto it = routes_.find(path); it != routes_.end()) {
      try {
        r = it->second();
      } catch (const std::exception& e) {
        r = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
      }
    } else {
      r = {404, "text/plain; charset=utf-8", "not found\n"};
    }
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, "mydfs");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(r.body);
    res.prepare_payload();
    co_await http::async_write(s, res, redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  s.shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace mydfs
