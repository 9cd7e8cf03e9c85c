// mydfs-storage as a real process on 127.0.0.1: crash safety under kill -9, graceful stop,
// bad configuration, a full store, and the HTTP status port.
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/checksum.h"
#include "harness.h"
#include "proto/rpc.h"
#include "storage/slot_format.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using namespace mydfs::proto;
using mydfs::testing::Daemon;

class StorageDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = mydfs::testing::free_port();
    http_port_ = mydfs::testing::free_port();
  }

  std::unique_ptr<Daemon> make(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data", dir_ / "data", "--listen", fmt::format("127.0.0.1:{}", port_),
                                     "--http", fmt::format("127.0.0.1:{}", http_port_), "--capacity", capacity_,
                                     "--group-id", "1", "--node-id", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>(mydfs::testing::binary("MYDFS_STORAGE_BIN"), args, dir_ / "storage.log");
  }

  std::unique_ptr<Daemon> start() {
    auto d = make();
    d->start();
    EXPECT_TRUE(mydfs::testing::wait_for_port(port_, 20s)) << d->log();
    return d;
  }

  static std::shared_ptr<AlignedBuffer> slice(size_t n, uint64_t seed) {
    auto b = std::make_shared<AlignedBuffer>(n);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng();
      std::memcpy(b->data() + i, &v, std::min<size_t>(8, n - i));
    }
    return b;
  }

  // Reads a whole slice and checks it end to end against its header checksum.
  static Result<std::string> read_whole(SyncClient& c, Location loc) {
    AlignedBuffer bulk;
    auto r = c.call(ReadReq{loc, 0, UINT32_MAX}, {}, &bulk);
    if (!r.ok()) return r.take_error();
    uint64_t expect = r->whole ? r->meta.payload_checksum : r->range_checksum;
    if (xxh64(bulk.span()) != expect) return make_error(Code::CHECKSUM_MISMATCH, "read bytes fail their checksum");
    return std::string(reinterpret_cast<char*>(bulk.data()), bulk.size());
  }

  mydfs::testing::TempDir dir_;
  uint16_t port_ = 0, http_port_ = 0;
  std::string capacity_ = "1GiB";
};

TEST_F(StorageDaemon, killNineMidStream_everyAcknowledgedSliceSurvives) {
  auto d = start();
  struct Written {
    Location loc;
    std::shared_ptr<AlignedBuffer> data;
    bool acked;
  };
  std::vector<Written> slices;
  std::atomic<bool> writing{true};
  std::atomic<int> kills{0};
  std::atomic<size_t> progress{0};
  std::mutex daemon_mu;
  // The killer: each time the writer passes another 18 slices, wait a random few milliseconds
  // (so the kill lands inside a reserve, a transfer or a commit) and kill -9, then restart.
  std::thread killer([&] {
    std::mt19937 rng(12345);
    while (writing && kills < 5) {
      size_t target = 18 * (kills + 1);
      while (writing && progress < target) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 8000));
      std::lock_guard g(daemon_mu);
      if (!writing) break;
      d->kill9();
      ++kills;
      d = make();
      d->start();
    }
  });
  ClientOptions co;
  co.call_timeout = 5s;
  co.connect_timeout = 1s;
  SyncClient c("127.0.0.1", port_, co);
  std::mt19937_64 rng(777);
  int attempts = 0;
  while (slices.size() < 100 && attempts < 2000) {
    ++attempts;
    auto r = c.call(ReserveReq{42, 1});
    if (!r.ok()) {
      std::this_thread::sleep_for(20ms);
      continue;
    }
    size_t n = 1 + rng() % storage::kPayloadCapacity;
    auto data = slice(n, slices.size() + 1);
    WriteSlotReq w{r->slots[0], 42, Location{}, xxh64(data->span()), SlotState::LIVE, 0};
    auto wr = c.call(w, Bulk::of(data));
    slices.push_back({r->slots[0], data, wr.ok()});
    progress = slices.size();
    if (!wr.ok() && wr.code() != Code::UNAVAILABLE && wr.code() != Code::TIMEOUT)
      ADD_FAILURE() << "unexpected write error " << wr.error().to_string();
  }
  writing = false;
  killer.join();
  ASSERT_EQ(kills.load(), 5) << "the daemon should have been killed mid-stream";
  size_t acked = 0;
  for (auto& s : slices) acked += s.acked;
  ASSERT_GE(acked, 90u);
  std::cout << "[ info ] " << acked << " of " << slices.size() << " writes acknowledged across " << kills
            << " kills\n";

  // One more crash after the last write, then check everything on the restarted daemon.
  {
    std::lock_guard g(daemon_mu);
    d->kill9();
    d = start();
  }
  SyncClient v("127.0.0.1", port_, co);
  for (auto& s : slices) {
    auto got = read_whole(v, s.loc);
    std::string want(reinterpret_cast<char*>(s.data->data()), s.data->size());
    if (s.acked) {
      ASSERT_TRUE(got.ok()) << s.loc.slot << ": " << got.error().to_string();
      EXPECT_TRUE(*got == want) << "acknowledged slice " << s.loc.slot << " differs";
    } else if (got.ok()) {
      // Not acknowledged: either all of it made it, or none of it is visible.
      EXPECT_TRUE(got->empty() || *got == want) << "partially written slot " << s.loc.slot << " served";
    }
  }
  EXPECT_EQ(d->terminate(), 0) << d->log();
}

