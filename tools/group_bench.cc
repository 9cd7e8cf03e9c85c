// group_bench: a storage group of three (Raft) beside a single-node group, both started here as
// real processes on loopback. Prints "name value unit" lines:
//   - 4 MiB slice writes to the 3-replica group's leader and to the single node, alternating
//     rounds in the same run, and their ratio;
//   - slice reads from the leader;
//   - failover: after `kill -9` of the leader, the time until a write is acknowledged by the new
//     one (p50, p99 and max over --kills).
// Driven by `tools/bench group`.
#include <signal.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/checksum.h"
#include "common/parse.h"
#include "proto/rpc.h"
#include "storage/slot_format.h"
#include "tools/bench_slices.h"
#include "tests/integration/harness.h"

using namespace mydfs;
using namespace mydfs::proto;
using mydfs::testing::Daemon;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Node {
  uint16_t port = 0;
  std::unique_ptr<Daemon> d;
};

std::vector<std::shared_ptr<AlignedBuffer>> g_bufs;
std::vector<uint64_t> g_sums;

// Writes n full slices to the group behind port (reserve in runs, then `in_flight` writes at a
// time on one connection); returns seconds, or -1 on failure.
double write_slices(uint16_t port, size_t n, int in_flight, std::vector<Location>* out) {
  asio::io_context io;
  auto c = std::make_shared<RpcClient>(io.get_executor(), "127.0.0.1", port);
  std::vector<Location> slots;
  std::optional<Error> err;
  size_t next = 0;
  auto start = Clock::now();
  asio::co_spawn(io, [&]() -> awaitable<void> {
    while (slots.size() < n && !err) {
      uint32_t k = static_cast<uint32_t>(std::min<size_t>(n - slots.size(), 64));
      auto r = co_await c->call(ReserveReq{1, k});
      if (!r.ok()) { err = r.error(); co_return; }
      slots.insert(slots.end(), r->slots.begin(), r->slots.end());
    }
    int left = in_flight;
    asio::steady_timer all(co_await asio::this_coro::executor, Clock::time_point::max());
    for (int w = 0; w < in_flight; ++w)
      asio::co_spawn(co_await asio::this_coro::executor, [&]() -> awaitable<void> {
        while (!err && next < slots.size()) {
          size_t i = next++;
          Location nx = i + 1 < slots.size() ? slots[i + 1] : Location{};
          WriteSlotReq req{slots[i], 1, nx, g_sums[i % g_sums.size()], SlotState::LIVE, 0, 0};
          auto r = co_await c->call(req, Bulk::of(g_bufs[i % g_bufs.size()]));
          if (!r.ok()) err = r.error();
        }
      }, [&](std::exception_ptr) { if (--left == 0) all.cancel(); });
    boost::system::error_code ec;
    co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    c->close();
  }, asio::detached);
  io.run();
  if (err) {
    fmt::print(stderr, "group_bench: write to port {} failed: {}\n", port, err->to_string());
    return -1;
  }
  if (out) *out = slots;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double read_slices(uint16_t port, const std::vector<Location>& slots, int in_flight) {
  asio::io_context io;
  auto c = std::make_shared<RpcClient>(io.get_executor(), "127.0.0.1", port);
  std::optional<Error> err;
  size_t next = 0;
  int left = in_flight;
  auto start = Clock::now();
  for (int w = 0; w < in_flight; ++w)
    asio::co_spawn(io, [&]() -> awaitable<void> {
      while (!err && next < slots.size()) {
        size_t i = next++;
        AlignedBuffer bulk;
        auto r = co_await c->call(ReadReq{slots[i], 0, UINT32_MAX}, {}, &bulk);
        if (!r.ok()) { err = r.error(); co_return; }
        if (xxh64(bulk.span()) != g_sums[i % g_sums.size()])
          err = make_error(Code::CHECKSUM_MISMATCH, fmt::format("slice {} read back wrong", i));
      }
    }, [&](std::exception_ptr) { if (--left == 0) c->close(); });
  io.run();
  if (err) {
    fmt::print(stderr, "group_bench: read failed: {}\n", err->to_string());
    return -1;
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One slice written to whichever member takes it; true once acknowledged.
bool write_one(uint16_t port) {
  ClientOptions co;
  co.connect_timeout = 100ms;
  co.call_timeout = 2000ms;
  SyncClient c("127.0.0.1", port, co);
  auto r = c.call(ReserveReq{1, 1});
  if (!r.ok() || r->slots.empty()) return false;
  WriteSlotReq req{r->slots[0], 1, Location{}, g_sums[0], SlotState::LIVE, 0, 0};
  auto w = c.call(req, Bulk::of(g_bufs[0]));
  if (!w.ok()) return false;
  DeleteReq d{r->slots[0], 0};
  (void)c.call(d);
  return true;
}

int leader_of(const std::vector<Node>& g) {
  for (size_t i = 0; i < g.size(); ++i) {
    if (!g[i].d->running()) continue;
    ClientOptions co;
    co.connect_timeout = 100ms;
    co.call_timeout = 500ms;
    SyncClient c("127.0.0.1", g[i].port, co);
    auto r = c.call(StatReq{Location{1, 1, 1}});
    if (r.ok() || (r.code() != Code::NOT_LEADER && r.code() != Code::UNAVAILABLE && r.code() != Code::TIMEOUT))
      return static_cast<int>(i);
  }
  return -1;
}

int wait_leader(const std::vector<Node>& g, std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  for (;;) {
    int l = leader_of(g);
    if (l >= 0 || Clock::now() > until) return l;
    std::this_thread::sleep_for(10ms);
  }
}

// CPU seconds (user + system) a process has used so far, all its threads; 0 if it is gone.
double cpu_seconds(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // the name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// CPU used by the given daemons and by this process (the client) while fn runs.
template <typename Fn>
double cpu_during(const std::vector<const Daemon*>& daemons, Fn&& fn) {
  auto total = [&] {
    double t = self_cpu_seconds();
    for (auto* d : daemons) t += cpu_seconds(d->pid());
    return t;
  };
  double before = total();
  fn();
  return total() - before;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin, dir, size = "1GiB", capacity = "8GiB";
  int in_flight = 8, kills = 20, rounds = 3;
  bool single_raft = false;
  CLI::App app{"group_bench: a Raft storage group of three against a single node"};
  app.add_option("--storage-bin", bin, "mydfs-storage binary")->required();
  app.add_option("--dir", dir, "Scratch directory (data and logs)")->required();
  app.add_option("--bytes", size, "Written per round to each group")->capture_default_str();
  app.add_option("--capacity", capacity, "Store size of every node")->capture_default_str();
  app.add_option("--in-flight", in_flight, "Writes in flight")->capture_default_str();
  app.add_option("--rounds", rounds, "Alternating write rounds per group (medians are printed)")->capture_default_str();
  app.add_option("--kills", kills, "Leader kills for the failover figures")->capture_default_str();
  app.add_flag("--single-raft", single_raft,
               "Run the single node as a Raft group of one (default: the write-ahead log of a group of one)");
  CLI11_PARSE(app, argc, argv);
  auto bytes = parse_size(size);
  if (!bytes.ok() || in_flight < 1 || kills < 1 || rounds < 1) {
    fmt::print(stderr, "group_bench: bad arguments\n");
    return 2;
  }
  size_t n = (*bytes + storage::kPayloadCapacity - 1) / storage::kPayloadCapacity;
  bench::make_random_slices(16, g_bufs, g_sums);


  std::vector<Node> group(3);
  Node single;
  for (auto& m : group) m.port = testing::free_port();
  single.port = testing::free_port();
  std::string members;
  for (int i = 0; i < 3; ++i) members += fmt::format("{}{}=127.0.0.1:{}", i ? "," : "", i + 1, group[i].port);
  auto args = [&](int id, uint16_t port, const std::string& name) {
    std::vector<std::string> a{"--data", dir + "/" + name, "--listen", fmt::format("127.0.0.1:{}", port),
                               "--http", "127.0.0.1:0", "--node-id", std::to_string(id), "--group-id", "1",
                               "--capacity", capacity, "--log-level", "warn"};
    return a;
  };
  for (int i = 0; i < 3; ++i) {
    auto a = args(i + 1, group[i].port, fmt::format("g{}", i + 1));
    a.insert(a.end(), {"--members", members});
    group[i].d = std::make_unique<Daemon>(bin, a, dir + fmt::format("/g{}.log", i + 1));
    group[i].d->start();
  }
  auto sargs = args(9, single.port, "single");
  if (single_raft) sargs.insert(sargs.end(), {"--members", fmt::format("9=127.0.0.1:{}", single.port)});
  single.d = std::make_unique<Daemon>(bin, sargs, dir + "/single.log");
  single.d->start();
  for (auto* m : {&group[0], &group[1], &group[2], &single})
    if (!testing::wait_for_port(m->port, 60s)) {
      fmt::print(stderr, "group_bench: a storage node did not start: {}\n", m->d->log());
      return 1;
    }
  if (single_raft) {  // its election
    std::vector<Node> one(1);
    one[0].port = single.port;
    one[0].d = std::move(single.d);
    bool ok = wait_leader(one, 10s) == 0;
    single.d = std::move(one[0].d);
    if (!ok) {
      fmt::print(stderr, "group_bench: the one-member group elected no leader\n");
      return 1;
    }
  }
  int l = wait_leader(group, 10s);
  if (l < 0) {
    fmt::print(stderr, "group_bench: the group elected no leader\n");
    return 1;
  }

  // Throughput: alternate rounds so both see the same disk weather.
  // Beside the throughput, the CPU (servers and this client) each GB costs: on a machine whose
  // cores all runs share, the ratio of those costs bounds the throughput ratio.
  std::vector<double> g_mbs, s_mbs, g_cpu, s_cpu;
  std::vector<Location> last, last_single;
  double gb = n * storage::kPayloadCapacity / 1e9;
  for (int r = 0; r < rounds; ++r) {
    double ss = 0, gs = 0;
    s_cpu.push_back(cpu_during({single.d.get()}, [&] { ss = write_slices(single.port, n, in_flight, &last_single); }) / gb);
    g_cpu.push_back(cpu_during({group[0].d.get(), group[1].d.get(), group[2].d.get()},
                               [&] { gs = write_slices(group[l].port, n, in_flight, &last); }) / gb);
    if (ss < 0 || gs < 0) return 1;
    s_mbs.push_back(n * storage::kPayloadCapacity / ss / 1e6);
    g_mbs.push_back(n * storage::kPayloadCapacity / gs / 1e6);
    fmt::print(stderr, "round {}: single {:.1f} MB/s, group of 3 {:.1f} MB/s\n", r + 1, s_mbs.back(), g_mbs.back());
    // Free the slots again (one delete per slice), so every round starts from the same store.
    if (r + 1 < rounds) {
      SyncClient gc("127.0.0.1", group[l].port), sc("127.0.0.1", single.port);
      for (const auto& loc : last) (void)gc.call(DeleteReq{loc, 0});
      for (const auto& loc : last_single) (void)sc.call(DeleteReq{loc, 0});
    }
  }
  double gm = percentile(g_mbs, 0.5), sm = percentile(s_mbs, 0.5);
  fmt::print("group.write.replicas3 {:.1f} MB/s\n", gm);
  fmt::print("group.write.single {:.1f} MB/s\n", sm);
  fmt::print("group.write.ratio {:.2f} x\n", gm / sm);
  double gc = percentile(g_cpu, 0.5), sc = percentile(s_cpu, 0.5);
  fmt::print("group.write.cpu.replicas3 {:.2f} core-s/GB\n", gc);
  fmt::print("group.write.cpu.single {:.2f} core-s/GB\n", sc);
  fmt::print("group.write.cpu.ratio {:.2f} x\n", sc / gc);
  double rs = read_slices(group[l].port, last, in_flight);
  if (rs < 0) return 1;
  fmt::print("group.read.leader {:.1f} MB/s\n", last.size() * storage::kPayloadCapacity / rs / 1e6);

  // Failover.
  std::vector<double> ms;
  for (int k = 0; k < kills; ++k) {
    l = wait_leader(group, 10s);
    if (l < 0) {
      fmt::print(stderr, "group_bench: no leader before kill {}\n", k + 1);
      return 1;
    }
    group[l].d->kill9();
    auto t0 = Clock::now();
    bool done = false;
    while (!done && Clock::now() - t0 < 30s) {
      for (auto& m : group)
        if (m.d->running() && write_one(m.port)) {
          done = true;
          break;
        }
      if (!done) std::this_thread::sleep_for(5ms);
    }
    if (!done) {
      fmt::print(stderr, "group_bench: no write acknowledged within 30 s of kill {}\n", k + 1);
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    group[l].d->start();
    testing::wait_for_port(group[l].port, 60s);
    std::this_thread::sleep_for(500ms);  // it catches up before the next kill
  }
  fmt::print("group.failover.p50 {:.0f} ms\n", percentile(ms, 0.5));
  fmt::print("group.failover.p99 {:.0f} ms\n", percentile(ms, 0.99));
  fmt::print("group.failover.max {:.0f} ms\n", *std::max_element(ms.begin(), ms.end()));
  for (auto& m : group) m.d->terminate();
  single.d->terminate();
  return 0;
}
