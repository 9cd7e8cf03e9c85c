// storage_bench: writes then reads N bytes as full slices through one mydfs-storage daemon over
// loopback, with K calls in flight on one connection, and prints "name value unit" lines.
// Driven by `tools/bench storage`, which also measures the raw disk in the same run.
#include <chrono>
#include <random>

#include <CLI/CLI.hpp>

#include "common/checksum.h"
#include "common/parse.h"
#include "proto/rpc.h"
#include "storage/slot_format.h"
#include "tools/bench_slices.h"

using namespace mydfs;
using namespace mydfs::proto;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

struct Shared {
  std::vector<Location> slots;
  std::vector<std::shared_ptr<AlignedBuffer>> bufs;  // distinct slice contents, reused round robin
  std::vector<uint64_t> sums;
  size_t next = 0;
  uint64_t bytes = 0;
  std::optional<Error> error;
};

awaitable<void> writer(std::shared_ptr<RpcClient> c, Shared& s) {
  while (!s.error && s.next < s.slots.size()) {
    size_t i = s.next++;
    const auto& b = s.bufs[i % s.bufs.size()];
    // The slices form one chain, as a file's do.
    Location next = i + 1 < s.slots.size() ? s.slots[i + 1] : Location{};
    WriteSlotReq w{s.slots[i], 1, next, s.sums[i % s.sums.size()], SlotState::LIVE, 0};
    auto r = co_await c->call(w, Bulk::of(b));
    if (!r.ok()) s.error = r.error();
    else s.bytes += b->size();
  }
}

awaitable<void> reader(std::shared_ptr<RpcClient> c, Shared& s) {
  while (!s.error && s.next < s.slots.size()) {
    size_t i = s.next++;
    AlignedBuffer bulk;
    auto r = co_await c->call(ReadReq{s.slots[i], 0, UINT32_MAX}, {}, &bulk);
    if (!r.ok()) { s.error = r.error(); continue; }
    uint64_t want = r->whole ? r->meta.payload_checksum : r->range_checksum;
    if (xxh64(bulk.span()) != want || want != s.sums[i % s.sums.size()])
      s.error = make_error(Code::CHECKSUM_MISMATCH, fmt::format("slice {} read back wrong", i));
    s.bytes += bulk.size();
  }
}

// Small reads: 4 KiB at random offsets of random slices until `left` runs out (request-bound:
// the server's per-request work, its metrics path included, dominates).
awaitable<void> small_reader(std::shared_ptr<RpcClient> c, Shared& s, size_t& left, std::mt19937_64& rng) {
  while (!s.error && left > 0) {
    --left;
    size_t i = rng() % s.slots.size();
    uint32_t off = static_cast<uint32_t>(rng() % (storage::kPayloadCapacity / 4096)) * 4096;
    AlignedBuffer bulk;
    auto r = co_await c->call(ReadReq{s.slots[i], off, 4096}, {}, &bulk);
    if (!r.ok()) { s.error = r.error(); continue; }
    if (bulk.size() != 4096 || xxh64(bulk.span()) != r->range_checksum)
      s.error = make_error(Code::CHECKSUM_MISMATCH, fmt::format("small read of slice {} came back wrong", i));
  }
}

// Runs `workers` copies of fn concurrently on io until all finish; returns the elapsed seconds.
// (The client's connection keeps io busy, so completion is counted, not waited for by run().)
template <typename Fn>
double run_parallel(asio::io_context& io, int workers, Fn fn) {
  auto start = Clock::now();
  int left = workers;
  for (int i = 0; i < workers; ++i)
    asio::co_spawn(io, fn(), [&](std::exception_ptr) {
      if (--left == 0) io.stop();
    });
  io.restart();
  io.run();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string addr = "127.0.0.1:7100", size = "1GiB";
  int in_flight = 8;
  CLI::App app{"storage_bench: write then read slices through one storage daemon"};
  app.add_option("--addr", addr, "Storage daemon RPC address")->capture_default_str();
  app.add_option("--bytes", size, "How much to write and read")->capture_default_str();
  app.add_option("--in-flight", in_flight, "Calls in flight")->capture_default_str();
  size_t small_reads = 0;
  app.add_option("--small-reads", small_reads, "Then this many 4 KiB reads at random places (0 = none)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto hp = parse_host_port(addr);
  auto bytes = parse_size(size);
  if (!hp.ok() || !bytes.ok() || in_flight < 1) {
    fmt::print(stderr, "storage_bench: bad arguments\n");
    return 2;
  }
  size_t n = (*bytes + storage::kPayloadCapacity - 1) / storage::kPayloadCapacity;

  asio::io_context io;
  auto client = std::make_shared<RpcClient>(io.get_executor(), hp->host, hp->port);
  Shared s;
  bench::make_random_slices(16, s.bufs, s.sums);


  // Write: reserve the slots (as an upload does, in runs) and fill them, `in_flight` at a time.
  double write_s = run_parallel(io, 1, [&]() -> awaitable<void> {
    while (s.slots.size() < n && !s.error) {
      uint32_t k = static_cast<uint32_t>(std::min<size_t>(n - s.slots.size(), 64));
      auto r = co_await client->call(ReserveReq{1, k});
      if (!r.ok()) { s.error = r.error(); break; }
      s.slots.insert(s.slots.end(), r->slots.begin(), r->slots.end());
    }
    int left = in_flight;
    asio::steady_timer all(co_await asio::this_coro::executor, Clock::time_point::max());
    for (int i = 0; i < in_flight; ++i)
      asio::co_spawn(co_await asio::this_coro::executor, writer(client, s), [&](std::exception_ptr) {
        if (--left == 0) all.cancel();
      });
    boost::system::error_code ec;
    co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  });
  if (s.error) {
    fmt::print(stderr, "storage_bench: write failed: {}\n", s.error->to_string());
    return 1;
  }
  uint64_t written = s.bytes;
  fmt::print("storage.write.bytes {} B\n", written);
  fmt::print("storage.write {:.1f} MB/s\n", written / write_s / 1e6);
  fmt::print("storage.write.slices_per_s {:.1f} 1/s\n", n / write_s);

  if (std::getenv("MYDFS_BENCH_DROP_CACHES")) {
    ::sync();
    FILE* f = fopen("/proc/sys/vm/drop_caches", "w");
    if (f) { fputs("1", f); fclose(f); }
  }
  s.next = 0;
  s.bytes = 0;
  double read_s = run_parallel(io, in_flight, [&]() { return reader(client, s); });
  if (s.error) {
    fmt::print(stderr, "storage_bench: read failed: {}\n", s.error->to_string());
    return 1;
  }
  fmt::print("storage.read {:.1f} MB/s\n", s.bytes / read_s / 1e6);
  if (small_reads > 0) {
    size_t left = small_reads;
    std::mt19937_64 rng(42);
    double small_s = run_parallel(io, in_flight, [&]() { return small_reader(client, s, left, rng); });
    if (s.error) {
      fmt::print(stderr, "storage_bench: small reads failed: {}\n", s.error->to_string());
      return 1;
    }
    fmt::print("storage.small_read {:.0f} ops/s\n", small_reads / small_s);
  }
  client->close();
  return 0;
}
