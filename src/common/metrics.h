// A small metrics registry: counters, gauges (sampled by a callback) and latency histograms,
// rendered as Prometheus text exposition. Handles returned by the registry stay valid for its
// lifetime, so hot paths keep a pointer and only do an atomic add.
#pragma once
#include <array>
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

class Metrics {
 public:
  // name must be a valid Prometheus metric name; labels is the inside of {...} or "".
  Counter* counter(const std::string& name, const std::string& labels, const std::string& help);
  Gauge* gauge(const std::string& name, const std::string& labels, const std::string& help);
  Histogram* histogram(const std::string& name, const std::string& labels, const std::string& help);
  // A gauge whose value is computed when rendered.
  void gauge_fn(const std::string& name, const std::string& help, std::function<double()> fn);

  std::string prometheus() const;
  // Value of a counter or gauge by name and labels (tests, /status).
  double value(const std::string& name, const std::string& labels = "") const;

 private:
  struct Family {
    std::string type, help;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
    std::function<double()> fn;
  };
  Family& family(const std::string& name, const char* type, const std::string& help);
  mutable std::mutex mu_;  // guards families_ (not the values, which are atomics)
  std::map<std::string, Family> families_;
};

}  // namespace mydfs