TEST_F(StorageDaemon, chainWalkAndPartialReads) {
  auto d = start();
  SyncClient c("127.0.0.1", port_);
  auto r = c.call(ReserveReq{5, 4});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->slots.size(), 4u);
  std::vector<std::shared_ptr<AlignedBuffer>> datas;
  for (int i = 0; i < 4; ++i) {
    auto data = slice(1000 * (i + 1), 50 + i);
    datas.push_back(data);
    Location next = i < 3 ? r->slots[i + 1] : Location{};
    if (i == 2) next = Location{2, 9, 1};  // the chain leaves this group after slice 3
    auto w = c.call(WriteSlotReq{r->slots[i], 5, next, xxh64(data->span()), SlotState::LIVE, 0}, Bulk::of(data));
    ASSERT_TRUE(w.ok()) << w.error().to_string();
  }
  auto walk = c.call(WalkReq{r->slots[0], 100});
  ASSERT_TRUE(walk.ok());
  ASSERT_EQ(walk->slices.size(), 3u);
  EXPECT_EQ(walk->leaves, (Location{2, 9, 1}));
  EXPECT_EQ(walk->slices[2].valid_len, 3000u);
  // Partial read, checked by its range checksum.
  AlignedBuffer part;
  auto pr = c.call(ReadReq{r->slots[1], 100, 50}, {}, &part);
  ASSERT_TRUE(pr.ok());
  EXPECT_FALSE(pr->whole);
  EXPECT_EQ(part.size(), 50u);
  EXPECT_EQ(std::memcmp(part.data(), datas[1]->data() + 100, 50), 0);
  EXPECT_EQ(xxh64(part.span()), pr->range_checksum);
  // Stale pointer, deleted slot, redirect: each answered with its status.
  Location stale = r->slots[0];
  stale.gen++;
  EXPECT_EQ(c.call(ReadReq{stale, 0, 10}).code(), Code::STALE);
  ASSERT_TRUE(c.call(RedirectReq{r->slots[3], r->slots[2]}).ok());
  auto red = c.call(ReadReq{r->slots[3], 0, 10});
  EXPECT_EQ(red.code(), Code::REDIRECT);
  EXPECT_EQ(red.error().target, r->slots[2]);
  ASSERT_TRUE(c.call(DeleteReq{r->slots[1]}).ok());
  EXPECT_EQ(c.call(ReadReq{r->slots[1], 0, 10}).code(), Code::DELETED);
  auto w2 = c.call(WalkReq{r->slots[0], 100});
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->end_code, Code::DELETED);
  EXPECT_EQ(w2->end_at, r->slots[1]);
}

