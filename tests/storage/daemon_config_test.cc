// StorageConfig::validate() (the checks behind mydfs-storage's flags) and a StorageDaemon opened
// in-process on ephemeral ports.
#include <functional>

#include <gtest/gtest.h>

#include "storage/daemon.h"
#include "../support/temp_dir.h"

namespace mydfs::storage {
namespace {

StorageConfig base() {
  StorageConfig c;
  c.data = "/tmp/unused";  // validate() does not look at the directory
  return c;
}

// The one-line message validate() gives for c ("" if it accepts it).
std::string error_of(const StorageConfig& c) {
  auto v = c.validate();
  return v.ok() ? "" : v.error().message;
}

TEST(StorageConfig, defaults_areValid) {
  auto v = base().validate();
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->listen.host, "127.0.0.1");
  EXPECT_EQ(v->listen.port, 7100);
  EXPECT_EQ(v->http.port, 8100);
  EXPECT_EQ(v->backend, Backend::VOLUME);
  EXPECT_EQ(v->capacity, 0u) << "auto: what the disk has free";
  EXPECT_EQ(v->reserve, 1u << 30);
  EXPECT_EQ(v->positions, max_positions(Backend::VOLUME));
  EXPECT_EQ(v->max_frame, 1u << 20);
  EXPECT_EQ(v->hot_cache, 256u << 20);
  EXPECT_FALSE(v->tracker.has_value());
  EXPECT_TRUE(v->members.empty());
}

TEST(StorageConfig, members_tracker_andZeroHotCache_areParsed) {
  auto c = base();
  c.node_id = 2;
  c.members = {"1=127.0.0.1:7101", "2=127.0.0.1:7102", "3=:7103"};
  c.tracker = "10.0.0.1:7000";
  c.advertise = "node2:7102";
  c.hot_cache = "0";
  c.join = true;
  auto v = c.validate();
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_EQ(v->members.size(), 3u);
  EXPECT_EQ(v->members.at(3), ":7103");
  ASSERT_TRUE(v->tracker.has_value());
  EXPECT_EQ(v->tracker->host, "10.0.0.1");
  EXPECT_EQ(v->tracker->port, 7000);
  EXPECT_EQ(v->hot_cache, 0u);
}

TEST(StorageConfig, badOptions_oneLineMessage) {
  struct Case {
    std::function<void(StorageConfig&)> set;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](auto& c) { c.listen = "nonsense"; }, "bad address 'nonsense': expected HOST:PORT"},
      {[](auto& c) { c.http = "127.0.0.1:99999"; }, "bad port in '127.0.0.1:99999'"},
      {[](auto& c) { c.backend = "tape"; }, "unknown backend 'tape' (expected volume or files)"},
      {[](auto& c) { c.capacity = "12 parsecs"; }, "bad size unit in '12 parsecs' (use K, M, G, T)"},
      {[](auto& c) { c.capacity = "lots"; }, "bad size 'lots'"},
      {[](auto& c) { c.capacity = "1MiB"; }, "capacity '1MiB' must be at least 4MiB (or auto)"},
      {[](auto& c) { c.reserve = "much"; }, "bad size 'much'"},
      {[](auto& c) { c.io_threads = 0; }, "--io-threads must be 1..256"},
      {[](auto& c) { c.io_threads = 257; }, "--io-threads must be 1..256"},
      {[](auto& c) { c.node_id = 0; }, "--node-id and --group-id must be positive"},
      {[](auto& c) { c.group_id = 0; }, "--node-id and --group-id must be positive"},
      {[](auto& c) { c.max_frame = "1K"; }, "--max-frame must be between 4KiB and 64MiB"},
      {[](auto& c) { c.max_frame = "x"; }, "bad size 'x'"},
      {[](auto& c) { c.max_batch = 0; }, "--max-batch, --max-in-flight and the timeouts must be positive"},
      {[](auto& c) { c.idle_timeout_ms = 0; }, "--max-batch, --max-in-flight and the timeouts must be positive"},
      {[](auto& c) { c.tx_timeout_ms = 99; }, "--tx-timeout-ms must be at least 100"},
      {[](auto& c) { c.metrics = "maybe"; }, "--metrics must be on or off, not 'maybe'"},
      {[](auto& c) { c.hot_cache = "lots"; }, "--hot-cache: bad size 'lots'"},
      {[](auto& c) { c.read_counts_save_s = 0; }, "--read-counts-save-seconds must be positive"},
      {[](auto& c) { c.stats_interval = -1; }, "--stats-interval must be 0..86400 seconds"},
      {[](auto& c) { c.stats_interval = 86401; }, "--stats-interval must be 0..86400 seconds"},
      {[](auto& c) { c.tracker = "tracker"; }, "bad address 'tracker': expected HOST:PORT"},
      {[](auto& c) { c.advertise = "host:port"; }, "bad port in 'host:port'"},
      {[](auto& c) { c.members = {"1=127.0.0.1:7101", "x=127.0.0.1:7102"}; },
       "--members item 'x=127.0.0.1:7102' is not ID=HOST:PORT (ID a positive number)"},
      {[](auto& c) { c.members = {"0=127.0.0.1:7101"}; },
       "--members item '0=127.0.0.1:7101' is not ID=HOST:PORT (ID a positive number)"},
      {[](auto& c) { c.members = {"1=127.0.0.1"}; }, "bad address '127.0.0.1': expected HOST:PORT"},
      {[](auto& c) { c.members = {"1=127.0.0.1:7101", "1=127.0.0.1:7102"}; }, "--members names member 1 twice"},
      {[](auto& c) { c.members = {"2=127.0.0.1:7102"}; }, "--members does not name this node (--node-id 1)"},
      {[](auto& c) {
         c.members = {"1=127.0.0.1:7101"};
         c.election_ticks = 1;
       },
       "--raft-tick-ms must be positive and --election-ticks at least 2"},
      {[](auto& c) { c.join = true; }, "--join needs --members"},
  };
  for (const auto& k : cases) {
    auto c = base();
    k.set(c);
    auto v = c.validate();
    ASSERT_FALSE(v.ok()) << k.message;
    EXPECT_EQ(v.error().message, k.message);
    EXPECT_EQ(v.error().message.find('\n'), std::string::npos);
  }
}

