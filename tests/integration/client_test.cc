// The client library and the mydfs CLI against a real cluster: a tracker and two single-node
// storage groups on loopback.
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "client/client.h"
#include "proto/rpc.h"
#include "harness.h"
#include "storage/slot_format.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using mydfs::testing::Daemon;
using storage::kPayloadCapacity;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tport_ = mydfs::testing::free_port();
    sport_[0] = mydfs::testing::free_port();
    sport_[1] = mydfs::testing::free_port();
    tracker_ = std::make_unique<Daemon>(
        mydfs::testing::binary("MYDFS_TRACKER_BIN"),
        std::vector<std::string>{"--data", dir_ / "tracker", "--listen", fmt::format("127.0.0.1:{}", tport_), "--http",
                                 "127.0.0.1:0", "--heartbeat-ms", "100", "--group", fmt::format("1=127.0.0.1:{}", sport_[0]),
                                 "--group", fmt::format("2=127.0.0.1:{}", sport_[1])},
        dir_ / "tracker.log");
    tracker_->start();
    ASSERT_TRUE(mydfs::testing::wait_for_port(tport_, 20s));
    for (int i = 0; i < 2; ++i) {
      storage_[i] = std::make_unique<Daemon>(
          mydfs::testing::binary("MYDFS_STORAGE_BIN"),
          std::vector<std::string>{"--data", dir_ / fmt::format("s{}", i + 1), "--listen",
                                   fmt::format("127.0.0.1:{}", sport_[i]), "--http", "127.0.0.1:0", "--node-id",
                                   std::to_string(i + 1), "--group-id", std::to_string(i + 1), "--capacity", "512MiB",
                                   "--tracker", fmt::format("127.0.0.1:{}", tport_)},
          dir_ / fmt::format("s{}.log", i + 1));
      storage_[i]->start();
      ASSERT_TRUE(mydfs::testing::wait_for_port(sport_[i], 20s));
    }
    client::ClientOptions o;
    o.tracker = fmt::format("127.0.0.1:{}", tport_);
    client_ = std::make_unique<client::Client>(o);
    // Wait until both groups are usable (their heartbeats are in).
    proto::SyncClient t("127.0.0.1", tport_);
    for (int i = 0; i < 100; ++i) {
      auto r = t.call(proto::NsReadReq{proto::NsReadOp::STATFS, kRootIno, "", 0, 0});
      if (r.ok() && r->total_slots == 2 * 128) break;
      std::this_thread::sleep_for(50ms);
    }
  }

  static std::string random_bytes(size_t n, uint64_t seed) {
    std::string s(n, '\0');
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng();
      std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
    }
    return s;
  }
  Result<Attr> put(const std::string& path, const std::string& data) {
    return client_->put(path, data.size(), [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
      size_t n = std::min<size_t>(out.size(), data.size() - off);
      std::memcpy(out.data(), data.data() + off, n);
      return n;
    });
  }
  Result<std::string> get(const std::string& path) {
    MYDFS_ASSIGN(Attr a, client_->stat(path));
    std::string out(a.size, '\0');
    MYDFS_TRY(client_->get(a, [&](uint64_t off, std::span<const std::byte> d) -> Status {
      if (off + d.size() > out.size()) return make_error(Code::INTERNAL, "slice beyond the size");
      std::memcpy(out.data() + off, d.data(), d.size());
      return ok_status();
    }));
    return out;
  }
  int cli(const std::string& args, std::string* out = nullptr) {
    std::string file = dir_ / "cli.out";
    std::string cmd = fmt::format("{} --tracker 127.0.0.1:{} {} > {} 2>&1", mydfs::testing::binary("MYDFS_CLI_BIN"),
                                  tport_, args, file);
    int rc = std::system(cmd.c_str());
    if (out) {
      std::ifstream f(file);
      *out = std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  mydfs::testing::TempDir dir_;
  uint16_t tport_ = 0, sport_[2] = {0, 0};
  std::unique_ptr<Daemon> tracker_, storage_[2];
  std::unique_ptr<client::Client> client_;
};

TEST_F(ClientTest, roundTrips_ofEveryInterestingSize) {
  std::vector<size_t> sizes = {0, 1, kPayloadCapacity - 1, kPayloadCapacity, kPayloadCapacity + 1,
                               3 * size_t{kPayloadCapacity} + 7, 100u << 20};
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string path = fmt::format("/file-{}", i);
    std::string data = random_bytes(sizes[i], 100 + i);
    auto a = put(path, data);
    ASSERT_TRUE(a.ok()) << sizes[i] << ": " << a.error().to_string();
    EXPECT_EQ(a->size, sizes[i]);
    auto back = get(path);
    ASSERT_TRUE(back.ok()) << sizes[i] << ": " << back.error().to_string();
    EXPECT_TRUE(*back == data) << "size " << sizes[i] << " did not round-trip";
    auto chain = client_->chain(*a);
    ASSERT_TRUE(chain.ok());
    EXPECT_EQ(chain->size(), (sizes[i] + kPayloadCapacity - 1) / kPayloadCapacity);
  }
}

