// Monitoring of real daemons over their HTTP ports: counters under a known load, hot slices and
// their cache, all-time read counts across restarts (clean and kill -9), the Prometheus text
// format of both daemons, --metrics off and --stats-interval.
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/checksum.h"
#include "harness.h"
#include "proto/rpc.h"
#include "../support/prometheus.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using namespace mydfs::proto;
using mydfs::testing::Daemon;
using json = nlohmann::json;

class Monitoring : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = mydfs::testing::free_port();
    http_ = mydfs::testing::free_port();
  }

  std::unique_ptr<Daemon> start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data", dir_ / "data", "--listen", fmt::format("127.0.0.1:{}", port_),
                                     "--http", fmt::format("127.0.0.1:{}", http_), "--capacity", "256MiB",
                                     "--group-id", "1", "--node-id", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto d = std::make_unique<Daemon>(mydfs::testing::binary("MYDFS_STORAGE_BIN"), args, dir_ / "storage.log");
    d->start();
    EXPECT_TRUE(mydfs::testing::wait_for_port(port_, 20s)) << d->log();
    EXPECT_TRUE(mydfs::testing::wait_for_port(http_, 20s)) << d->log();
    return d;
  }

  // Parsed /metrics; fails the test if it is not valid exposition text.
  std::map<std::string, double> metrics() {
    int status = 0;
    auto text = mydfs::testing::http_get(http_, "/metrics", &status);
    EXPECT_EQ(status, 200);
    auto p = mydfs::testing::parse_prometheus(text);
    EXPECT_EQ(p.error, "");
    return p.series;
  }
  json status() {
    int code = 0;
    auto body = mydfs::testing::http_get(http_, "/status", &code);
    EXPECT_EQ(code, 200);
    return json::parse(body, nullptr, false);
  }
  // The /status entry of one slice (null if it has none).
  json slice_status(Location loc) {
    json st = status();
    for (const auto& s : st["slices"])
      if (s["slot"] == loc.slot && s["gen"] == loc.gen) return s;
    return nullptr;
  }

  static std::shared_ptr<AlignedBuffer> bytes(size_t n, uint64_t seed) {
    auto b = std::make_shared<AlignedBuffer>(n);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; ++i) b->data()[i] = static_cast<std::byte>(rng());
    return b;
  }
  Location write_slice(SyncClient& c, const std::shared_ptr<AlignedBuffer>& data, uint64_t file_id = 7) {
    auto r = c.call(ReserveReq{file_id, 1});
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {};
    auto w = c.call(WriteSlotReq{r->slots[0], file_id, {}, xxh64(data->span()), SlotState::LIVE, 0}, Bulk::of(data));
    EXPECT_TRUE(w.ok()) << w.error().to_string();
    return r->slots[0];
  }
  // Reads the whole slice and returns its bytes, checked against the checksum the reply carries.
  static std::string read(SyncClient& c, Location loc, uint32_t off = 0, uint32_t len = UINT32_MAX) {
    AlignedBuffer bulk;
    auto r = c.call(ReadReq{loc, off, len}, {}, &bulk);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok()) return {};
    EXPECT_EQ(xxh64(bulk.span()), r->whole ? r->meta.payload_checksum : r->range_checksum);
    return std::string(reinterpret_cast<const char*>(bulk.data()), bulk.size());
  }
  static std::string str(const AlignedBuffer& b, size_t off = 0, size_t len = std::string::npos) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size()).substr(off, len);
  }

  mydfs::testing::TempDir dir_;
  uint16_t port_ = 0, http_ = 0;
};

