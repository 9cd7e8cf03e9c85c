// mydfs-tracker as a real process: random namespace operations while it is kill -9ed, heartbeats
// from real storage nodes, and compare-and-set commits from two clients.
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"
#include "../support/ns_op.h"
#include "../support/temp_dir.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;
using namespace mydfs::proto;
using mydfs::testing::Daemon;

class TrackerDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = mydfs::testing::free_port();
    http_ = mydfs::testing::free_port();
  }
  std::unique_ptr<Daemon> make(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data", dir_ / "tracker", "--listen", fmt::format("127.0.0.1:{}", port_),
                                     "--http", fmt::format("127.0.0.1:{}", http_), "--checkpoint-ops", "300"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Daemon>(mydfs::testing::binary("MYDFS_TRACKER_BIN"), args, dir_ / "tracker.log");
  }
  std::unique_ptr<Daemon> start(std::vector<std::string> extra = {}) {
    auto d = make(std::move(extra));
    d->start();
    EXPECT_TRUE(mydfs::testing::wait_for_port(port_, 20s)) << d->log();
    return d;
  }
  static NsOp op(OpType t, uint64_t parent, std::string name) { return mydfs::testing::ns_op(t, parent, std::move(name)); }

  mydfs::testing::TempDir dir_;
  uint16_t port_ = 0, http_ = 0;
};

// The namespace as paths -> (type, mode), read back through the tracker's own RPCs.
using Tree = std::map<std::string, std::pair<FileType, uint32_t>>;

Result<Tree> read_tree(SyncClient& c) {
  Tree t;
  std::vector<std::pair<std::string, uint64_t>> dirs = {{"", kRootIno}};
  while (!dirs.empty()) {
    auto [path, ino] = dirs.back();
    dirs.pop_back();
    uint64_t cookie = 0;
    for (bool eof = false; !eof;) {
      auto r = c.call(NsReadReq{NsReadOp::READDIR, ino, "", cookie, 100});
      if (!r.ok()) return r.take_error();
      if (r->err) return make_error(Code::INTERNAL, fmt::format("readdir errno {}", r->err));
      eof = r->eof;
      for (auto& e : r->entries) {
        cookie = e.cookie;
        if (e.name == "." || e.name == "..") continue;
        auto a = c.call(NsReadReq{NsReadOp::GETATTR, e.ino, "", 0, 0});
        if (!a.ok()) return a.take_error();
        t[path + "/" + e.name] = {a->attr.type, a->attr.mode};
        if (e.type == FileType::DIR) dirs.emplace_back(path + "/" + e.name, e.ino);
      }
    }
  }
  return t;
}

