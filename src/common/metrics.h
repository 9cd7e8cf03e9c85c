// A small metrics registry: counters, gauges (sampled by a callback) and latency histograms,
// rendered as Prometheus text exposition. Handles returned by the registry stay valid for its
// lifetime, so hot paths keep a pointer and only do an atomic add.
#pragma once
#include <array>
#include <chrono>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace mydfs {

struct Counter {
  std::atomic<uint64_t> v{0};
  void inc(uint64_t n = 1) { v.fetch_add(n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct Gauge {
  std::atomic<int64_t> v{0};
  void add(int64_t n) { v.fetch_add(n, std::memory_order_relaxed); }
  void set(int64_t n) { v.store(n, std::memory_order_relaxed); }
  int64_t get() const { return v.load(std::memory_order_relaxed); }
};

// Latency histogram with fixed buckets from 50 µs to 10 s (seconds in the exposition).
struct Histogram {
  static constexpr std::array<double, 14> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
      0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0};
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_ns{0};
  void observe_ns(uint64_t ns);
};

// Events per second over the last complete second and the last complete minute: 64 one-second
// buckets stamped with their second, so an idle stretch reads as zero without a ticking thread.
// Lock-free: an add is two atomic operations (a count that lands exactly while its bucket turns
// over to a new second may be lost, which a rate can afford). Seconds come from the coarse
// monotonic clock, which costs a few nanoseconds.
class RateWindow {
 public:
  void add(uint64_t n = 1) { add_at(now_seconds(), n); }
  double rate_1s() const { return rate_at(now_seconds(), 1); }   // events in the last complete second
  double rate_1m() const { return rate_at(now_seconds(), 60); }  // last 60 complete seconds / 60
  void add_at(int64_t sec, uint64_t n) {
    Bucket& b = b_[static_cast<size_t>(sec) % kBuckets];
    int64_t was = b.sec.load(std::memory_order_relaxed);
    if (was != sec && b.sec.compare_exchange_strong(was, sec, std::memory_order_relaxed))
      b.n.store(0, std::memory_order_relaxed);
    b.n.fetch_add(n, std::memory_order_relaxed);
  }
  double rate_at(int64_t now_sec, int seconds) const;
  static int64_t now_seconds();

 private:
  static constexpr int kBuckets = 64;
  struct Bucket {
    std::atomic<int64_t> sec{-1};
    std::atomic<uint64_t> n{0};
  };
  std::array<Bucket, kBuckets> b_{};
};

// Busy share of a worker pool: callers wrap each task in busy(); utilization is busy thread-seconds
// per second of the last complete second, over the pool's threads.
class PoolMeter {
 public:
  explicit PoolMeter(size_t threads) : threads_(threads) {}
  size_t threads() const { return threads_; }
  int64_t busy_now() const { return busy_.load(std::memory_order_relaxed); }
  double utilization_1s() const { return busy_ns_.rate_1s() / 1e9 / static_cast<double>(threads_); }
  double utilization_1m() const { return busy_ns_.rate_1m() / 1e9 / static_cast<double>(threads_); }
  void set_enabled(bool on) { enabled_ = on; }  // off: busy() only runs fn (set before use)
  template <typename Fn>
  auto busy(Fn&& fn) -> decltype(fn()) {
    if (!enabled_) return fn();
    busy_.fetch_add(1, std::memory_order_relaxed);
    auto t0 = std::chrono::steady_clock::now();
    struct Done {
      PoolMeter* m;
      std::chrono::steady_clock::time_point t0;
      ~Done() {
        m->busy_ns_.add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  std::chrono::steady_clock::now() - t0).count()));
        m->busy_.fetch_sub(1, std::memory_order_relaxed);
      }
    } done{this, t0};
    return fn();
  }
  // Registers mydfs_pool_* gauges for this pool (pool="name") on m.
  void export_to(class Metrics& m, const std::string& name);

 private:
  size_t threads_;
  bool enabled_ = true;
  std::atomic<int64_t> busy_{0};
  RateWindow busy_ns_;
};

class Metrics {
 public:
  // name must be a valid Prometheus metric name; labels is the inside of {...} or "".
  Counter* counter(const std::string& name, const std::string& labels, const std::string& help);
  Gauge* gauge(const std::string& name, const std::string& labels, const std::string& help);
  Histogram* histogram(const std::string& name, const std::string& labels, const std::string& help);
  // A gauge whose value is computed when rendered.
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn) {
    gauge_fn(name, "", help, std::move(fn));
  }
  void gauge_fn(const std::string& name, const std::string& labels, const std::string& help,
                std::function<double()> fn);

  std::string prometheus() const;
  // Value of a counter or gauge by name and labels (tests, /status).
  double value(const std::string& name, const std::string& labels = "") const;

 private:
  struct Family {
    std::string type, help;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::map<std::string, std::function<double()>> fns;
  };
  Family& family(const std::string& name, const char* type, const std::string& help);
  mutable std::mutex mu_;  // guards families_ (not the values, which are atomics)
  std::map<std::string, Family> families_;
};

}  // namespace mydfs
