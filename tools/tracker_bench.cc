// tracker_bench: figures for `tools/bench tracker`, printed as "name value unit".
//   --rpc HOST:PORT   create / stat / unlink operations per second through a running tracker,
//                     with 1 and with 8 concurrent clients (one connection each)
//   --inproc DIR      the tracker's state in this process: resident memory per inode at N
//                     inodes, and the time to recover from an image plus an M-record edit log
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/parse.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "tracker/state.h"

using namespace mydfs;
using namespace mydfs::proto;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

double rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024;
  return 0;
}

// `clients` connections, each doing `per_client` operations of `make(client, i)` one after another.
template <typename Make>
double ops_per_second(const HostPort& hp, int clients, int per_client, Make make, int* errors) {
  asio::io_context io;
  std::vector<std::shared_ptr<RpcClient>> cs;
  for (int i = 0; i < clients; ++i) cs.push_back(std::make_shared<RpcClient>(io.get_executor(), hp.host, hp.port));
  int left = clients;
  auto start = Clock::now();
  for (int k = 0; k < clients; ++k)
    asio::co_spawn(io, [&, k]() -> asio::awaitable<void> {
      for (int i = 0; i < per_client; ++i) {
        auto r = co_await make(*cs[k], k, i);
        if (!r) ++*errors;
      }
    }, [&](std::exception_ptr) { if (--left == 0) io.stop(); });
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return clients * per_client / secs;
}

int run_rpc(const std::string& addr, int ops) {
  auto hp = parse_host_port(addr);
  if (!hp.ok()) return 2;
  SyncClient setup(hp->host, hp->port);
  for (int clients : {1, 8}) {
    std::string dirname = fmt::format("bench-{}-{}", clients, ::getpid());
    NsOp mk;
    mk.type = OpType::MKDIR;
    mk.parent = kRootIno;
    mk.name = dirname;
    mk.mode = 0755;
    auto d = setup.call(NsWriteReq{mk});
    if (!d.ok() || d->err) { fmt::print(stderr, "tracker_bench: mkdir failed\n"); return 1; }
    uint64_t dir = d->attr.ino;
    int per = ops / clients;
    std::vector<std::vector<uint64_t>> inos(clients, std::vector<uint64_t>(per));
    int errors = 0;
    double create = ops_per_second(*hp, clients, per, [&](RpcClient& c, int k, int i) -> asio::awaitable<bool> {
      NsOp o;
      o.type = OpType::CREATE;
      o.parent = dir;
      o.name = fmt::format("f{}-{}", k, i);
      o.mode = 0644;
      o.flags = 1;
      NsWriteReq req{o};  // named: GCC 12 may destroy an aggregate temporary in co_await twice
      auto r = co_await c.call(req);
      if (r.ok() && !r->err) inos[k][i] = r->attr.ino;
      co_return r.ok() && !r->err;
    }, &errors);
    double stat = ops_per_second(*hp, clients, per, [&](RpcClient& c, int k, int i) -> asio::awaitable<bool> {
      NsReadReq req{NsReadOp::GETATTR, inos[k][i], "", 0, 0};
      auto r = co_await c.call(req);
      co_return r.ok() && !r->err;
    }, &errors);
    double unlink = ops_per_second(*hp, clients, per, [&](RpcClient& c, int k, int i) -> asio::awaitable<bool> {
      NsOp o;
      o.type = OpType::UNLINK;
      o.parent = dir;
      o.name = fmt::format("f{}-{}", k, i);
      NsWriteReq req{o};
      auto r = co_await c.call(req);
      co_return r.ok() && !r->err;
    }, &errors);
    if (errors) { fmt::print(stderr, "tracker_bench: {} operations failed\n", errors); return 1; }
    fmt::print("tracker.create.c{} {:.0f} ops/s\n", clients, create);
    fmt::print("tracker.stat.c{} {:.0f} ops/s\n", clients, stat);
    fmt::print("tracker.unlink.c{} {:.0f} ops/s\n", clients, unlink);
  }
  return 0;
}