// The tracker answers a change once it is written to its edit log and fsyncs later
// (--sync-delay-ms): here so late that no fsync happens between the kills, so what survives them
// is what the page cache kept, which is every answered change.
TEST_F(TrackerDaemon, killNineDuringRandomOps_namespaceEqualsAcknowledgedModel) {
  const std::vector<std::string> late_sync = {"--sync-delay-ms", "10000"};
  auto d = start(late_sync);
  std::mutex mu;
  std::atomic<bool> running{true};
  std::atomic<int> kills{0};
  std::atomic<int> progress{0};
  // Every ~400 operations, kill -9 after a random few milliseconds (inside an operation, a group
  // commit or an image write), then restart at once.
  std::thread killer([&] {
    std::mt19937 rng(99);
    while (running && kills < 5) {
      int target = 400 * (kills + 1);
      while (running && progress < target) std::this_thread::sleep_for(1ms);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
      std::lock_guard g(mu);
      if (!running) break;
      d->kill9();
      ++kills;
      d = make(late_sync);
      d->start();
    }
  });

  ClientOptions co;
  co.call_timeout = 3s;
  co.connect_timeout = 500ms;
  SyncClient c("127.0.0.1", port_, co);
  // The model: path -> inode id, type and mode, from acknowledged operations only.
  struct Node { uint64_t ino; FileType type; uint32_t mode; };
  std::map<std::string, Node> model;
  auto dir_of = [](const std::string& p) { return p.substr(0, p.rfind('/')); };
  auto base_of = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
  auto ino_of_dir = [&](const std::string& p) -> uint64_t { return p.empty() ? kRootIno : model.at(p).ino; };
  auto children = [&](const std::string& p) {
    int n = 0;
    for (auto& [k, v] : model)
      if (dir_of(k) == p) ++n;
    return n;
  };
  // After a failed call nobody knows whether the op happened: ask the tracker (once it is back)
  // what is at that path and believe it.
  auto resolve = [&](const std::string& path) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      std::string parent = dir_of(path);
      if (!parent.empty() && !model.count(parent)) { model.erase(path); return; }
      auto r = c.call(NsReadReq{NsReadOp::LOOKUP, ino_of_dir(parent), base_of(path), 0, 0});
      if (!r.ok()) { std::this_thread::sleep_for(20ms); continue; }
      if (r->err == ENOENT) model.erase(path);
      else model[path] = Node{r->attr.ino, r->attr.type, r->attr.mode};
      return;
    }
    FAIL() << "tracker did not come back";
  };

  std::mt19937 rng(2024);
  int acked = 0, unknown = 0;
  const int kOps = 2500;
  for (int i = 0; i < kOps; ++i) {
    progress = i;
    std::vector<std::string> dirs = {""};
    std::vector<std::string> files;
    for (auto& [p, n] : model) (n.type == FileType::DIR ? dirs : files).push_back(p);
    std::string dir = dirs[rng() % dirs.size()];
    std::string name = fmt::format("n{}", rng() % 12);
    std::string path = dir + "/" + name;
    int kind = static_cast<int>(rng() % 100);
    NsOp o;
    int expect = 0;
    std::vector<std::string> touched = {path};
    if (kind < 30) {
      o = op(OpType::CREATE, ino_of_dir(dir), name);
      o.flags = 1;  // exclusive
      expect = model.count(path) ? EEXIST : 0;
    } else if (kind < 45) {
      if (std::count(dir.begin(), dir.end(), '/') >= 2) continue;
      o = op(OpType::MKDIR, ino_of_dir(dir), name);
      o.mode = 0755;
      expect = model.count(path) ? EEXIST : 0;
    } else if (kind < 65) {
      if (files.empty()) continue;
      path = files[rng() % files.size()];
      touched = {path};
      o = op(OpType::UNLINK, ino_of_dir(dir_of(path)), base_of(path));
    } else if (kind < 75) {
      if (dirs.size() < 2) continue;
      path = dirs[1 + rng() % (dirs.size() - 1)];
      touched = {path};
      o = op(OpType::RMDIR, ino_of_dir(dir_of(path)), base_of(path));
      expect = children(path) ? ENOTEMPTY : 0;
    } else if (kind < 90) {
      if (files.empty()) continue;
      std::string from = files[rng() % files.size()];
      if (model.count(path) && model.at(path).type == FileType::DIR) continue;
      o = op(OpType::RENAME, ino_of_dir(dir_of(from)), base_of(from));
      o.parent2 = ino_of_dir(dir);
      o.name2 = name;
      touched = {from, path};
    } else {
      if (files.empty()) continue;
      path = files[rng() % files.size()];
      touched = {path};
      o = op(OpType::SETATTR, model.at(path).ino, "");
      o.flags = SET_MODE;
      o.mode = 0600 + static_cast<uint32_t>(rng() % 64);
    }
    auto r = c.call(NsWriteReq{o});
    if (!r.ok()) {
      // Outcome unknown: learn it from the tracker.
      ++unknown;
      for (auto& p : touched) resolve(p);
      // A directory that vanished takes nothing with it (rmdir only removes empty ones).
      continue;
    }
    ++acked;
    ASSERT_EQ(r->err, expect) << "op " << i << " kind " << kind << " on " << path;
    if (r->err) continue;
    switch (o.type) {
      case OpType::CREATE:
      case OpType::MKDIR: model[path] = Node{r->attr.ino, r->attr.type, r->attr.mode}; break;
      case OpType::UNLINK:
      case OpType::RMDIR: model.erase(path); break;
      case OpType::RENAME: {
        Node n = model.at(touched[0]);
        model.erase(touched[0]);
        model[touched[1]] = n;
        break;
      }
      case OpType::SETATTR: model[path].mode = o.mode; break;
      default: break;
    }
  }
  running = false;
  killer.join();
  EXPECT_EQ(kills.load(), 5);
  EXPECT_GT(acked, kOps / 2);
  std::cout << "[ info ] " << acked << " acknowledged ops, " << unknown << " with unknown outcome, " << kills
            << " kills\n";

  // One last kill, then the whole namespace must equal the model.
  {
    std::lock_guard g(mu);
    d->kill9();
    d = start();
  }
  SyncClient v("127.0.0.1", port_, co);
  auto tree = read_tree(v);
  ASSERT_TRUE(tree.ok()) << tree.error().to_string();
  Tree want;
  for (auto& [p, n] : model) want[p] = {n.type, n.mode};
  EXPECT_EQ(tree->size(), want.size());
  for (auto& [p, tm] : want) {
    auto it = tree->find(p);
    if (it == tree->end()) {
      ADD_FAILURE() << "acknowledged " << p << " is missing";
      continue;
    }
    EXPECT_EQ(static_cast<int>(it->second.first), static_cast<int>(tm.first)) << p;
    EXPECT_EQ(it->second.second, tm.second) << p;
  }
  for (auto& [p, tm] : *tree) EXPECT_TRUE(want.count(p)) << p << " exists but was never acknowledged";
  EXPECT_EQ(d->terminate(), 0) << d->log();
}

