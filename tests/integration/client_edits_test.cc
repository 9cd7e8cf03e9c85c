// Edits against a real cluster (tracker + single-node storage groups on loopback): a model-based
// random test, two-phase commit under kill -9 of each party, stale chain maps, and concurrent
// writers of one file.
#include <sys/wait.h>

#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "cluster.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using mydfs::testing::Cluster;
using mydfs::testing::ClusterOptions;
using mydfs::testing::get_bytes;
using mydfs::testing::put_bytes;
using mydfs::testing::random_bytes;

client::ClientOptions small_slices(uint32_t bytes) {
  client::ClientOptions o;
  o.slice_bytes = bytes;
  return o;
}

// Polls until no storage node holds a transaction's slot; false after the timeout.
bool wait_no_transactions(const Cluster& c, int groups, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    bool clear = true;
    for (int i = 0; i < groups; ++i) {
      auto r = c.info(i);
      clear = clear && r.ok() && r->tx_slots == 0;
    }
    if (clear) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Model-based random test: every edit is applied to a std::string too, and the file must equal
// it byte for byte after every step.

// With chaos, members of the groups are killed and restarted while it runs: an edit that fails
// may or may not have happened (its answer was lost), so the file must then be entirely the old
// or entirely the new content, and the model follows whichever it is.
class ModelTest : public ::testing::Test {
 protected:
  void start(ClusterOptions o) { cluster_ = std::make_unique<Cluster>(dir_.path(), std::move(o)); }
  // For compaction: three single-node groups, a client that writes 1000-byte slices (a file is a
  // long chain of them) and one with full slices that compacts.
  std::pair<std::unique_ptr<client::Client>, std::unique_ptr<client::Client>> fragmenting_clients() {
    start(ClusterOptions{3, "512MiB", 10000, 1, {}});
    return {cluster_->client(small_slices(1000)), cluster_->client()};
  }

  void run(uint64_t seed, int steps, bool chaos = false) {
    SCOPED_TRACE(fmt::format("seed {} (replay: MYDFS_MODEL_SEED={})", seed, seed));
    auto c = cluster_->client(small_slices(1024));  // ~1 KiB slices: long chains over several groups
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
    constexpr int kFiles = 3;
    std::vector<std::string> model(kFiles);
    std::vector<std::string> path(kFiles);
    for (int f = 0; f < kFiles; ++f) {
      path[f] = fmt::format("/model-{}-{}", seed, f);
      model[f] = random_bytes(pick(0, 6000), rng());
      ASSERT_TRUE(put_bytes(*c, path[f], model[f]).ok());
    }
    int unknown = 0;
    // With chaos the run lasts until at least min_kills_ members were killed.
    for (int step = 0; step < steps || (kills_ && *kills_ < min_kills_); ++step) {
      int f = static_cast<int>(pick(0, kFiles - 1));
      std::string& m = model[f];
      const std::string before = m;
      std::string data = random_bytes(pick(0, 2500), rng());
      std::string what;
      Result<Attr> r = make_error(Code::INTERNAL, "no op");
      switch (pick(0, 3)) {
        case 0:
          what = fmt::format("append {}", data.size());
          r = c->append(path[f], data.size(), [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
            size_t n = std::min<size_t>(out.size(), data.size() - off);
            std::memcpy(out.data(), data.data() + off, n);
            return n;
          });
          m += data;
          break;
        case 1: {
          uint64_t off = pick(0, m.size() + 300);
          what = fmt::format("write-at {} {}", off, data.size());
          r = c->write_at(path[f], off, data);
          if (!data.empty()) {
            if (m.size() < off + data.size()) m.resize(off + data.size(), '\0');
            m.replace(off, data.size(), data);
          }
          break;
        }
        case 2: {
          uint64_t off = pick(0, m.size());
          uint64_t del = pick(0, std::min<uint64_t>(m.size() - off, 3000));
          what = fmt::format("splice {} {} {}", off, del, data.size());
          r = c->splice(path[f], off, del, data);
          m.replace(off, del, data);
          break;
        }
        default: {
          uint64_t size = pick(0, m.size() + 800);
          what = fmt::format("truncate {}", size);
          r = c->truncate(path[f], size);
          m.resize(size, '\0');
          break;
        }
      }
      if (!chaos || r.ok()) {
        ASSERT_TRUE(r.ok()) << "step " << step << " " << what << ": " << r.error().to_string();
        ASSERT_EQ(r->size, m.size()) << "step " << step << " " << what << ": published size";
      }
      auto back = get_bytes(*c, path[f]);
      ASSERT_TRUE(back.ok()) << "step " << step << " " << what << ": " << back.error().to_string();
      if (!r.ok()) {
        ++unknown;
        ASSERT_TRUE(*back == m || *back == before)
            << "step " << step << " " << what << " failed (" << r.error().to_string()
            << ") and left the file neither old nor new";
        m = *back;
        continue;
      }
      ASSERT_EQ(back->size(), m.size()) << "step " << step << " " << what;
      ASSERT_TRUE(*back == m) << "step " << step << " " << what << ": content differs";
    }
    if (chaos) {
      std::printf("seed %llu: %d edits failed while members were killed (each left its file old or new)\n",
                  static_cast<unsigned long long>(seed), unknown);
      for (int f = 0; f < kFiles; ++f) ASSERT_TRUE(c->remove(path[f], false).ok());
      return;  // leaks of edits whose answers were lost are not this test's subject
    }
    // Nothing is left behind: every slot in use is a slice of some file, and no transaction
    // holds a slot (once the chains released in the background are freed).
    c->wait_frees();
    uint64_t reachable = 0;
    for (int f = 0; f < kFiles; ++f) {
      auto a = c->stat(path[f]);
      ASSERT_TRUE(a.ok());
      auto ch = c->chain(*a);
      ASSERT_TRUE(ch.ok());
      reachable += ch->size();
    }
    uint64_t used = 0;
    for (int i = 0; i < 3; ++i) {
      auto info = cluster_->info(i);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->tx_slots, 0u);
      EXPECT_EQ(info->tx_decisions, 0u) << "decisions are forgotten once every participant finished";
      used += info->used_slots;
    }
    EXPECT_EQ(used, reachable) << "slots in use that no file reaches";
    for (int f = 0; f < kFiles; ++f) ASSERT_TRUE(c->remove(path[f], false).ok());
  }

  mydfs::testing::TempDir dir_;
  std::unique_ptr<Cluster> cluster_;
  std::atomic<int>* kills_ = nullptr;
  int min_kills_ = 0;
};

