// Storage groups of three as real processes on loopback: kill -9 of leaders and followers under a
// continuous write load, a leader stopped past the election timeout and resumed, and a member
// whose disk was wiped. Every acknowledged file must read back byte-identical, and after
// catch-up every member's store must hold the same slots with the same bytes.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cluster.h"
#include "common/checksum.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "storage/slice_store.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using mydfs::Code;
using mydfs::Location;
using mydfs::testing::Cluster;
using mydfs::testing::ClusterOptions;
using mydfs::testing::get_bytes;
using mydfs::testing::put_bytes;
using mydfs::testing::random_bytes;

constexpr const char* kCapacity = "512MiB";  // 128 slots per node

ClusterOptions group_of_three() {
  ClusterOptions o;
  o.groups = 1;
  o.replicas = 3;
  o.capacity = kCapacity;
  return o;
}

mydfs::client::ClientOptions small_slices() {
  mydfs::client::ClientOptions o;
  o.slice_bytes = 256 << 10;  // several slices per file, and slots reused often
  o.call_timeout = 3000ms;
  return o;
}

// What a writer knows of each file: the content last acknowledged, and any content whose put
// failed after that (it may or may not have happened: a put is atomic, so it is one of them).
struct Expect {
  std::string acked;
  std::vector<std::string> maybe;
};

// Puts files /f0../f{n-1} over and over until stop; returns what it was told.
class Writer {
 public:
  Writer(const Cluster& c, int files) : client_(c.client(small_slices())), files_(files) {
    thread_ = std::thread([this] { run(); });
  }
  ~Writer() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<std::string, Expect> expected() const { return expect_; }
  int acked() const { return acked_; }
  int failed() const { return failed_; }

