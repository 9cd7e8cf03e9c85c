// The HTTP status port every daemon has: GET-only, a handler per path (e.g. /status, /metrics).
#pragma once
#include <functional>
#include <map>
#include <string>

#include <boost/asio.hpp>

#include "common/result.h"

namespace mydfs {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpStatusServer {
 public:
  using Handler = std::function<HttpReply()>;
  explicit HttpStatusServer(boost::asio::io_context& io);
  Status listen(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }
  void route(const std::string& path, Handler h) { routes_[path] = std::move(h); }
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket s);
  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::map<std::string, Handler> routes_;  // filled before start()
};

}  // namespace mydfs