// A store takes what its slices hold: 16 MiB hold three full slices and many small ones; the
// write that does not fit is refused with NO_SPACE before it is logged, the node stays healthy,
// and a delete gives its space back (to the host file system, then to new writes).
TEST_F(StorageDaemon, fullStore_noSpaceAndStaysHealthy_deletedSpaceReused) {
  capacity_ = "16MiB";
  auto d = start();
  SyncClient c("127.0.0.1", port_);
  auto r = c.call(ReserveReq{1, 24});
  ASSERT_TRUE(r.ok()) << "slots are not bytes: small slices may take many";
  auto write = [&](Location at, size_t n, uint64_t seed) {
    auto data = slice(n, seed);
    return c.call(WriteSlotReq{at, 1, Location{}, xxh64(data->span()), SlotState::LIVE, 0}, Bulk::of(data));
  };
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(write(r->slots[i], kPayloadCapacity, i).ok()) << i;
  for (int i = 3; i < 20; ++i) ASSERT_TRUE(write(r->slots[i], 5000, i).ok()) << i;  // 8 KiB each
  auto full = write(r->slots[20], kPayloadCapacity, 20);
  EXPECT_EQ(full.code(), Code::NO_SPACE) << (full.ok() ? "accepted" : full.error().to_string());
  EXPECT_NE((full.ok() ? std::string() : full.error().message).find("store is full"), std::string::npos);
  auto info = c.call(InfoReq{});
  ASSERT_TRUE(info.ok());
  EXPECT_LT(info->free_bytes, kPayloadCapacity);
  EXPECT_EQ(info->used_bytes + info->free_bytes, 16u << 20);
  EXPECT_EQ(info->used_bytes, 3 * uint64_t{kPayloadCapacity} + 17 * 8192 + 24 * 256);
  // The refused write left its slot reserved and empty; the others read back.
  auto back = read_whole(c, r->slots[3]);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, std::string(reinterpret_cast<const char*>(slice(5000, 3)->data()), 5000));
  ASSERT_TRUE(c.call(DeleteReq{r->slots[0]}).ok());
  ASSERT_TRUE(c.call(PingReq{}).ok());
  // Given back within moments (trimming runs in the background), then the write fits.
  Result<SlotResp> again = make_error(Code::NO_SPACE, "");
  for (int i = 0; i < 100 && !again.ok(); ++i) {
    std::this_thread::sleep_for(50ms);
    again = write(r->slots[20], kPayloadCapacity, 20);
  }
  EXPECT_TRUE(again.ok()) << again.error().to_string();
}

// Slices deleted just before a kill -9 (their background trim not yet run) give their space
// back after the restart.
TEST_F(StorageDaemon, deletedThenKilled_spaceComesBackAfterRestart) {
  auto d = start();
  {
    SyncClient c("127.0.0.1", port_);
    auto r = c.call(ReserveReq{1, 3});
    ASSERT_TRUE(r.ok());
    for (int i = 0; i < 3; ++i) {
      auto data = slice(kPayloadCapacity, 30 + i);
      ASSERT_TRUE(c.call(WriteSlotReq{r->slots[i], 1, Location{}, xxh64(data->span()), SlotState::LIVE, 0},
                         Bulk::of(data)).ok());
    }
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.call(DeleteReq{r->slots[i]}).ok());
    d->kill9();
  }
  d = start();
  SyncClient c("127.0.0.1", port_);
  uint64_t used = UINT64_MAX;
  for (int i = 0; i < 100 && used != 3 * 256; ++i) {
    auto info = c.call(InfoReq{});
    ASSERT_TRUE(info.ok());
    used = info->used_bytes;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(used, 3u * 256) << "only the three headers stay";
}