// MYDFS_MODEL_STEPS: operations per seed (default 700; tools/test runs fewer under the sanitizers).
int model_steps() {
  const char* s = std::getenv("MYDFS_MODEL_STEPS");
  int n = s ? std::atoi(s) : 0;
  return n > 0 ? n : 700;
}

TEST_F(ModelTest, fixedSeeds_andOneRandom) {
  start(ClusterOptions{3, "512MiB", 10000, 1, {}});
  for (uint64_t seed : {1u, 2u}) {
    run(seed, model_steps());
    if (HasFatalFailure()) return;
  }
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("MYDFS_MODEL_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("model test random seed: %llu (replay with MYDFS_MODEL_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  run(seed, model_steps());
}

// Two groups of three; every 0.5-1 s one member (leader or not) is killed with SIGKILL and
// started again 0.3 s later.
TEST_F(ModelTest, groupsOfThree_whileMembersAreKilled) {
  start(ClusterOptions{2, "512MiB", 3000, 3, {}});
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937_64 rng(99);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 500));
      if (stop) break;
      int i = static_cast<int>(rng() % cluster_->storage_count());
      cluster_->storage(i).kill9();
      ++kills;
      std::this_thread::sleep_for(300ms);
      cluster_->start_storage(i);
    }
  });
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("MYDFS_MODEL_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::printf("model test (groups of three, kills) seed: %llu\n", static_cast<unsigned long long>(seed));
  kills_ = &kills;
  min_kills_ = 10;
  run(seed, std::max(60, model_steps() / 3), true);
  stop = true;
  killer.join();
  std::printf("%d members killed during the run\n", kills.load());
  EXPECT_GE(kills.load(), 10);
  EXPECT_TRUE(wait_no_transactions(*cluster_, cluster_->storage_count(), 30s))
      << "a transaction still holds slots after the kills";
}