TEST_F(Monitoring, knownLoad_countersMoveByExactlyTheRequestsMade) {
  auto d = start({"--hot-after", "1000"});
  SyncClient c("127.0.0.1", port_);
  auto data = bytes(300000, 1);
  Location loc = write_slice(c, data);
  auto before = metrics();
  constexpr int kReads = 37;
  for (int i = 0; i < kReads; ++i) ASSERT_EQ(read(c, loc), str(*data));
  auto after = metrics();
  auto delta = [&](const std::string& k) { return after[k] - before[k]; };
  EXPECT_EQ(delta("mydfs_rpc_requests_total"), kReads);
  EXPECT_EQ(delta("mydfs_rpc_method_requests_total{method=\"read\"}"), kReads);
  EXPECT_EQ(delta("mydfs_rpc_method_errors_total{method=\"read\"}"), 0);
  EXPECT_EQ(delta("mydfs_rpc_latency_seconds_count{method=\"read\"}"), kReads);
  EXPECT_EQ(delta("mydfs_rpc_method_requests_total{method=\"write_slot\"}"), 0);
  EXPECT_EQ(delta("mydfs_storage_slice_reads_total"), kReads);
  EXPECT_GE(delta("mydfs_rpc_bytes_out_total"), double(kReads) * double(data->size()));
  EXPECT_LT(delta("mydfs_rpc_bytes_out_total"), double(kReads) * double(data->size() + 4096));
  EXPECT_EQ(after["mydfs_rpc_in_flight"], 0);
  EXPECT_EQ(slice_status(loc)["reads"], kReads);
  EXPECT_EQ(slice_status(loc)["reads_all_time"], kReads);
  EXPECT_EQ(slice_status(loc)["file_id"], 7);
  // An error reply counts as a request and as an error of its method.
  Location stale = loc;
  ++stale.gen;
  EXPECT_EQ(c.call(ReadReq{stale, 0, 10}).code(), Code::STALE);
  EXPECT_EQ(metrics()["mydfs_rpc_method_errors_total{method=\"read\"}"] -
                before["mydfs_rpc_method_errors_total{method=\"read\"}"], 1);
  // The 1-minute window holds every request of the last 60 complete seconds: once the second of
  // the last request has passed, 60 x its rate counts all of them.
  std::this_thread::sleep_for(1100ms);
  auto m = metrics();
  double in_window = m["mydfs_rpc_method_requests_per_second{method=\"read\",window=\"1m\"}"] * 60;
  EXPECT_NEAR(in_window, kReads + 1, 1e-6);
  EXPECT_GT(m["mydfs_rpc_requests_per_second{window=\"1m\"}"], 0);
  auto s = status();
  EXPECT_EQ(s["metrics"], true);
  EXPECT_GE(s["pool_utilization"].get<double>(), 0.0);
  EXPECT_GT(s["process"]["rss_bytes"].get<double>(), 0.0);
}

TEST_F(Monitoring, twentiethReadMakesSliceHot_cacheServesIt_writeInvalidates) {
  auto d = start({"--hot-after", "20", "--hot-cache", "64MiB"});
  SyncClient c("127.0.0.1", port_);
  auto data = bytes(1 << 20, 2);
  Location loc = write_slice(c, data);
  auto hits = [&] { return metrics()["mydfs_hot_cache_hits_total"]; };
  auto misses = [&] { return metrics()["mydfs_hot_cache_misses_total"]; };
  for (int i = 0; i < 19; ++i) ASSERT_EQ(read(c, loc), str(*data));
  EXPECT_EQ(slice_status(loc)["hot"], false);
  EXPECT_EQ(metrics()["mydfs_hot_cache_entries"], 0);
  EXPECT_EQ(hits() + misses(), 0);
  ASSERT_EQ(read(c, loc), str(*data));  // the 20th read: hot, loaded into memory
  EXPECT_EQ(slice_status(loc)["hot"], true);
  EXPECT_EQ(slice_status(loc)["cached"], true);
  EXPECT_EQ(misses(), 1);
  EXPECT_EQ(metrics()["mydfs_hot_cache_bytes"], double(data->size()));
  ASSERT_EQ(read(c, loc), str(*data));          // answered from memory
  ASSERT_EQ(read(c, loc, 1000, 5000), str(*data, 1000, 5000));  // a part, also from memory
  EXPECT_EQ(hits(), 2);
  EXPECT_EQ(metrics()["mydfs_storage_hot_slices"], 1);

  // A patch changes the slot: the cached copy is dropped and never served.
  auto patch = bytes(4096, 3);
  auto p = c.call(PatchReq{loc, 8192, xxh64(patch->span()), 0, 0, {}}, Bulk::of(patch));
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_EQ(metrics()["mydfs_hot_cache_invalidations_total"], 1);
  EXPECT_EQ(metrics()["mydfs_hot_cache_entries"], 0);
  std::string want = str(*data);
  want.replace(8192, 4096, str(*patch));
  ASSERT_EQ(read(c, loc), want);  // still hot: a miss that loads the new bytes
  EXPECT_EQ(misses(), 2);
  ASSERT_EQ(read(c, loc), want);
  EXPECT_EQ(hits(), 3);
  // So does a delete: the slot answers DELETED, not the cached bytes.
  ASSERT_TRUE(c.call(DeleteReq{loc}).ok());
  EXPECT_EQ(c.call(ReadReq{loc, 0, UINT32_MAX}).code(), Code::DELETED);
  EXPECT_EQ(metrics()["mydfs_hot_cache_entries"], 0);
}