// Zeros are holes in the store's sparse files, also at the end of a slice, where the file may end
// before the slice does: a read still gets every byte (past the end of a file reads as zeros).
// A slice of zeros sent as its length reads back as zeros and takes no space.
TEST_F(StorageDaemon, slicesEndingInZeros_andHoles_readBackWhole) {
  auto d = start();
  SyncClient c("127.0.0.1", port_);
  auto r = c.call(ReserveReq{1, 2});
  ASSERT_TRUE(r.ok());
  auto data = std::make_shared<AlignedBuffer>(3u << 20);
  std::memset(data->data(), 0, data->size());
  std::memset(data->data(), 'a', 5000);  // data, then 3 MiB less 5000 bytes of zeros
  ASSERT_TRUE(c.call(WriteSlotReq{r->slots[1], 1, Location{}, xxh64(data->span()), SlotState::LIVE, 0}, Bulk::of(data)).ok());
  WriteSlotReq hole{r->slots[0], 1, r->slots[1], xxh64_zeros(kPayloadCapacity), SlotState::LIVE, 0};
  hole.zeros = kPayloadCapacity;
  ASSERT_TRUE(c.call(hole).ok());
  auto back = read_whole(c, r->slots[1]);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, std::string(reinterpret_cast<const char*>(data->data()), data->size()));
  auto zeros = read_whole(c, r->slots[0]);
  ASSERT_TRUE(zeros.ok()) << zeros.error().to_string();
  EXPECT_EQ(*zeros, std::string(kPayloadCapacity, '\0'));
  auto info = c.call(InfoReq{});
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->used_bytes, 8192u + 2 * 256) << "5000 bytes of data; the zeros take nothing";
  // A slice of zeros whose checksum is another's is refused.
  auto r2 = c.call(ReserveReq{1, 1});
  ASSERT_TRUE(r2.ok());
  WriteSlotReq bad{r2->slots[0], 1, Location{}, 12345, SlotState::LIVE, 0};
  bad.zeros = 100;
  EXPECT_EQ(c.call(bad).code(), Code::CHECKSUM_MISMATCH);
}

TEST_F(StorageDaemon, sigterm_stopsCleanly_andDataStays) {
  auto d = start();
  Location loc;
  auto data = slice(123456, 9);
  {
    SyncClient c("127.0.0.1", port_);
    auto r = c.call(ReserveReq{1, 1});
    ASSERT_TRUE(r.ok());
    loc = r->slots[0];
    ASSERT_TRUE(c.call(WriteSlotReq{loc, 1, {}, xxh64(data->span()), SlotState::LIVE, 0}, Bulk::of(data)).ok());
  }
  EXPECT_EQ(d->terminate(), 0) << d->log();
  EXPECT_NE(d->log().find("stopped cleanly"), std::string::npos);
  d = start();
  SyncClient c("127.0.0.1", port_);
  auto got = read_whole(c, loc);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_TRUE(*got == std::string(reinterpret_cast<char*>(data->data()), data->size()));
}

