// client_bench: the client library against a running cluster; prints "name value unit" lines.
// Driven by `tools/bench client`, which starts the cluster and measures the raw disk in the same
// run. Figures: put and get of a big file, many small files, and the latency of a 4 KiB
// write-at and of a 1 MiB splice in the middle of big files.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "client/client.h"
#include "common/parse.h"

using namespace mydfs;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A deterministic pseudo-random pattern, cheap to produce at any offset: a 64 MiB random block
// read cyclically (so slices are not all alike, and nothing compresses or dedups).
struct Pattern {
  std::string block;
  Pattern() : block(64u << 20, '\0') {
    std::mt19937_64 rng(42);
    for (size_t i = 0; i < block.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(block.data() + i, &v, 8);
    }
  }
  client::Source source(uint64_t size) const {
    return [this, size](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
      size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), size - std::min(off, size)));
      size_t done = 0;
      while (done < n) {
        size_t at = static_cast<size_t>((off + done) % block.size());
        size_t k = std::min(n - done, block.size() - at);
        std::memcpy(out.data() + done, block.data() + at, k);
        done += k;
      }
      return n;
    };
  }
};

void drop_caches() {
  if (!std::getenv("MYDFS_BENCH_DROP_CACHES")) return;
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "1\n";
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

[[noreturn]] void die(const std::string& what, const Error& e) {
  fmt::print(stderr, "client_bench: {}: {}\n", what, e.to_string());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  std::string tracker = "127.0.0.1:7000", big = "1GiB", bigger = "4GiB";
  uint32_t small_files = 10000, samples = 20;
  CLI::App app{"client_bench: the client library against a running cluster"};
  app.add_option("--tracker", tracker, "Tracker RPC address")->capture_default_str();
  app.add_option("--bytes", big, "Size of the big file (put, get, write-at, splice)")->capture_default_str();
  app.add_option("--bigger", bigger, "Size of the second file for the splice comparison (0: skip)")->capture_default_str();
  app.add_option("--small-files", small_files, "4 KiB files to create with 8 clients")->capture_default_str();
  app.add_option("--samples", samples, "Edits per latency figure")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto big_n = parse_size(big);
  auto bigger_n = parse_size(bigger);
  if (!big_n.ok() || !bigger_n.ok() || *big_n < (16u << 20)) {
    fmt::print(stderr, "client_bench: sizes must be numbers with optional suffixes, --bytes at least 16MiB\n");
    return 2;
  }
  client::ClientOptions o;
  o.tracker = tracker;
  client::Client c(o);
  Pattern pat;
  if (auto st = c.mkdir("/bench", 0755, true); !st.ok()) die("mkdir", st.error());

  // Put and get of the big file.
  auto t0 = Clock::now();
  auto put = c.put("/bench/big", *big_n, pat.source(*big_n));
  if (!put.ok()) die("put", put.error());
  double put_s = seconds_since(t0);
  fmt::print("client.put {:.1f} MB/s\n", static_cast<double>(*big_n) / put_s / 1e6);
  drop_caches();
  t0 = Clock::now();
  auto got = c.get(*put, [](uint64_t, std::span<const std::byte>) { return ok_status(); });
  if (!got.ok()) die("get", got.error());
  double get_s = seconds_since(t0);
  if (*got != *big_n) die("get", make_error(Code::INTERNAL, "short read"));
  fmt::print("client.get {:.1f} MB/s\n", static_cast<double>(*big_n) / get_s / 1e6);

  // 4 KiB write-at in the middle of the big file. The first edit walks the chain; later ones
  // find the chain map still good (an in-place patch keeps it) and skip the walk.
  std::mt19937_64 rng(7);
  std::string four_k(4096, 'w');
  std::vector<double> lat;
  for (uint32_t i = 0; i < samples; ++i) {
    uint64_t off = *big_n / 2 + (rng() % (16u << 20));
    t0 = Clock::now();
    auto r = c.write_at("/bench/big", off, four_k);
    if (!r.ok()) die("write-at", r.error());
    lat.push_back(seconds_since(t0) * 1e3);
  }
  fmt::print("client.write_at_4k.first {:.2f} ms\n", lat[0]);
  std::vector<double> rest(lat.begin() + 1, lat.end());
  fmt::print("client.write_at_4k.p50 {:.2f} ms\n", percentile(rest, 0.5));
  fmt::print("client.write_at_4k.p99 {:.2f} ms\n", percentile(rest, 0.99));

  // A 1 MiB splice (insert) in the middle: copy-on-write of the slice there, never the tail.
  std::string one_m(1u << 20, 's');
  auto splice_p50 = [&](const std::string& path, uint64_t size) {
    std::vector<double> l;
    for (uint32_t i = 0; i < std::max<uint32_t>(3, samples / 2); ++i) {
      uint64_t off = size / 2 + (rng() % (16u << 20));
      t0 = Clock::now();
      auto r = c.splice(path, off, 0, one_m);
      if (!r.ok()) die("splice", r.error());
      l.push_back(seconds_since(t0) * 1e3);
    }
    return percentile(l, 0.5);
  };
  fmt::print("client.splice_1m.{}.p50 {:.2f} ms\n", big, splice_p50("/bench/big", *big_n));
  if (*bigger_n > 0) {
    auto p2 = c.put("/bench/bigger", *bigger_n, pat.source(*bigger_n));
    if (!p2.ok()) die("put bigger", p2.error());
    fmt::print("client.splice_1m.{}.p50 {:.2f} ms\n", bigger, splice_p50("/bench/bigger", *bigger_n));
    auto ch = c.chain(*c.stat("/bench/bigger"));
    if (ch.ok()) fmt::print("client.chain_slices.{} {} slices\n", bigger, ch->size());
  }
  auto ch = c.chain(*c.stat("/bench/big"));
  if (ch.ok()) fmt::print("client.chain_slices.{} {} slices\n", big, ch->size());

  // Many small files, 8 clients at once (each its own connections, as 8 processes would have).
  {
    std::string four_k(4096, 'x');
    std::atomic<uint32_t> next{0};
    std::atomic<int> failed{0};
    t0 = Clock::now();
    std::vector<std::thread> th;
    for (int k = 0; k < 8; ++k)
      th.emplace_back([&] {
        client::Client cc(o);
        for (uint32_t i; (i = next++) < small_files;) {
          auto r = cc.put(fmt::format("/bench/small-{}", i), four_k.size(),
                          [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
                            size_t n = std::min<size_t>(out.size(), four_k.size() - off);
                            std::memcpy(out.data(), four_k.data() + off, n);
                            return n;
                          });
          if (!r.ok()) failed++;
        }
      });
    for (auto& t : th) t.join();
    if (failed) die("small files", make_error(Code::INTERNAL, fmt::format("{} puts failed", failed.load())));
    fmt::print("client.small_files_4k.c8 {:.0f} files/s\n", small_files / seconds_since(t0));
  }

  return 0;
}