 private:
  void run() {
    std::mt19937_64 rng(42);
    for (uint64_t i = 0; !stop_; ++i) {
      std::string path = fmt::format("/f{}", i % files_);
      std::string data = random_bytes(100'000 + rng() % 1'100'000, i + 1);
      auto r = put_bytes(*client_, path, data);
      auto& e = expect_[path];
      if (r.ok()) {
        e.acked = data;
        e.maybe.clear();
        ++acked_;
      } else {
        e.maybe.push_back(data);
        ++failed_;
      }
    }
  }
  std::unique_ptr<mydfs::client::Client> client_;
  int files_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<std::string, Expect> expect_;  // writer thread only until finish()
  std::atomic<int> acked_{0}, failed_{0};
};

// Puts n files PREFIX0.. of `size` random bytes (seeds from `seed` on) and records them in want.
void put_files(mydfs::client::Client& client, const std::string& prefix, int n, size_t size, uint64_t seed,
               std::map<std::string, Expect>& want) {
  for (int i = 0; i < n; ++i) {
    std::string path = fmt::format("{}{}", prefix, i);
    std::string data = random_bytes(size, seed + i);
    auto put = put_bytes(client, path, data);
    ASSERT_TRUE(put.ok()) << path << ": " << put.error().to_string();
    want[path].acked = data;
  }
}

void expect_files(const Cluster& c, const std::map<std::string, Expect>& want) {
  auto client = c.client(small_slices());
  for (const auto& [path, e] : want) {
    auto got = get_bytes(*client, path);
    if (e.acked.empty() && !got.ok()) continue;  // never acknowledged and not there
    ASSERT_TRUE(got.ok()) << path << ": " << got.error().to_string();
    bool match = *got == e.acked || std::find(e.maybe.begin(), e.maybe.end(), *got) != e.maybe.end();
    EXPECT_TRUE(match) << path << " (" << got->size() << " bytes) is neither what was acknowledged ("
                       << e.acked.size() << " bytes) nor a put that failed";
  }
}

// Waits until the given members (storage indexes; default the first three) applied the same index.
bool wait_caught_up(const Cluster& c, std::chrono::milliseconds timeout, std::vector<int> members = {0, 1, 2}) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    std::set<uint64_t> applied;
    size_t answered = 0;
    for (int i : members) {
      auto inf = c.info(i);
      if (!inf.ok()) break;
      ++answered;
      applied.insert(inf->applied_index);
    }
    if (answered == members.size() && applied.size() == 1) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// Stops the given members cleanly and compares their stores slot by slot: the same headers and,
// for every slot holding data, the same bytes.
void expect_replicas_identical(Cluster& c, std::vector<int> members = {0, 1, 2}) {
  for (int i : members) EXPECT_EQ(c.storage(i).terminate(), 0) << c.storage(i).log();
  std::vector<std::unique_ptr<mydfs::storage::SliceStore>> stores;
  for (int i : members) {
    mydfs::storage::StoreOptions so;
    so.path = c.storage_dir(i) / "store.vol";
    so.capacity_slots = 128;
    so.cluster_id = 1;
    so.group_id = c.group_of(i);
    so.node_id = c.node_id(i);
    auto s = mydfs::storage::SliceStore::open(so);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    stores.push_back(std::move(*s));
  }
  uint32_t hwm = 0;
  for (auto& s : stores) hwm = std::max(hwm, s->high_water());
  int compared = 0;
  for (uint32_t slot = 1; slot < hwm; ++slot) {
    auto m0 = stores[0]->meta(slot);
    ASSERT_TRUE(m0.ok()) << "slot " << slot << ": " << m0.error().to_string();
    std::string bytes0;
    for (size_t i = 1; i < stores.size(); ++i) {
      auto m = stores[i]->meta(slot);
      ASSERT_TRUE(m.ok()) << "member " << i + 1 << " slot " << slot << ": " << m.error().to_string();
      EXPECT_EQ(m->loc, m0->loc) << "member " << i + 1 << " slot " << slot;
      EXPECT_EQ(m->state, m0->state) << "member " << i + 1 << " slot " << slot;
      EXPECT_EQ(m->valid_len, m0->valid_len) << "member " << i + 1 << " slot " << slot;
      EXPECT_EQ(m->payload_checksum, m0->payload_checksum) << "member " << i + 1 << " slot " << slot;
      EXPECT_EQ(m->next, m0->next) << "member " << i + 1 << " slot " << slot;
    }
    if (m0->state != mydfs::proto::SlotState::LIVE) continue;
    std::vector<std::string> bytes;
    for (auto& s : stores) {
      std::string b(m0->valid_len, '\0');
      ASSERT_TRUE(s->read_payload(slot, 0, std::as_writable_bytes(std::span(b))).ok());
      bytes.push_back(std::move(b));
    }
    for (size_t i = 1; i < bytes.size(); ++i) {
      if (bytes[i] == bytes[0]) continue;
      std::string which;  // whose bytes the header's checksum vouches for
      for (size_t j = 0; j < bytes.size(); ++j)
        if (mydfs::xxh64(std::as_bytes(std::span(bytes[j]))) != m0->payload_checksum)
          which += fmt::format(" member {} does not match its header;", members[j] + 1);
      ADD_FAILURE() << "slot " << slot << " (" << fmt::format("{}", m0->loc) << ", " << m0->valid_len << " bytes, applied at "
                    << m0->applied_index << ") differs between members:" << which;
      break;
    }
    ++compared;
  }
  EXPECT_GT(compared, 0) << "no live slot to compare";
}

class GroupTest : public ::testing::Test {
 protected:
  mydfs::testing::TempDir dir_;
};

TEST_F(GroupTest, leaderKilled20TimesUnderLoad_everyAcknowledgedFileSurvives_replicasIdentical) {
  Cluster c(dir_.path(), group_of_three());
  Writer w(c, 8);
  std::mt19937_64 rng(7);
  std::vector<double> failover_ms;
  for (int k = 0; k < 20; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 350));
    int l = c.leader(1, 10s);
    ASSERT_GE(l, 0) << "no leader before kill " << k;
    c.storage(l).kill9();
    auto t0 = std::chrono::steady_clock::now();
    int nl = c.leader(1, 10s);
    ASSERT_GE(nl, 0) << "no new leader after kill " << k;
    failover_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    c.start_storage(l);
  }
  // A follower too, several times.
  for (int k = 0; k < 3; ++k) {
    int l = c.leader(1, 10s);
    ASSERT_GE(l, 0);
    int f = (l + 1 + k % 2) % 3;
    c.storage(f).kill9();
    std::this_thread::sleep_for(300ms);
    c.start_storage(f);
  }
  std::this_thread::sleep_for(300ms);
  w.finish();
  std::sort(failover_ms.begin(), failover_ms.end());
  fmt::print("acknowledged puts {}, failed {}; new leader after kill: p50 {:.0f} ms, max {:.0f} ms\n", w.acked(),
             w.failed(), failover_ms[failover_ms.size() / 2], failover_ms.back());
  EXPECT_GE(w.acked(), 5) << "the load did not get through the failovers";
  expect_files(c, w.expected());
  ASSERT_TRUE(wait_caught_up(c, 20s)) << "members did not catch up";
  expect_replicas_identical(c);
}