// NS_READ SYNC: answered once what was answered before is fsynced; until then (the longest delay
// here: 10 s) the changes are answered and visible but the log is not fsynced.
TEST_F(TrackerDaemon, syncRequest_fsyncsWhatWasAnswered) {
  auto d = start({"--sync-delay-ms", "10000"});
  SyncClient c("127.0.0.1", port_);
  auto syncs = [&] {
    std::string text = mydfs::testing::http_get(http_, "/metrics");
    auto at = text.find("\nmydfs_tracker_edit_syncs_total ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + 32));
  };
  double before = syncs();
  ASSERT_GE(before, 0);
  for (int i = 0; i < 5; ++i) {
    auto r = c.call(NsWriteReq{op(OpType::MKDIR, kRootIno, fmt::format("d{}", i))});
    ASSERT_TRUE(r.ok() && r->err == 0);
  }
  auto seen = c.call(NsReadReq{NsReadOp::LOOKUP, kRootIno, "d4", 0, 0});
  ASSERT_TRUE(seen.ok() && seen->err == 0) << "answered changes are visible before their fsync";
  EXPECT_EQ(syncs(), before) << "no fsync yet";
  auto s = c.call(NsReadReq{NsReadOp::SYNC, 0, "", 0, 0});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(syncs(), before + 1);
}

TEST_F(TrackerDaemon, commitFile_casConflictBetweenTwoClients) {
  auto d = start();
  SyncClient a("127.0.0.1", port_), b("127.0.0.1", port_);
  auto f = a.call(NsWriteReq{op(OpType::CREATE, kRootIno, "shared")});
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->err, 0);
  uint64_t ino = f->attr.ino;
  // Both read version 0, both try to commit a new head.
  NsOp ca = op(OpType::COMMIT_FILE, ino, "");
  ca.expect_version = 0;
  ca.head = Location{1, 10, 1};
  ca.size = 100;
  NsOp cb = ca;
  cb.head = Location{2, 20, 1};
  cb.size = 200;
  auto ra = a.call(NsWriteReq{ca});
  auto rb = b.call(NsWriteReq{cb});
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->err, 0);
  EXPECT_EQ(rb->err, ESTALE) << "the second commit must not silently replace the first";
  auto g = b.call(NsReadReq{NsReadOp::GETATTR, ino, "", 0, 0});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->attr.head, (Location{1, 10, 1}));
  EXPECT_EQ(g->attr.size, 100u);
  EXPECT_EQ(g->attr.version, 1u);
  cb.expect_version = 1;  // after re-reading, b may commit
  auto rb2 = b.call(NsWriteReq{cb});
  ASSERT_TRUE(rb2.ok());
  EXPECT_EQ(rb2->err, 0);
  ASSERT_EQ(rb2->released.size(), 1u);
  EXPECT_EQ(rb2->released[0], (Location{1, 10, 1}));
}