// The slots in use on every node, and those the file reaches.
uint64_t slots_in_use(Cluster& c) {
  uint64_t used = 0;
  for (int i = 0; i < c.storage_count(); ++i) {
    auto info = c.info(i);
    EXPECT_TRUE(info.ok());
    if (info.ok()) used += info->used_slots;
  }
  return used;
}

// Compaction alone: a file of 300 one-kilobyte slices ends as one slice with the same content,
// size and mtime, and every slot in use is the file's.
TEST_F(ModelTest, compaction_mergesSmallSlices_contentSizeMtimeKept_nothingLeaked) {
  auto clients = fragmenting_clients();
  auto& writer = clients.first;
  auto& compactor = clients.second;
  std::string model = random_bytes(300000, 6);
  ASSERT_TRUE(put_bytes(*writer, "/frag", model).ok());
  auto before = writer->stat("/frag");
  ASSERT_TRUE(before.ok());
  auto r = compactor->compact("/frag");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->slices_before, 300u);
  EXPECT_EQ(r->slices_after, 1u);
  auto after = writer->stat("/frag");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, model.size());
  EXPECT_EQ(after->mtime, before->mtime) << "compaction changes no byte: the mtime stays";
  auto ch = writer->chain(*after);
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->size(), 1u);
  auto back = get_bytes(*writer, "/frag");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, model);
  ASSERT_TRUE(wait_no_transactions(*cluster_, cluster_->storage_count(), 30s));
  EXPECT_EQ(slots_in_use(*cluster_), 1u) << "slots in use that the file does not reach";
}

// After a compaction was cut by a kill: a second one (the group may still be electing: a few
// tries) finishes the work; the content is the model's, and on every member the slots in use
// are exactly the slices the file reaches. killed: the storage index killed, or -1.
void expect_compacted_nothingLeaked(Cluster& c, const std::string& model, int killed) {
  Result<client::Client::CompactResult> again = make_error(Code::INTERNAL, "not run");
  auto compactor2 = c.client();
  for (int i = 0; i < 50; ++i) {
    again = compactor2->compact("/frag");
    if (again.ok()) break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(again->slices_after, 1u);
  auto back = get_bytes(*compactor2, "/frag");
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, model) << "the content survives the kill";
  auto a = compactor2->stat("/frag");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, model.size());
  auto ch = compactor2->chain(*a);
  ASSERT_TRUE(ch.ok());
  ASSERT_EQ(ch->size(), 1u);
  compactor2->wait_frees();
  ASSERT_TRUE(wait_no_transactions(c, c.storage_count(), 30s)) << "a transaction still holds slots";
  // Every member (the restarted one once it caught up) holds exactly the file's one slice.
  for (int i = 0; i < c.storage_count(); ++i) {
    uint64_t used = UINT64_MAX;
    for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
      auto info = c.info(i);
      if (info.ok()) used = info->used_slots;
      if (used == ch->size()) break;
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(used, ch->size()) << "member " << i << (i == killed ? " (the killed one)" : "")
                                << ": slots in use that the file does not reach";
    if (used != ch->size()) {  // what each member says, for the report
      for (int k = 0; k < c.storage_count(); ++k) {
        auto info = c.info(k);
        if (info.ok())
          std::printf("member %d: %u slot(s) in use, high water %u, applied %llu, %u held by transactions\n", k,
                      info->used_slots, info->high_water, static_cast<unsigned long long>(info->applied_index),
                      info->tx_slots);
      }
    }
  }
}