TEST_F(StorageDaemon, statusAndMetricsOverHttp) {
  auto d = start();
  SyncClient c("127.0.0.1", port_);
  ASSERT_TRUE(c.call(ReserveReq{1, 2}).ok());
  int status = 0;
  std::string s = mydfs::testing::http_get(http_port_, "/status", &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(s.find("\"used\": 2"), std::string::npos) << s;
  std::string m = mydfs::testing::http_get(http_port_, "/metrics", &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(m.find("# TYPE mydfs_rpc_requests_total counter"), std::string::npos);
  EXPECT_NE(m.find("mydfs_rpc_method_requests_total{method=\"reserve\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("mydfs_storage_slots_used 2"), std::string::npos);
  EXPECT_NE(m.find("mydfs_rpc_bytes_in_total"), std::string::npos);
  mydfs::testing::http_get(http_port_, "/nope", &status);
  EXPECT_EQ(status, 404);
}

TEST_F(StorageDaemon, badConfig_oneLineErrorAndExit) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"--data", "/proc/nope/data"}, "data path '/proc/nope/data'"},
      {{"--data", dir_ / "d1", "--backend", "tape"}, "unknown backend 'tape'"},
      {{"--data", dir_ / "d2", "--listen", "nonsense"}, "bad address 'nonsense'"},
      {{"--data", dir_ / "d3", "--capacity", "12 parsecs"}, "bad size"},
      {{"--data", dir_ / "d4", "--capacity", "1MiB"}, "capacity '1MiB'"},
      {{"--data", dir_ / "d5", "--log-level", "chatty"}, "unknown log level"},
      {{"--data", dir_ / "d6", "--listen", "10.255.255.1:1"}, "cannot listen"},
  };
  for (auto& k : cases) {
    Daemon d(mydfs::testing::binary("MYDFS_STORAGE_BIN"), k.args, dir_ / "bad.log");
    d.start();
    int rc = d.wait_exit(10s);
    EXPECT_EQ(rc, 2) << k.expect;
    EXPECT_NE(d.log().find(k.expect), std::string::npos) << "expected '" << k.expect << "' in: " << d.log();
  }
}

TEST_F(StorageDaemon, configFile_used_andUnknownKeyRefused) {
  std::string conf = dir_ / "storage.conf";
  {
    std::ofstream f(conf);
    f << "# a storage node\n"
      << "data = " << (dir_ / "cfgdata") << "\n"
      << "listen = 127.0.0.1:" << port_ << "\n"
      << "http = 127.0.0.1:" << http_port_ << "\n"
      << "node-id = 9\ngroup-id = 4\ncapacity = 32MiB\n";
  }
  {
    Daemon d(mydfs::testing::binary("MYDFS_STORAGE_BIN"), {"--config", conf}, dir_ / "cfg.log");
    d.start();
    ASSERT_TRUE(mydfs::testing::wait_for_port(port_, 20s)) << d.log();
    SyncClient c("127.0.0.1", port_);
    auto info = c.call(InfoReq{});
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->node_id, 9u);
    EXPECT_EQ(info->group_id, 4u);
    EXPECT_EQ(info->used_bytes + info->free_bytes, 32u << 20) << "capacity = 32MiB";
    EXPECT_EQ(d.terminate(), 0);
  }
  {
    std::ofstream f(conf, std::ios::app);
    f << "capacty = 64MiB\n";  // a typo must not be ignored
  }
  Daemon d(mydfs::testing::binary("MYDFS_STORAGE_BIN"), {"--config", conf}, dir_ / "cfg2.log");
  d.start();
  EXPECT_NE(d.wait_exit(10s), 0);
  EXPECT_NE(d.log().find("capacty"), std::string::npos) << d.log();
}

TEST_F(StorageDaemon, otherBackendInSameDataDir_refused) {
  auto d = start();
  EXPECT_EQ(d->terminate(), 0);
  Daemon other(mydfs::testing::binary("MYDFS_STORAGE_BIN"),
               {"--data", dir_ / "data", "--backend", "files", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"},
               dir_ / "other.log");
  other.start();
  EXPECT_EQ(other.wait_exit(10s), 2);
  EXPECT_NE(other.log().find("other backend"), std::string::npos) << other.log();
}

TEST_F(StorageDaemon, secondDaemonOnSameData_refused) {
  auto d = start();
  std::vector<std::string> args = {"--data", dir_ / "data", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"};
  Daemon second(mydfs::testing::binary("MYDFS_STORAGE_BIN"), args, dir_ / "second.log");
  second.start();
  EXPECT_EQ(second.wait_exit(10s), 2);
  EXPECT_NE(second.log().find("in use by another process"), std::string::npos) << second.log();
}

}  // namespace
}  // namespace mydfs