// A freed and reused slot: its old slice must never be served for it, nor written over the newer
// slice, however late the old one arrives. (A member restarted under load asks for old entries'
// slices after newer slices of the same slots were pushed to it; the leader still holds old
// slices in memory for a follower that never confirmed them.)
TEST_F(GroupTest, freedSlot_oldSliceNeitherServedNorWrittenOverNewerOne) {
  Cluster c(dir_.path(), group_of_three());
  auto client = c.client(small_slices());
  int l = c.leader(1, 5s);
  ASSERT_GE(l, 0);
  int f = (l + 1) % 3;
  ASSERT_EQ(::kill(c.storage(f).pid(), SIGSTOP), 0);  // never confirms: the leader keeps the bytes
  std::string data = random_bytes(100'000, 5);
  auto put = put_bytes(*client, "/a", data);
  auto attr = client->stat("/a");
  auto removed = client->remove("/a", false);
  client->wait_frees();  // the chain's slots are deleted in the background
  std::optional<mydfs::Result<mydfs::proto::SliceFetchResp>> fetched;
  if (attr.ok()) {
    mydfs::proto::SyncClient s("127.0.0.1", c.storage_port(l));
    mydfs::AlignedBuffer got;
    fetched = s.call(mydfs::proto::SliceFetchReq{1, attr->head, 100'000, mydfs::xxh64(std::as_bytes(std::span(data)))},
                     {}, &got);
  }
  ASSERT_EQ(::kill(c.storage(f).pid(), SIGCONT), 0);
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  ASSERT_TRUE(attr.ok()) << attr.error().to_string();
  ASSERT_TRUE(removed.ok()) << removed.error().to_string();
  ASSERT_TRUE(fetched.has_value());
  if (fetched->ok()) {
    EXPECT_TRUE((*fetched)->obsolete) << "the leader served the bytes of a deleted slice";
  } else {
    EXPECT_EQ(fetched->code(), Code::NOT_FOUND) << fetched->error().to_string();
  }
  // A node outside the group's configuration applies nothing, so only the data path decides.
  int fresh = c.add_member(1, 4);
  mydfs::proto::SyncClient s("127.0.0.1", c.storage_port(fresh));
  auto push = [&](Location loc, const std::string& bytes) {
    auto b = std::make_shared<mydfs::AlignedBuffer>(mydfs::AlignedBuffer::copy_of(std::as_bytes(std::span(bytes))));
    return s.call(mydfs::proto::SlicePushReq{1, loc, mydfs::xxh64(b->span())}, mydfs::proto::Bulk::of(b));
  };
  std::string newer = random_bytes(100'000, 6), older = random_bytes(100'000, 7);
  Location at_new{1, 9, 5}, at_old{1, 9, 4};
  auto r1 = push(at_new, newer);
  ASSERT_TRUE(r1.ok()) << r1.error().to_string();
  EXPECT_FALSE(push(at_old, older).ok()) << "an older slice was written over a newer one";
  mydfs::AlignedBuffer got;
  auto r2 = s.call(mydfs::proto::SliceFetchReq{1, at_old, 100'000, mydfs::xxh64(std::as_bytes(std::span(older)))}, {},
                   &got);
  ASSERT_TRUE(r2.ok()) << r2.error().to_string();
  EXPECT_TRUE(r2->obsolete);
}

TEST_F(GroupTest, stoppedLeaderResumed_neverServesStaleRead) {
  Cluster c(dir_.path(), group_of_three());
  auto a = c.client(small_slices());
  std::string v1 = random_bytes(300'000, 1), v2 = random_bytes(300'000, 2);
  ASSERT_TRUE(put_bytes(*a, "/x", v1).ok());
  auto attr = a->stat("/x");
  ASSERT_TRUE(attr.ok());
  Location head = attr->head;
  int old = c.leader(1, 5s);
  ASSERT_GE(old, 0);
  ASSERT_EQ(::kill(c.storage(old).pid(), SIGSTOP), 0);
  // A new leader within the election timeout; the new content goes through it.
  auto b = c.client(small_slices());
  auto put = put_bytes(*b, "/x", v2);
  int now = c.leader(1, 10s);
  ::kill(c.storage(old).pid(), SIGCONT);
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  ASSERT_GE(now, 0);
  ASSERT_NE(now, old);
  // The old leader, asked at once, must not answer with the old slice.
  mydfs::proto::SyncClient s("127.0.0.1", c.storage_port(old));
  auto r = s.call(mydfs::proto::ReadReq{head, 0, 100});
  EXPECT_FALSE(r.ok()) << "a deposed leader served a read";
  if (!r.ok()) {
    EXPECT_EQ(r.code(), Code::NOT_LEADER) << r.error().to_string();
  }
  // A client that still believes in the old leader reads the new content.
  auto got = get_bytes(*a, "/x");
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_TRUE(*got == v2);
}

TEST_F(GroupTest, wipedMember_rebuildsFromPeers) {
  ClusterOptions o = group_of_three();
  o.storage_args = {"--raft-compact-after", "40"};  // the log is cut long before the member returns
  Cluster c(dir_.path(), o);
  auto client = c.client(small_slices());
  std::map<std::string, Expect> want;
  put_files(*client, "/a", 6, 700'000, 100, want);
  ASSERT_FALSE(HasFatalFailure());
  int l = c.leader(1, 5s);
  ASSERT_GE(l, 0);
  int victim = (l + 1) % 3;
  c.storage(victim).kill9();
  std::filesystem::remove_all(c.storage_dir(victim));
  // Overwrites and new files while it is gone: slots are deleted and reused.
  for (int i = 0; i < 12; ++i) {
    std::string path = fmt::format("/a{}", i % 8);
    std::string data = random_bytes(500'000, 200 + i);
    ASSERT_TRUE(put_bytes(*client, path, data).ok());
    want[path].acked = data;
  }
  c.start_storage(victim);
  ASSERT_TRUE(wait_caught_up(c, 30s)) << "the wiped member did not catch up";
  EXPECT_NE(c.storage(victim).log().find("rebuilt up to"), std::string::npos)
      << "the member was expected to rebuild from a snapshot (the log was cut)\n" << c.storage(victim).log();
  // It is a full member again: with another member gone, the group still works through it.
  int other = (victim + 1) % 3 == c.leader(1, 5s) ? (victim + 2) % 3 : (victim + 1) % 3;
  c.storage(other).kill9();
  std::string data = random_bytes(400'000, 999);
  auto put = put_bytes(*client, "/after", data);
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  want["/after"].acked = data;
  expect_files(c, want);
  c.start_storage(other);
  ASSERT_TRUE(wait_caught_up(c, 30s));
  expect_replicas_identical(c);
}

TEST_F(GroupTest, deadMemberReplacedByNewNode_throughMembershipChange) {
  Cluster c(dir_.path(), group_of_three());
  auto client = c.client(small_slices());
  std::map<std::string, Expect> want;
  put_files(*client, "/b", 4, 600'000, 300, want);
  ASSERT_FALSE(HasFatalFailure());
  int l = c.leader(1, 5s);
  ASSERT_GE(l, 0);
  int dead = (l + 1) % 3;
  c.storage(dead).kill9();  // for good: its disk is gone
  int fresh = c.add_member(1, 4);
  std::string out;
  int rc = c.cli(fmt::format("admin replace-member 1 {}=127.0.0.1:{} 4=127.0.0.1:{}", c.node_id(dead),
                             c.storage_port(dead), c.storage_port(fresh)),
                 &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("added member 4"), std::string::npos) << out;
  std::vector<int> live;
  for (int i : {0, 1, 2, fresh})
    if (i != dead) live.push_back(i);
  // Writes go on, and the new member holds them.
  put_files(*client, "/b", 4, 500'000, 400, want);  // overwrites: old slots freed and reused
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(wait_caught_up(c, 30s, live)) << "the new member did not catch up";
  // The tracker expects the new address, and hears it.
  bool up = false;
  for (int k = 0; k < 100 && !up; ++k) {
    mydfs::proto::SyncClient t("127.0.0.1", static_cast<uint16_t>(std::stoi(c.tracker().substr(10))));
    auto st = t.call(mydfs::proto::ClusterStatusReq{});
    if (st.ok()) {
      auto j = nlohmann::json::parse(st->json);
      std::set<std::string> up_members, all;
      for (auto& m : j["groups"][0]["members"]) {
        all.insert(m["address"].get<std::string>());
        if (m.value("up", false)) up_members.insert(m["address"].get<std::string>());
      }
      out = st->json;
      up = up_members.count(fmt::format("127.0.0.1:{}", c.storage_port(fresh))) &&
           !all.count(fmt::format("127.0.0.1:{}", c.storage_port(dead)));
    }
    if (!up) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(up) << out;
  // It is a full member: with one of the two old members gone too, the group still takes writes.
  int other = live[0] == c.leader(1, 5s) ? live[1] : live[0];
  c.storage(other).kill9();
  std::string data = random_bytes(300'000, 999);
  auto put = put_bytes(*client, "/after", data);
  ASSERT_TRUE(put.ok()) << put.error().to_string();
  want["/after"].acked = data;
  expect_files(c, want);
  c.start_storage(other);
  ASSERT_TRUE(wait_caught_up(c, 30s, live));
  expect_replicas_identical(c, live);
}

}  // namespace