TEST(StorageConfig, firstBadOption_isTheOneNamed) {
  auto c = base();
  c.listen = "nonsense";
  c.metrics = "maybe";
  EXPECT_EQ(error_of(c), "bad address 'nonsense': expected HOST:PORT");
  c.listen = "127.0.0.1:0";
  EXPECT_EQ(error_of(c), "--metrics must be on or off, not 'maybe'");
}

TEST(StorageDaemon, opensOnEphemeralPorts_statusHasTheFields_stopsCleanly) {
  mydfs::testing::TempDir dir;
  StorageConfig c;
  c.data = dir / "data";
  c.listen = "127.0.0.1:0";
  c.http = "127.0.0.1:0";
  c.capacity = "16MiB";
  c.io_threads = 1;
  c.node_id = 3;
  c.group_id = 2;
  {
    StorageDaemon d(c);
    ASSERT_TRUE(d.open().ok());
    EXPECT_NE(d.rpc_port(), 0);
    EXPECT_NE(d.http_port(), 0);
    auto j = d.status_json();
    for (const char* key : {"daemon", "node_id", "group_id", "listen", "backend", "role", "term", "leader", "members",
                            "slots", "bytes", "applied_index", "commit_index", "metrics", "requests_total", "in_flight",
                            "bytes_in", "bytes_out", "qps", "qps_1m", "bytes_in_per_s", "bytes_out_per_s",
                            "pool_utilization", "process", "slice_reads_total", "hot_cache", "slices",
                            "uptime_seconds"})
      EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_EQ(j["daemon"], "storage");
    EXPECT_EQ(j["node_id"], 3);
    EXPECT_EQ(j["group_id"], 2);
    EXPECT_EQ(j["listen"], fmt::format("127.0.0.1:{}", d.rpc_port()));
    EXPECT_EQ(j["role"], "leader");
    EXPECT_EQ(j["slots"]["capacity"], slots_in(max_positions(Backend::VOLUME)));
    EXPECT_EQ(j["bytes"]["used"], 0);
    EXPECT_EQ(j["bytes"]["capacity"], 16u << 20) << "the disk has more free than the configured capacity";
    // The directory is locked while the daemon holds it.
    StorageDaemon second(c);
    auto s = second.open();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("in use by another process"), std::string::npos) << s.error().message;
    d.stop();
    d.run();  // returns at once: stop() came first
  }
  // Metrics off: no read counts, no hot cache in /status. (Another directory: the lock on the
  // first one is held until the process exits.)
  c.data = dir / "data2";
  c.metrics = "off";
  StorageDaemon d(c);
  ASSERT_TRUE(d.open().ok());
  auto j = d.status_json();
  EXPECT_EQ(j["metrics"], false);
  EXPECT_FALSE(j.contains("hot_cache"));
  d.stop();
  d.run();
}

}  // namespace
}  // namespace mydfs::storage
