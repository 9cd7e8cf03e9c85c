#include "common/metrics.h"

#include <time.h>

#include <stdexcept>

#include <fmt/format.h>

namespace mydfs {

void Histogram::observe_ns(uint64_t ns) {
  double s = static_cast<double>(ns) / 1e9;
  size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

Metrics::Family& Metrics::family(const std::string& name, const char* type, const std::string& help) {
  auto& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  } else if (f.type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return f;
}

Counter* Metrics::counter(const std::string& name, const std::string& labels, const std::string& help) {
  std::lock_guard g(mu_);
  auto& slot = family(name, "counter", help).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* Metrics::gauge(const std::string& name, const std::string& labels, const std::string& help) {
  std::lock_guard g(mu_);
  auto& slot = family(name, "gauge", help).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* Metrics::histogram(const std::string& name, const std::string& labels, const std::string& help) {
  std::lock_guard g(mu_);
  auto& slot = family(name, "histogram", help).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>();
  return slot.get();
}

void Metrics::gauge_fn(const std::string& name, const std::string& labels, const std::string& help,
                       std::function<double()> fn) {
  std::lock_guard g(mu_);
  family(name, "gauge", help).fns[labels] = std::move(fn);
}

int64_t RateWindow::now_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec;
}

double RateWindow::rate_at(int64_t now, int seconds) const {
  uint64_t sum = 0;
  for (const Bucket& b : b_) {
    int64_t sec = b.sec.load(std::memory_order_relaxed);
    if (sec < now && sec >= now - seconds) sum += b.n.load(std::memory_order_relaxed);
  }
  return static_cast<double>(sum) / seconds;
}

void PoolMeter::export_to(Metrics& m, const std::string& name) {
  std::string l = "pool=\"" + name + "\"";
  m.gauge_fn("mydfs_pool_threads", l, "Threads of a worker pool", [this] { return static_cast<double>(threads_); });
  m.gauge_fn("mydfs_pool_busy_threads", l, "Threads of a worker pool running a task now",
             [this] { return static_cast<double>(busy_now()); });
  m.gauge_fn("mydfs_pool_utilization", l + ",window=\"1s\"", "Busy share of a worker pool's threads (0..1)",
             [this] { return utilization_1s(); });
  m.gauge_fn("mydfs_pool_utilization", l + ",window=\"1m\"", "Busy share of a worker pool's threads (0..1)",
             [this] { return utilization_1m(); });
}

static std::string series(const std::string& name, const std::string& labels) {
  return labels.empty() ? name : name + "{" + labels + "}";
}

std::string Metrics::prometheus() const {
  std::lock_guard g(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
    for (const auto& [l, c] : f.counters) out += fmt::format("{} {}\n", series(name, l), c->get());
    for (const auto& [l, c] : f.gauges) out += fmt::format("{} {}\n", series(name, l), c->get());
    for (const auto& [l, fn] : f.fns) out += fmt::format("{} {}\n", series(name, l), fn());
    for (const auto& [l, h] : f.histograms) {
      std::string sep = l.empty() ? "" : l + ",";
      uint64_t cum = 0;
      for (size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
        cum += h->buckets[i].load(std::memory_order_relaxed);
        std::string le = i < Histogram::kBounds.size() ? fmt::format("{}", Histogram::kBounds[i]) : "+Inf";
        out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, sep, le, cum);
      }
      out += fmt::format("{} {}\n", series(name + "_sum", l),
                         static_cast<double>(h->sum_ns.load()) / 1e9);
      out += fmt::format("{} {}\n", series(name + "_count", l), h->count.load());
    }
  }
  return out;
}

double Metrics::value(const std::string& name, const std::string& labels) const {
  std::lock_guard g(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  const Family& f = it->second;
  if (auto c = f.counters.find(labels); c != f.counters.end()) return static_cast<double>(c->second->get());
  if (auto c = f.gauges.find(labels); c != f.gauges.end()) return static_cast<double>(c->second->get());
  if (auto c = f.fns.find(labels); c != f.fns.end()) return c->second();
  return 0;
}

}  // namespace mydfs