TEST_F(TrackerDaemon, heartbeats_memberDownAfterMissedThenUpAgain_andPlacement) {
  uint16_t s1 = mydfs::testing::free_port(), s2 = mydfs::testing::free_port();
  auto d = start({"--heartbeat-ms", "100", "--group", fmt::format("1=127.0.0.1:{}", s1), "--group",
                  fmt::format("2=127.0.0.1:{}", s2)});
  auto storage = [&](int i, uint16_t port) {
    return std::make_unique<Daemon>(
        mydfs::testing::binary("MYDFS_STORAGE_BIN"),
        std::vector<std::string>{"--data", dir_ / fmt::format("s{}", i), "--listen", fmt::format("127.0.0.1:{}", port),
                                 "--http", "127.0.0.1:0", "--node-id", std::to_string(i), "--group-id", std::to_string(i),
                                 "--capacity", i == 1 ? "64MiB" : "32MiB", "--tracker", fmt::format("127.0.0.1:{}", port_)},
        dir_ / fmt::format("s{}.log", i));
  };
  auto n1 = storage(1, s1), n2 = storage(2, s2);
  n1->start();
  n2->start();
  SyncClient c("127.0.0.1", port_);
  auto status = [&] {
    auto r = c.call(ClusterStatusReq{});
    EXPECT_TRUE(r.ok());
    return r.ok() ? nlohmann::json::parse(r->json) : nlohmann::json{};
  };
  auto up = [&](const nlohmann::json& j, int g) { return j["groups"][g - 1]["members"][0]["up"].get<bool>(); };
  auto wait_for = [&](auto pred) {
    for (int i = 0; i < 100; ++i) {
      if (pred(status())) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  ASSERT_TRUE(wait_for([&](const nlohmann::json& j) { return up(j, 1) && up(j, 2); })) << status().dump();
  // Placement: 7 slices -> 3 + 3 + 1, the first run on the group with most free space.
  auto f = c.call(NsWriteReq{op(OpType::CREATE, kRootIno, "big")});
  ASSERT_TRUE(f.ok());
  auto a = c.call(AllocateReq{f->attr.ino, 7});
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->err, 0);
  ASSERT_EQ(a->runs.size(), 3u);
  EXPECT_EQ(a->runs[0].count, 3u);
  EXPECT_EQ(a->runs[1].count, 3u);
  EXPECT_EQ(a->runs[2].count, 1u);
  EXPECT_EQ(a->runs[0].group, 1u) << "group 1 has 16 free slots, group 2 has 8";
  EXPECT_EQ(a->runs[0].leader, fmt::format("127.0.0.1:{}", s1));
  // A directory's user.mydfs.run sets K for the files created in it.
  auto dir = c.call(NsWriteReq{op(OpType::MKDIR, kRootIno, "pairs")});
  ASSERT_TRUE(dir.ok());
  NsOp x = op(OpType::SETXATTR, dir->attr.ino, "user.mydfs.run");
  x.name2 = "2";
  ASSERT_EQ(c.call(NsWriteReq{x})->err, 0);
  auto pf = c.call(NsWriteReq{op(OpType::CREATE, dir->attr.ino, "f")});
  ASSERT_TRUE(pf.ok());
  auto ap = c.call(AllocateReq{pf->attr.ino, 5});
  ASSERT_TRUE(ap.ok());
  ASSERT_EQ(ap->runs.size(), 3u);
  EXPECT_EQ(ap->runs[0].count, 2u);
  EXPECT_EQ(ap->runs[1].count, 2u);
  EXPECT_EQ(ap->runs[2].count, 1u);
  // kill -9 one node: down after 3 missed heartbeats (300 ms), and placement skips it.
  n2->kill9();
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_for([&](const nlohmann::json& j) { return !up(j, 2); }));
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 2s);
  EXPECT_TRUE(up(status(), 1));
  auto a2 = c.call(AllocateReq{f->attr.ino, 5});
  ASSERT_TRUE(a2.ok());
  ASSERT_EQ(a2->err, 0);
  for (auto& r : a2->runs) EXPECT_EQ(r.group, 1u);
  // Too much for what is left up: ENOSPC.
  auto a3 = c.call(AllocateReq{f->attr.ino, 100});
  ASSERT_TRUE(a3.ok());
  EXPECT_EQ(a3->err, ENOSPC);
  // Back up with its next heartbeat.
  n2 = storage(2, s2);
  n2->start();
  ASSERT_TRUE(wait_for([&](const nlohmann::json& j) { return up(j, 2); }));
  auto events = status()["events"].dump();
  EXPECT_NE(events.find("is down"), std::string::npos) << events;
  EXPECT_NE(events.find("is up"), std::string::npos);
}