TEST_F(ClientTest, chain_runsOfThreeAcrossGroups_andOffsets) {
  std::string data = random_bytes(7 * size_t{kPayloadCapacity}, 7);
  auto a = put("/seven", data);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  auto ch = client_->chain(*a);
  ASSERT_TRUE(ch.ok());
  ASSERT_EQ(ch->size(), 7u);
  // 3 + 3 + 1: groups change exactly at the run boundaries.
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ((*ch)[i].offset, i * kPayloadCapacity);
    if (i % 3 != 0) {
      EXPECT_EQ((*ch)[i].meta.loc.group, (*ch)[i - 1].meta.loc.group) << i;
    } else if (i > 0) {
      EXPECT_NE((*ch)[i].meta.loc.group, (*ch)[i - 1].meta.loc.group) << i;
    }
  }
}

TEST_F(ClientTest, putReplacesContent_andOldChainIsReleased) {
  ASSERT_TRUE(put("/f", random_bytes(5000000, 1)).ok());
  std::string v2 = random_bytes(123, 2);
  auto a = put("/f", v2);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->version, 2u);
  EXPECT_EQ(*get("/f"), v2);
}

TEST_F(ClientTest, namespaceOps_mkdirLsMvRm) {
  ASSERT_TRUE(client_->mkdir("/a/b/c", 0755, true).ok());
  EXPECT_EQ(client::error_errno(client_->mkdir("/x/y", 0755, false).error()), ENOENT);
  ASSERT_TRUE(put("/a/b/c/file", "hello").ok());
  ASSERT_TRUE(client_->rename("/a/b/c/file", "/a").ok());  // into the directory
  EXPECT_EQ(*get("/a/file"), "hello");
  auto a = client_->stat("/a");
  ASSERT_TRUE(a.ok());
  auto entries = client_->list(a->ino);
  ASSERT_TRUE(entries.ok());
  std::vector<std::string> names;
  for (auto& e : *entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"b", "file"}));
  ASSERT_TRUE(client_->remove("/a", true).ok());
  EXPECT_EQ(client::error_errno(client_->stat("/a").error()), ENOENT);
}

TEST_F(ClientTest, cli_putGetCatLsStatChainAndErrors) {
  std::string local = dir_ / "in.bin", back = dir_ / "out.bin";
  std::string data = random_bytes(9000000, 3);
  { std::ofstream(local, std::ios::binary) << data; }
  std::string out;
  ASSERT_EQ(cli("mkdir -p /docs/deep", &out), 0) << out;
  ASSERT_EQ(cli(fmt::format("put {} /docs/blob", local), &out), 0) << out;
  ASSERT_EQ(cli(fmt::format("get /docs/blob {}", back), &out), 0) << out;
  std::ifstream f(back, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(got == data);
  ASSERT_EQ(cli("cat /docs/blob | wc -c", &out), 0);
  ASSERT_EQ(cli("ls -l /docs", &out), 0);
  EXPECT_NE(out.find("blob"), std::string::npos) << out;
  EXPECT_NE(out.find("9000000"), std::string::npos) << out;
  ASSERT_EQ(cli("chain /docs/blob", &out), 0);
  EXPECT_NE(out.find("3 slice(s)"), std::string::npos) << out;
  ASSERT_EQ(cli("stat /docs/blob", &out), 0);
  EXPECT_NE(out.find("Size: 9000000"), std::string::npos) << out;
  EXPECT_EQ(cli("stat /nope", &out), 1);
  EXPECT_NE(out.find("mydfs: cannot stat '/nope': No such file or directory"), std::string::npos) << out;
  EXPECT_EQ(cli("rm /docs", &out), 1);
  EXPECT_NE(out.find("Is a directory"), std::string::npos) << out;
  EXPECT_EQ(cli("rm -r /docs", &out), 0) << out;
  EXPECT_EQ(cli("ls /docs", &out), 1);
}

}  // namespace
}  // namespace mydfs
