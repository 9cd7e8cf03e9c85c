// Bridges between coroutines and work done on other threads.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio.hpp>

#include "common/metrics.h"

namespace mydfs {

// Starts work with `start(done)`; `done(T)` may be called once, from any thread. The coroutine
// resumes on its own executor with the value.
template <typename T, typename Start>
boost::asio::awaitable<T> await_completion(Start start) {
  namespace asio = boost::asio;
  auto ex = co_await asio::this_coro::executor;
  struct State {
    explicit State(asio::any_io_executor e) : timer(e, std::chrono::steady_clock::time_point::max()) {}
    asio::steady_timer timer;
    std::optional<T> value;
  };
  auto st = std::make_shared<State>(ex);
  start([st, ex](T v) mutable {
    asio::post(ex, [st, v = std::move(v)]() mutable {
      st->value.emplace(std::move(v));
      st->timer.cancel();
    });
  });
  while (!st->value) {
    boost::system::error_code ec;
    co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return std::move(*st->value);
}

// Runs fn() on pool (blocking work: disk I/O) and resumes with its result.
template <typename Pool, typename Fn>
auto run_on(Pool& pool, Fn fn) -> boost::asio::awaitable<decltype(fn())> {
  using T = decltype(fn());
  co_return co_await await_completion<T>([&pool, fn = std::move(fn)](auto done) mutable {
    boost::asio::post(pool, [fn = std::move(fn), done = std::move(done)]() mutable { done(fn()); });
  });
}

// Runs `count` copies of the coroutine worker() at once on ex and resumes when all have ended:
// items move several at a time, each worker taking the next one until none are left.
template <typename Worker>
boost::asio::awaitable<void> run_workers(boost::asio::any_io_executor ex, uint64_t count, Worker& worker) {
  co_await await_completion<bool>([&](auto done) {
    uint64_t workers = std::max<uint64_t>(1, count);
    auto left = std::make_shared<uint64_t>(workers);
    for (uint64_t k = 0; k < workers; ++k)
      boost::asio::co_spawn(ex, worker(), [left, done](std::exception_ptr) mutable {
        if (--*left == 0) done(true);
      });
  });
}

// Calls fn on timer's executor every period until the timer is cancelled (a period of zero or
// less: never).
inline void repeat_every(boost::asio::steady_timer& timer, std::chrono::steady_clock::duration period,
                         std::function<void()> fn) {
  if (period <= period.zero()) return;
  timer.expires_after(period);
  timer.async_wait([&timer, period, fn = std::move(fn)](const boost::system::error_code& ec) mutable {
    if (ec) return;
    fn();
    repeat_every(timer, period, std::move(fn));
  });
}

// A thread pool whose busy share is measured (run_on counts every task's running time).
class MeteredPool {
 public:
  explicit MeteredPool(size_t threads) : pool_(threads), meter_(threads) {}
  boost::asio::thread_pool& pool() { return pool_; }
  PoolMeter& meter() { return meter_; }
  void join() { pool_.join(); }

 private:
  boost::asio::thread_pool pool_;
  PoolMeter meter_;
};

template <typename Fn>
auto run_on(MeteredPool& mp, Fn fn) -> boost::asio::awaitable<decltype(fn())> {
  using T = decltype(fn());
  PoolMeter* meter = &mp.meter();
  co_return co_await run_on(mp.pool(), [meter, fn = std::move(fn)]() mutable -> T { return meter->busy(fn); });
}

}  // namespace mydfs