// Compaction under kill -9: a group of three compacts a file of 300 small slices; at the fifth
// merge, once its transaction is prepared, the group's leader is killed with SIGKILL and started
// again. The compaction that was cut fails or finishes; a second one finishes. Nothing is lost
// (the content is the model's) and nothing leaks: on every member, the slots in use are exactly
// the slices the file reaches.
TEST_F(ModelTest, compaction_leaderKilledDuringIt_nothingLostNothingLeaked) {
  start(ClusterOptions{1, "512MiB", 10000, 3, {}});
  auto writer = cluster_->client(small_slices(1000));
  std::string model = random_bytes(300000, 8);
  ASSERT_TRUE(put_bytes(*writer, "/frag", model).ok());
  int leader = cluster_->leader(1, 10s);
  ASSERT_GE(leader, 0);
  std::atomic<int> prepares{0};
  std::atomic<bool> paused{false}, killed{false};
  client::ClientOptions o;
  o.after_prepare = [&](uint64_t) {  // on the compactor's thread: it waits here for the kill
    if (++prepares != 5) return;
    paused = true;
    for (int i = 0; i < 1000 && !killed; ++i) std::this_thread::sleep_for(10ms);
  };
  auto compactor = cluster_->client(o);
  Result<client::Client::CompactResult> cr = make_error(Code::INTERNAL, "not run");
  std::thread t([&] { cr = compactor->compact("/frag"); });
  for (int i = 0; i < 3000 && !paused; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(paused) << "no fifth merge was prepared";
  auto a0 = writer->stat("/frag");
  size_t seen = 0;
  if (a0.ok()) {
    auto ch = writer->chain(*a0);
    if (ch.ok()) seen = ch->size();
  }
  cluster_->storage(leader).kill9();
  std::this_thread::sleep_for(300ms);
  cluster_->start_storage(leader);
  killed = true;
  t.join();
  std::printf("compaction cut at %zu slices by the leader's kill: %s\n", seen,
              cr.ok() ? "it finished" : cr.error().to_string().c_str());
  expect_compacted_nothingLeaked(*cluster_, model, leader);
}

// The same with the compacting client killed (SIGKILL, `mydfs compact` paused after a prepare):
// the participants' recovery aborts the merge it left prepared.
TEST_F(ModelTest, compaction_compactorKilledDuringIt_nothingLostNothingLeaked) {
  start(ClusterOptions{1, "512MiB", 10000, 3, {}});
  auto writer = cluster_->client(small_slices(1000));
  std::string model = random_bytes(300000, 9);
  ASSERT_TRUE(put_bytes(*writer, "/frag", model).ok());
  ::setenv("MYDFS_TEST_PAUSE_AFTER_PREPARE_MS", "1000", 1);
  mydfs::testing::Daemon cli(mydfs::testing::binary("MYDFS_CLI_BIN"),
                             {"--tracker", cluster_->tracker(), "compact", "/frag"}, dir_ / "cli.log");
  cli.start();
  ::unsetenv("MYDFS_TEST_PAUSE_AFTER_PREPARE_MS");
  auto until = std::chrono::steady_clock::now() + 20s;
  while (cli.log().find("prepared") == std::string::npos && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  ASSERT_NE(cli.log().find("prepared"), std::string::npos) << cli.log();
  EXPECT_GT(cluster_->info(0)->tx_slots, 0u) << "the merge holds slots when it is killed";
  cli.kill9();
  expect_compacted_nothingLeaked(*cluster_, model, -1);
}

// Compaction online: the same file is merged while another client edits and reads it. Every read
// matches the model, the content survives the merges, and a last pass leaves one slice.
TEST_F(ModelTest, compaction_whileEditsAndReadsGoOn_contentKept) {
  auto clients = fragmenting_clients();
  auto& writer = clients.first;
  auto& compactor = clients.second;
  std::string model = random_bytes(300000, 5);
  ASSERT_TRUE(put_bytes(*writer, "/frag", model).ok());
  std::atomic<bool> done{false};
  Result<client::Client::CompactResult> cr = make_error(Code::INTERNAL, "not run");
  std::thread t([&] {
    cr = compactor->compact("/frag", UINT32_MAX, 5ms);  // rate-limited: the edits get room
    done = true;
  });
  std::mt19937_64 rng(77);
  int edits = 0, during = 0;
  while ((!done || edits < 30) && edits < 400) {
    std::string data = random_bytes(1 + rng() % 3000, rng());
    Result<Attr> r = make_error(Code::INTERNAL, "");
    if (rng() % 3 == 0) {
      r = writer->append("/frag", data.size(), [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
        size_t n = std::min<size_t>(out.size(), data.size() - off);
        std::memcpy(out.data(), data.data() + off, n);
        return n;
      });
      model += data;
    } else {
      uint64_t off = rng() % model.size();
      r = writer->write_at("/frag", off, data);
      if (model.size() < off + data.size()) model.resize(off + data.size(), '\0');
      model.replace(off, data.size(), data);
    }
    ASSERT_TRUE(r.ok()) << "edit " << edits << ": " << r.error().to_string();
    ++edits;
    during += !done;
    auto back = get_bytes(*writer, "/frag");
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    ASSERT_EQ(*back, model) << "edit " << edits << ": content differs";
  }
  t.join();
  ASSERT_TRUE(cr.ok()) << cr.error().to_string();
  EXPECT_GT(cr->merges, 0u);
  EXPECT_GT(during, 0) << "the edits ran while the compaction did";
  auto last = compactor->compact("/frag");
  ASSERT_TRUE(last.ok()) << last.error().to_string();
  auto after = writer->stat("/frag");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, model.size());
  auto ch = writer->chain(*after);
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->size(), 1u) << "what fits in one slice ends in one slice";
  auto back = get_bytes(*writer, "/frag");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, model);
  ASSERT_TRUE(wait_no_transactions(*cluster_, cluster_->storage_count(), 30s));
  // An edit racing a merge can leave a redirected slot behind (issue 16's collector reclaims
  // such slots); how many is reported, not asserted.
  std::printf("compaction: %llu -> %llu slices in %llu merges, %d edits while it ran; %llu slot(s) left behind\n",
              static_cast<unsigned long long>(cr->slices_before), static_cast<unsigned long long>(cr->slices_after),
              static_cast<unsigned long long>(cr->merges), during,
              static_cast<unsigned long long>(slots_in_use(*cluster_) - ch->size()));
}