TEST_F(Monitoring, hotCacheStaysWithinItsBudget_leastRecentlyUsedGoes) {
  auto d = start({"--hot-after", "2", "--hot-cache", "8MiB"});
  SyncClient c("127.0.0.1", port_);
  std::vector<std::pair<Location, std::shared_ptr<AlignedBuffer>>> slices;
  for (int i = 0; i < 3; ++i) {
    auto data = bytes(3 << 20, 10 + i);
    slices.push_back({write_slice(c, data), data});
  }
  for (auto& [loc, data] : slices)
    for (int r = 0; r < 3; ++r) ASSERT_EQ(read(c, loc), str(*data));
  auto m = metrics();
  EXPECT_LE(m["mydfs_hot_cache_bytes"], 8 << 20);
  EXPECT_EQ(m["mydfs_hot_cache_entries"], 2);
  EXPECT_EQ(m["mydfs_hot_cache_evictions_total"], 1);
  EXPECT_EQ(slice_status(slices[0].first)["cached"], false);  // the least recently used
  EXPECT_EQ(slice_status(slices[2].first)["cached"], true);
}

TEST_F(Monitoring, allTimeReadCounts_surviveCleanRestartAndKillNine) {
  auto d = start({"--read-counts-save-seconds", "1"});
  Location loc;
  auto data = bytes(5000, 4);
  {
    SyncClient c("127.0.0.1", port_);
    loc = write_slice(c, data);
    for (int i = 0; i < 5; ++i) read(c, loc);
  }
  EXPECT_EQ(d->terminate(), 0) << d->log();
  d = start({"--read-counts-save-seconds", "1"});
  {
    SyncClient c("127.0.0.1", port_);
    for (int i = 0; i < 3; ++i) read(c, loc);
  }
  EXPECT_EQ(slice_status(loc)["reads"], 3);           // since this start
  EXPECT_EQ(slice_status(loc)["reads_all_time"], 8);  // 5 before the restart
  // Saved every second: a kill -9 loses at most the last second's counts.
  std::this_thread::sleep_for(2500ms);
  d->kill9();
  d = start();
  EXPECT_EQ(slice_status(loc)["reads"], 0);  // not read since this start
  EXPECT_EQ(slice_status(loc)["reads_all_time"], 8);
  SyncClient c("127.0.0.1", port_);
  read(c, loc);
  EXPECT_EQ(slice_status(loc)["reads"], 1);
  EXPECT_EQ(slice_status(loc)["reads_all_time"], 9);
}

TEST_F(Monitoring, damagedReadCountsFile_startsFromZeroWithAWarning) {
  auto d = start();
  EXPECT_EQ(d->terminate(), 0);
  {
    std::ofstream f(dir_ / "data/slice-reads", std::ios::binary | std::ios::trunc);
    f << "MYDFSRD1 not really";
  }
  d = start();
  EXPECT_TRUE(SyncClient("127.0.0.1", port_).call(PingReq{}).ok());
  EXPECT_NE(d->log().find("are damaged"), std::string::npos) << d->log();
}

TEST_F(Monitoring, metricsOff_countsNothingAndCachesNothing) {
  auto d = start({"--metrics", "off", "--hot-after", "1"});
  SyncClient c("127.0.0.1", port_);
  auto data = bytes(10000, 5);
  Location loc = write_slice(c, data);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(read(c, loc), str(*data));
  auto m = metrics();
  EXPECT_EQ(m["mydfs_rpc_requests_total"], 0);
  EXPECT_EQ(m.count("mydfs_storage_slice_reads_total"), 0u);
  EXPECT_EQ(m.count("mydfs_hot_cache_hits_total"), 0u);
  EXPECT_EQ(status()["metrics"], false);
  EXPECT_GT(m["process_resident_memory_bytes"], 0);  // process figures stay
}

TEST_F(Monitoring, statsInterval_logsALineOfLoadFigures) {
  auto d = start({"--stats-interval", "0.2"});
  std::this_thread::sleep_for(700ms);
  auto log = d->log();
  EXPECT_NE(log.find("stats: leader term 0, qps"), std::string::npos) << log;
  EXPECT_NE(log.find("slots free"), std::string::npos);
}