TEST_F(TrackerDaemon, sigterm_writesImage_restartReplaysNothing) {
  auto d = start();
  {
    SyncClient c("127.0.0.1", port_);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(c.call(NsWriteReq{op(OpType::MKDIR, kRootIno, fmt::format("d{}", i))})->err, 0);
  }
  EXPECT_EQ(d->terminate(), 0) << d->log();
  EXPECT_NE(d->log().find("wrote image"), std::string::npos);
  d = start();
  EXPECT_NE(d->log().find("replayed 0 edit(s)"), std::string::npos) << d->log();
  SyncClient c("127.0.0.1", port_);
  auto l = c.call(NsReadReq{NsReadOp::LOOKUP, kRootIno, "d19", 0, 0});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->err, 0);
}

TEST_F(TrackerDaemon, cliAdminStatus_againstLiveTracker) {
  auto d = start({"--group", "3=127.0.0.1:7999"});
  std::string out = dir_ / "cli.out";
  std::string cmd = fmt::format("{} --tracker 127.0.0.1:{} admin status > {} 2>&1", mydfs::testing::binary("MYDFS_CLI_BIN"),
                                port_, out);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(out);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("group 3"), std::string::npos) << text;
  EXPECT_NE(text.find("127.0.0.1:7999"), std::string::npos) << text;
  EXPECT_NE(text.find("DOWN"), std::string::npos) << "never heard from: down\n" << text;
}

TEST_F(TrackerDaemon, addGroupAtRunTime_persists) {
  auto d = start();
  {
    SyncClient c("127.0.0.1", port_);
    ASSERT_TRUE(c.call(AddGroupReq{7, {"127.0.0.1:7700", "127.0.0.1:7701", "127.0.0.1:7702"}}).ok());
    EXPECT_EQ(c.call(AddGroupReq{7, {"127.0.0.1:7800"}}).code(), Code::CONFLICT);
    EXPECT_EQ(c.call(AddGroupReq{8, {"nonsense"}}).code(), Code::BAD_REQUEST);
  }
  d->kill9();
  d = start();
  SyncClient c("127.0.0.1", port_);
  auto r = c.call(ClusterStatusReq{});
  ASSERT_TRUE(r.ok());
  auto j = nlohmann::json::parse(r->json);
  ASSERT_EQ(j["groups"].size(), 1u);
  EXPECT_EQ(j["groups"][0]["id"], 7);
  EXPECT_EQ(j["groups"][0]["members"].size(), 3u);
}

}  // namespace
}  // namespace mydfs