// ---------------------------------------------------------------------------------------------
// Two-phase commit under kill -9: a splice across two groups is paused after its prepare, and
// the client, the participant or the primary is killed there.

class TxCrashTest : public ::testing::Test {
 protected:
  TxCrashTest() : cluster_(dir_.path(), ClusterOptions{2, "256MiB", 3000, 1, {}}) {}

  enum class Victim { CLIENT, PARTICIPANT, PRIMARY };

  void crash(Victim victim) {
    auto c = cluster_.client(small_slices(4096));
    std::string old = random_bytes(4 * 4096, 11);
    auto a = put_bytes(*c, "/f", old);
    ASSERT_TRUE(a.ok());
    auto ch = c->chain(*a);
    ASSERT_TRUE(ch.ok());
    ASSERT_EQ(ch->size(), 4u);
    int primary = static_cast<int>((*ch)[2].meta.loc.group) - 1;
    int participant = static_cast<int>((*ch)[3].meta.loc.group) - 1;
    ASSERT_NE(primary, participant) << "runs of 3: slices 2 and 3 live on different groups";
    // Replace 20 bytes across the boundary of slices 2 and 3 with 5000 bytes.
    const uint64_t off = 3 * 4096 - 10, del = 20;
    std::string data = random_bytes(5000, 12);
    std::string fresh = old;
    fresh.replace(off, del, data);
    std::string local = dir_ / "data.bin";
    { std::ofstream(local, std::ios::binary) << data; }

    ::setenv("MYDFS_SLICE_BYTES", "4096", 1);
    ::setenv("MYDFS_TEST_PAUSE_AFTER_PREPARE_MS", "1000", 1);
    mydfs::testing::Daemon cli(mydfs::testing::binary("MYDFS_CLI_BIN"),
                               {"--tracker", cluster_.tracker(), "splice", "/f", std::to_string(off),
                                std::to_string(del), local},
                               dir_ / "cli.log");
    cli.start();
    ::unsetenv("MYDFS_SLICE_BYTES");
    ::unsetenv("MYDFS_TEST_PAUSE_AFTER_PREPARE_MS");
    auto until = std::chrono::steady_clock::now() + 20s;
    while (cli.log().find("prepared") == std::string::npos && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(10ms);
    ASSERT_NE(cli.log().find("prepared"), std::string::npos) << cli.log();
    EXPECT_GT(cluster_.info(primary)->tx_slots, 0u);
    EXPECT_GT(cluster_.info(participant)->tx_slots, 0u);

    int code = 0;
    switch (victim) {
      case Victim::CLIENT:
        cli.kill9();
        break;
      // The client keeps calling a group that is down (it may only be failing over), so the
      // node comes back while the client still waits.
      case Victim::PARTICIPANT:
        cluster_.storage(participant).kill9();
        std::this_thread::sleep_for(300ms);
        cluster_.start_storage(participant);
        code = cli.wait_exit(40s);
        break;
      case Victim::PRIMARY:
        cluster_.storage(primary).kill9();
        std::this_thread::sleep_for(300ms);
        cluster_.start_storage(primary);
        code = cli.wait_exit(40s);
        break;
    }
    // Each party's recovery (the participants' timeout, on restart too) settles the transaction.
    EXPECT_TRUE(wait_no_transactions(cluster_, 2, 30s)) << "a transaction still holds slots";
    auto c2 = cluster_.client(small_slices(4096));
    std::string now;
    for (int i = 0; i < 100; ++i) {  // a restarted group is usable again after its heartbeat
      auto got = get_bytes(*c2, "/f");
      if (got.ok()) {
        now = *got;
        break;
      }
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(now == old || now == fresh) << "the file is neither entirely old nor entirely new";
    if (victim == Victim::PARTICIPANT) {
      EXPECT_EQ(code, 0) << "the primary decided commit; the participant learns it on restart\n" << cli.log();
      EXPECT_TRUE(now == fresh);
    } else if (victim == Victim::PRIMARY) {
      // Either the client's decision reached the restarted primary first (commit), or a
      // participant's recovery did (abort); the client reports whichever happened.
      if (code == 0) {
        EXPECT_TRUE(now == fresh) << "the client was told the splice happened";
      } else {
        EXPECT_EQ(code, 1) << cli.log();
        EXPECT_NE(cli.log().find("mydfs: cannot splice '/f'"), std::string::npos) << cli.log();
        EXPECT_TRUE(now == old) << "the client was told the splice failed";
      }
    } else {
      EXPECT_TRUE(now == old) << "no decision was recorded: the transaction aborts";
    }
    // And the file still takes edits.
    auto w = c2->write_at("/f", 0, "after");
    ASSERT_TRUE(w.ok()) << w.error().to_string();
    EXPECT_EQ(get_bytes(*c2, "/f")->substr(0, 5), "after");
  }

  mydfs::testing::TempDir dir_;
  Cluster cluster_;
};

TEST_F(TxCrashTest, clientKilledAfterPrepare_aborts) { crash(Victim::CLIENT); }
TEST_F(TxCrashTest, participantKilledAfterPrepare_commitsAndRecovers) { crash(Victim::PARTICIPANT); }
TEST_F(TxCrashTest, primaryKilledAfterPrepare_abortsOnRestart) { crash(Victim::PRIMARY); }

// ---------------------------------------------------------------------------------------------
// Stale chain maps and concurrent writers.

class EditsTest : public ::testing::Test {
 protected:
  EditsTest() : cluster_(dir_.path(), ClusterOptions{3, "512MiB", 10000, 1, {}}) {}
  mydfs::testing::TempDir dir_;
  Cluster cluster_;
};

TEST_F(EditsTest, staleCache_readerSeesOtherClientsEdits_includingTheHead) {
  auto a = cluster_.client(small_slices(4096));
  auto b = cluster_.client(small_slices(4096));
  std::string m = random_bytes(20000, 5);
  ASSERT_TRUE(put_bytes(*a, "/f", m).ok());
  auto read_with = [&](client::Client& c, const Attr& attr) -> std::string {
    std::string out;
    auto total = c.get(attr, [&](uint64_t off, std::span<const std::byte> d) -> Status {
      if (out.size() < off + d.size()) out.resize(off + d.size());
      std::memcpy(out.data() + off, d.data(), d.size());
      return ok_status();
    });
    EXPECT_TRUE(total.ok()) << total.error().to_string();
    out.resize(total.ok() ? *total : 0);
    return out;
  };
  Attr old = *a->stat("/f");
  EXPECT_EQ(read_with(*a, old), m);  // A now caches the chain map
  // B patches a slice in place, splices at the head (a new head slot), appends, truncates;
  // A keeps reading with its old attributes and its cached map.
  std::vector<std::function<Result<Attr>()>> edits = {
      [&] { m.replace(5000, 3, "abc"); return b->write_at("/f", 5000, "abc"); },
      [&] { m.replace(0, 10, "HEAD"); return b->splice("/f", 0, 10, "HEAD"); },
      [&] { m += "tail"; return b->write_at("/f", m.size() - 4, "tail"); },
      [&] { m.resize(9000); return b->truncate("/f", 9000); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    auto r = edits[i]();
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().to_string();
    EXPECT_EQ(read_with(*a, old), m) << "edit " << i;
  }
  EXPECT_FALSE(a->stat("/f")->head == old.head) << "the head moved (and the old one is gone)";
}

TEST_F(EditsTest, concurrentAppendersAndEditors_endInSomeSerialOrder) {
  // Four fixed 1500-byte blocks at the front are overwritten whole by two editors (each write
  // crosses slices, so it is a transaction or a patch); three appenders add self-describing
  // records after them. Every acknowledged record must appear once, whole, in each appender's
  // order, and every block must be exactly one editor's write (never torn).
  constexpr size_t kBlock = 1500, kBlocks = 4;
  auto setup = cluster_.client(small_slices(4096));
  ASSERT_TRUE(put_bytes(*setup, "/shared", std::string(kBlock * kBlocks, '.')).ok());
  auto record = [](int t, int i, size_t len) {
    std::string body(len, static_cast<char>('a' + t));
    return fmt::format("<{}:{}:{}>", t, i, len) + body;
  };
  constexpr int kAppenders = 3, kRecords = 15, kEditors = 2, kEdits = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex mu;
  auto fail = [&](const std::string& why) {
    std::lock_guard g(mu);
    if (failures++ == 0) first_failure = why;
  };
  for (int t = 0; t < kAppenders; ++t)
    threads.emplace_back([&, t] {
      auto c = cluster_.client(small_slices(4096));
      std::mt19937 rng(t);
      for (int i = 0; i < kRecords; ++i) {
        std::string r = record(t, i, 200 + rng() % 3000);
        auto res = c->append("/shared", r.size(), [&](uint64_t off, std::span<std::byte> out) -> Result<size_t> {
          size_t n = std::min<size_t>(out.size(), r.size() - off);
          std::memcpy(out.data(), r.data() + off, n);
          return n;
        });
        if (!res.ok()) fail(res.error().to_string());
      }
    });
  for (int t = 0; t < kEditors; ++t)
    threads.emplace_back([&, t] {
      auto c = cluster_.client(small_slices(4096));
      std::mt19937 rng(100 + t);
      for (int i = 0; i < kEdits; ++i) {
        size_t b = rng() % kBlocks;
        std::string stamp = fmt::format("[{}:{}]", t, i);
        std::string block;
        while (block.size() < kBlock) block += stamp;
        block.resize(kBlock);
        auto res = c->write_at("/shared", b * kBlock, block);
        if (!res.ok()) fail(res.error().to_string());
      }
    });
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0) << first_failure;
  auto all = get_bytes(*setup, "/shared");
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  for (size_t b = 0; b < kBlocks; ++b) {
    std::string blk = all->substr(b * kBlock, kBlock);
    if (blk == std::string(kBlock, '.')) continue;
    auto close = blk.find(']');
    ASSERT_NE(close, std::string::npos) << "block " << b << " is torn";
    std::string stamp = blk.substr(0, close + 1), expect;
    while (expect.size() < kBlock) expect += stamp;
    expect.resize(kBlock);
    EXPECT_EQ(blk, expect) << "block " << b << " mixes two writes";
  }
  std::vector<int> next(kAppenders, 0);
  size_t pos = kBlock * kBlocks;
  while (pos < all->size()) {
    int t = 0, i = 0;
    size_t len = 0;
    ASSERT_EQ(std::sscanf(all->c_str() + pos, "<%d:%d:%zu>", &t, &i, &len), 3) << "garbage at " << pos;
    ASSERT_TRUE(t >= 0 && t < kAppenders);
    EXPECT_EQ(i, next[t]) << "appender " << t << " records out of order or repeated";
    next[t] = i + 1;
    std::string r = record(t, i, len);
    ASSERT_EQ(all->compare(pos, r.size(), r), 0) << "record " << t << ":" << i << " is not whole";
    pos += r.size();
  }
  for (int t = 0; t < kAppenders; ++t) EXPECT_EQ(next[t], kRecords) << "appender " << t << " lost records";
  EXPECT_EQ(setup->stat("/shared")->size, all->size()) << "the published size is the content's";
}

TEST_F(EditsTest, cli_appendWriteAtSpliceTruncate_andErrors) {
  std::string local = dir_ / "in.txt";
  { std::ofstream(local) << "hello world\n"; }
  std::string out;
  ASSERT_EQ(cluster_.cli(fmt::format("append /log {}", local), &out), 0) << out;  // creates it
  ASSERT_EQ(cluster_.cli(fmt::format("append /log {}", local), &out), 0) << out;
  { std::ofstream(dir_ / "w.txt") << "WORLD\n"; }
  ASSERT_EQ(cluster_.cli(fmt::format("write-at /log 6 - < {}", dir_ / "w.txt"), &out), 0) << out;
  ASSERT_EQ(cluster_.cli("splice /log 0 5 - < /dev/null", &out), 0) << out;   // deletes "hello"
  ASSERT_EQ(cluster_.cli("cat /log", &out), 0) << out;
  EXPECT_EQ(out, " WORLD\nhello world\n");
  ASSERT_EQ(cluster_.cli("truncate /log 3", &out), 0) << out;
  ASSERT_EQ(cluster_.cli("truncate /log 1KiB", &out), 0) << out;
  ASSERT_EQ(cluster_.cli("stat /log", &out), 0) << out;
  EXPECT_NE(out.find("Size: 1024"), std::string::npos) << out;
  ASSERT_EQ(cluster_.cli("cat /log | head -c 3", &out), 0) << out;
  EXPECT_EQ(out, " WO");

  EXPECT_EQ(cluster_.cli(fmt::format("splice /log 5000 0 {}", local), &out), 1);
  EXPECT_NE(out.find("mydfs: cannot splice '/log': offset 5000 is past the end of the file"), std::string::npos) << out;
  EXPECT_EQ(cluster_.cli("truncate /log abc", &out), 1);
  EXPECT_NE(out.find("invalid size 'abc'"), std::string::npos) << out;
  ASSERT_EQ(cluster_.cli("mkdir /d", &out), 0);
  EXPECT_EQ(cluster_.cli("truncate /d 0", &out), 1);
  EXPECT_NE(out.find("Is a directory"), std::string::npos) << out;
  EXPECT_EQ(cluster_.cli(fmt::format("write-at /missing 0 {}", local), &out), 1);
  EXPECT_NE(out.find("mydfs: cannot write '/missing': No such file or directory"), std::string::npos) << out;
  EXPECT_EQ(cluster_.cli("append /log /no/such/file", &out), 1);
  EXPECT_NE(out.find("cannot open '/no/such/file'"), std::string::npos) << out;
}

// mydfs compact -r: every file under a directory is compacted (a file in a subdirectory too),
// other files keep their content; without -r a directory is refused.
TEST_F(EditsTest, cli_compactRecursive_everyFileUnderADirectory) {
  auto writer = cluster_.client(small_slices(1000));
  std::string a = random_bytes(20000, 21), b = random_bytes(7000, 22), one = "x";
  ASSERT_TRUE(writer->mkdir("/t", 0755, false).ok());
  ASSERT_TRUE(writer->mkdir("/t/sub", 0755, false).ok());
  ASSERT_TRUE(put_bytes(*writer, "/t/a", a).ok());
  ASSERT_TRUE(put_bytes(*writer, "/t/sub/b", b).ok());
  ASSERT_TRUE(put_bytes(*writer, "/t/sub/one", one).ok());
  std::string out;
  EXPECT_EQ(cluster_.cli("compact /t", &out), 1);
  EXPECT_NE(out.find("mydfs: cannot compact '/t': Is a directory (-r compacts every file under it)"),
            std::string::npos) << out;
  ASSERT_EQ(cluster_.cli("compact -r /t", &out), 0) << out;
  EXPECT_NE(out.find("/t/a: 20 slice(s) -> 1"), std::string::npos) << out;
  EXPECT_NE(out.find("/t/sub/b: 7 slice(s) -> 1"), std::string::npos) << out;
  EXPECT_EQ(out.find("/t/sub/one:"), std::string::npos) << "nothing merged, no line: " << out;
  EXPECT_NE(out.find("/t: 3 file(s), 28 slice(s) -> 3"), std::string::npos) << out;
  for (auto [path, want] : {std::pair{"/t/a", &a}, {"/t/sub/b", &b}, {"/t/sub/one", &one}}) {
    auto st = writer->stat(path);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(writer->chain(*st)->size(), 1u) << path;
    EXPECT_EQ(*get_bytes(*writer, path), *want) << path;
  }
}

}  // namespace
}  // namespace mydfs
