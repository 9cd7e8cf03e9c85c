// The client library and the mydfs CLI against a real cluster: a tracker and two single-node
// storage groups on loopback.
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "client/client.h"
#include "proto/rpc.h"
#include "cluster.h"
#include "storage/slot_format.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using mydfs::testing::random_bytes;
using storage::kPayloadCapacity;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() : cluster_(dir_.path(), {}), client_(cluster_.client()) {}

  Result<Attr> put(const std::string& path, const std::string& data) {
    return mydfs::testing::put_bytes(*client_, path, data);
  }
  Result<std::string> get(const std::string& path) { return mydfs::testing::get_bytes(*client_, path); }
  int cli(const std::string& args, std::string* out = nullptr) { return cluster_.cli(args, out); }

  mydfs::testing::TempDir dir_;
  mydfs::testing::Cluster cluster_;
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
  EXPECT_EQ(to_errno(client_->mkdir("/x/y", 0755, false).error()), ENOENT);
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
  EXPECT_EQ(to_errno(client_->stat("/a").error()), ENOENT);
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