int run_inproc(const std::string& dir, uint64_t inodes, uint64_t log_records) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  Metrics metrics;
  tracker::StateOptions so;
  so.dir = dir + "/live";
  so.checkpoint_ops = UINT64_MAX;  // images only when asked
  so.checkpoint_age = std::chrono::hours(24 * 365);
  double before = rss_bytes();
  {
    auto st = tracker::TrackerState::open(so, &metrics);
    if (!st.ok()) { fmt::print(stderr, "tracker_bench: {}\n", st.error().to_string()); return 1; }
    auto& s = **st;
    // Files spread over 1000 directories, as a namespace of this size would be.
    std::vector<uint64_t> dirs;
    auto submit_all = [&](uint64_t from, uint64_t to) {
      std::vector<std::future<int>> pending;
      for (uint64_t i = from; i < to; ++i) {
        NsOp o;
        o.type = OpType::CREATE;
        o.parent = dirs[i % dirs.size()];
        o.name = fmt::format("file-{:08}", i);
        o.mode = 0644;
        auto p = std::make_shared<std::promise<int>>();
        pending.push_back(p->get_future());
        s.submit(o, [p](int e, tracker::OpResult) { p->set_value(e); });
        if (pending.size() >= 20000) {
          for (auto& f : pending) if (f.get()) return false;
          pending.clear();
        }
      }
      for (auto& f : pending) if (f.get()) return false;
      return true;
    };
    for (int i = 0; i < 1000; ++i) {
      NsOp o;
      o.type = OpType::MKDIR;
      o.parent = kRootIno;
      o.name = fmt::format("dir-{:04}", i);
      o.mode = 0755;
      std::promise<uint64_t> p;
      s.submit(o, [&p](int, tracker::OpResult r) { p.set_value(r.attr.ino); });
      dirs.push_back(p.get_future().get());
    }
    uint64_t base = inodes > log_records ? inodes - log_records : 0;
    if (!submit_all(0, base)) return 1;
    if (!s.checkpoint().ok()) return 1;
    auto t0 = Clock::now();
    if (!submit_all(base, inodes)) return 1;
    double create_s = std::chrono::duration<double>(Clock::now() - t0).count();
    double after = rss_bytes();
    uint64_t n = s.read([](const tracker::Namespace& ns, const tracker::GroupRegistry&) { return ns.inode_count(); });
    fmt::print("tracker.inodes {} inodes\n", n);
    fmt::print("tracker.rss_per_inode {:.0f} B\n", (after - before) / static_cast<double>(n));
    fmt::print("tracker.create.inproc {:.0f} ops/s\n", (inodes - base) / create_s);
    // What kill -9 would leave: the directory as it is now, image plus log, no final image.
    fs::copy(so.dir, dir + "/crash", fs::copy_options::recursive);
    uint64_t log_bytes = s.log_bytes();
    fmt::print("tracker.edit_log.records {} records\n", inodes - base);
    fmt::print("tracker.edit_log.bytes {} B\n", log_bytes);
  }
  tracker::StateOptions ro = so;
  ro.dir = dir + "/crash";
  auto t0 = Clock::now();
  auto st = tracker::TrackerState::open(ro, &metrics);
  double recover_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!st.ok()) { fmt::print(stderr, "tracker_bench: recovery failed: {}\n", st.error().to_string()); return 1; }
  fmt::print("tracker.recovery {:.2f} s\n", recover_s);
  (*st)->stop();
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string rpc, inproc;
  int ops = 20000;
  uint64_t inodes = 1000000, log_records = 1000000;
  CLI::App app{"tracker_bench: tracker throughput, memory per inode and recovery time"};
  app.add_option("--rpc", rpc, "Tracker HOST:PORT for the operations-per-second figures");
  app.add_option("--ops", ops, "Operations per kind and client count")->capture_default_str();
  app.add_option("--inproc", inproc, "Scratch directory for the memory and recovery figures");
  app.add_option("--inodes", inodes, "Inodes for the memory figure")->capture_default_str();
  app.add_option("--log-records", log_records, "Edit log records after the image for the recovery figure")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  if (!rpc.empty()) {
    int rc = run_rpc(rpc, ops);
    if (rc) return rc;
  }
  if (!inproc.empty()) return run_inproc(inproc, inodes, log_records);
  return 0;
}