TEST_F(Monitoring, badMonitoringFlags_refusedWithAClearMessage) {
  for (auto flags : std::vector<std::vector<std::string>>{{"--metrics", "maybe"}, {"--hot-cache", "lots"},
                                                          {"--stats-interval", "-1"}}) {
    std::vector<std::string> args = {"--data", dir_ / "bad", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    Daemon d(mydfs::testing::binary("MYDFS_STORAGE_BIN"), args, dir_ / "bad.log");
    d.start();
    EXPECT_EQ(d.wait_exit(10s), 2) << flags[0];
    EXPECT_NE(d.log().find(flags[0].substr(2)), std::string::npos) << d.log();
  }
}

TEST_F(Monitoring, bothDaemonsMetrics_areValidPrometheusText) {
  auto d = start();
  SyncClient c("127.0.0.1", port_);
  auto data = bytes(4096, 6);
  read(c, write_slice(c, data));
  auto m = metrics();  // checks the format
  auto p = mydfs::testing::parse_prometheus(mydfs::testing::http_get(http_, "/metrics"));
  EXPECT_EQ(p.types["mydfs_rpc_latency_seconds"], "histogram");
  EXPECT_EQ(p.types["mydfs_rpc_requests_total"], "counter");
  EXPECT_EQ(p.types["mydfs_raft_commit_index"], "gauge");
  EXPECT_EQ(p.types["process_resident_memory_bytes"], "gauge");
  EXPECT_EQ(m["mydfs_pool_threads{pool=\"disk\"}"], 4);
  EXPECT_TRUE(m.count("mydfs_pool_utilization{pool=\"disk\",window=\"1s\"}"));
  EXPECT_EQ(m["mydfs_raft_role{role=\"leader\"}"], 1);
  EXPECT_GE(m["mydfs_raft_applied_index"], 2);

  uint16_t tport = mydfs::testing::free_port(), thttp = mydfs::testing::free_port();
  Daemon t(mydfs::testing::binary("MYDFS_TRACKER_BIN"),
           {"--data", dir_ / "tracker", "--listen", fmt::format("127.0.0.1:{}", tport), "--http",
            fmt::format("127.0.0.1:{}", thttp), "--group", fmt::format("1=127.0.0.1:{}", port_), "--stats-interval",
            "0.2"},
           dir_ / "tracker.log");
  t.start();
  ASSERT_TRUE(mydfs::testing::wait_for_port(thttp, 20s)) << t.log();
  auto tp = mydfs::testing::parse_prometheus(mydfs::testing::http_get(thttp, "/metrics"));
  EXPECT_EQ(tp.error, "");
  EXPECT_EQ(tp.series["mydfs_tracker_groups"], 1);
  EXPECT_EQ(tp.series["mydfs_tracker_members{state=\"down\"}"], 1);  // this node sends no heartbeats
  EXPECT_EQ(tp.types["mydfs_tracker_edit_log_bytes"], "gauge");
  EXPECT_TRUE(tp.series.count("mydfs_pool_utilization{pool=\"tracker\",window=\"1m\"}"));
  // /status: the tracker's own figures, members by liveness, and the image age (the first image
  // is written at start).
  auto ts = json::parse(mydfs::testing::http_get(thttp, "/status"), nullptr, false);
  ASSERT_TRUE(ts.is_object());
  EXPECT_EQ(ts["members_down"], 1);
  EXPECT_EQ(ts["members_up"], 0);
  EXPECT_GT(ts["tracker"]["rss_bytes"].get<double>(), 0.0);
  EXPECT_GE(ts["uptime_seconds"].get<double>(), 0.0);
  EXPECT_TRUE(ts["hot_slices"].is_array());
  std::this_thread::sleep_for(500ms);
  EXPECT_NE(t.log().find("stats: qps"), std::string::npos) << t.log();
}

// The checker itself: each of these breaks a rule a scraper relies on.
TEST(PrometheusFormat, checkerRejectsWhatScrapersReject) {
  using mydfs::testing::parse_prometheus;
  const std::string ok = "# HELP a_total A\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
  EXPECT_EQ(parse_prometheus(ok).error, "");
  EXPECT_EQ(parse_prometheus(ok).series["a_total{x=\"1\"}"], 3);
  for (const std::string& bad : {
           std::string("a_total 3\n"),                                                   // no TYPE
           std::string("# TYPE a counter\na 3\n"),                                       // counter without _total
           std::string("# TYPE a gauge\na{x=1} 3\n"),                                    // unquoted value
           std::string("# TYPE a gauge\na{1x=\"1\"} 3\n"),                               // bad label name
           std::string("# TYPE a gauge\na{x=\"1\"} three\n"),                            // not a number
           std::string("# TYPE a gauge\na 1\na 2\n"),                                    // series twice
           std::string("# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"2\"} 1\n"),     // family split
           std::string("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
           std::string("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
           std::string("# TYPE 9a gauge\n"),
       })
    EXPECT_NE(parse_prometheus(bad).error, "") << bad;
}

}  // namespace
}  // namespace mydfs
