// TrackerState: durability of namespace changes through the edit log and fsimage.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/checksum.h"
#include "tracker/state.h"
#include "../support/ns_op.h"
#include "../support/temp_dir.h"

namespace mydfs::tracker {
namespace {

namespace fs = std::filesystem;

class StateTest : public ::testing::Test {
 protected:
  std::unique_ptr<TrackerState> open(const std::string& dir, uint64_t checkpoint_ops = 1000000,
                                     std::chrono::milliseconds sync_delay = std::chrono::milliseconds(50)) {
    StateOptions o;
    o.dir = dir;
    o.checkpoint_ops = checkpoint_ops;
    o.sync_delay = sync_delay;
    auto s = TrackerState::open(o, &metrics_);
    EXPECT_TRUE(s.ok()) << s.error().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  static std::pair<int, OpResult> run(TrackerState& s, NsOp op) {
    std::promise<std::pair<int, OpResult>> p;
    s.submit(op, [&](int e, OpResult r) { p.set_value({e, std::move(r)}); });
    return p.get_future().get();
  }
  static NsOp op(OpType t, uint64_t parent, std::string name) { return mydfs::testing::ns_op(t, parent, std::move(name)); }
  // A readable digest of the namespace: inode count, next id, and every root entry.
  static std::string image_of(TrackerState& s) {
    return s.read([](const Namespace& ns, const GroupRegistry&) {
      std::string out = fmt::format("inodes={} next={} files={}:", ns.inode_count(), ns.next_ino(), ns.file_count());
      std::vector<std::string> names;
      uint64_t cookie = 0;
      for (bool eof = false; !eof;) {
        std::vector<DirEntry> page;
        if (ns.readdir(kRootIno, cookie, 1000, &page, &eof) != 0) break;
        for (auto& e : page) {
          names.push_back(fmt::format("{}={}", e.name, e.ino));
          cookie = e.cookie;
        }
      }
      std::sort(names.begin(), names.end());
      for (auto& n : names) out += " " + n;
      Writer w;
      ns.encode(w);
      return out + fmt::format(" #{:x}", xxh64(w.data().data(), w.size()));
    });
  }
  // What kill -9 leaves: the directory as it is on disk while the tracker runs.
  static void crash_copy(const std::string& from, const std::string& to) { fs::copy(from, to, fs::copy_options::recursive); }

  Metrics metrics_;
  mydfs::testing::TempDir dir_;
};

TEST_F(StateTest, changesSurviveRestart) {
  std::string expect;
  {
    auto s = open(dir_ / "t");
    auto [e1, d] = run(*s, op(OpType::MKDIR, kRootIno, "d"));
    ASSERT_EQ(e1, 0);
    ASSERT_EQ(run(*s, op(OpType::CREATE, d.attr.ino, "f")).first, 0);
    EXPECT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "d")).first, EEXIST);
    expect = image_of(*s);
  }
  auto s = open(dir_ / "t");
  EXPECT_EQ(image_of(*s), expect);
}

// The fsync of the edit log: with a delay, changes are answered once written and fsynced
// together later (or when sync() asks); with none, each batch is fsynced before its answer.
TEST_F(StateTest, syncDelay_answersBeforeTheFsync_syncWaitsForIt) {
  auto syncs = [&] { return metrics_.value("mydfs_tracker_edit_syncs_total"); };
  {
    auto s = open(dir_ / "late", 1000000, std::chrono::milliseconds(60000));
    double before = syncs();
    for (int i = 0; i < 20; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, fmt::format("d{}", i))).first, 0);
    EXPECT_EQ(syncs(), before) << "20 changes answered, none fsynced yet (the delay is a minute)";
    std::promise<Status> p;
    s->sync([&](Status st) { p.set_value(std::move(st)); });
    ASSERT_TRUE(p.get_future().get().ok());
    EXPECT_EQ(syncs(), before + 1) << "sync() fsyncs what was answered, once";
    std::promise<Status> again;
    s->sync([&](Status st) { again.set_value(std::move(st)); });
    ASSERT_TRUE(again.get_future().get().ok());
    EXPECT_EQ(syncs(), before + 1) << "nothing new: no second fsync";
  }
  {
    auto s = open(dir_ / "soon", 1000000, std::chrono::milliseconds(20));
    double before = syncs();
    ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "x")).first, 0);
    for (int i = 0; i < 100 && syncs() == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(syncs(), before + 1) << "fsynced in the background within the delay";
  }
  auto s = open(dir_ / "now", 1000000, std::chrono::milliseconds(0));
  double before = syncs();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, fmt::format("d{}", i))).first, 0);
  EXPECT_EQ(syncs(), before + 5) << "delay 0: every answer waits for its fsync";
}

TEST_F(StateTest, crashCopy_everyAcknowledgedChangeThere) {
  std::string expect;
  {
    auto s = open(dir_ / "t");
    for (int i = 0; i < 200; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "d" + std::to_string(i))).first, 0);
    expect = image_of(*s);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  auto s = open(dir_ / "crash");
  EXPECT_EQ(image_of(*s), expect);
  EXPECT_GT(s->applied_index(), 199u);
}

TEST_F(StateTest, concurrentSubmitters_shareSyncs) {
  auto s = open(dir_ / "t", 1000000, std::chrono::milliseconds(0));  // an fsync per batch
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i)
        if (run(*s, op(OpType::CREATE, kRootIno, fmt::format("f{}-{}", t, i))).first == 0) ok++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 400);
  EXPECT_LT(metrics_.value("mydfs_tracker_edit_syncs_total"), 400) << "group commit shares fsyncs";
  EXPECT_EQ(s->read([](const Namespace& ns, const GroupRegistry&) { return ns.file_count(); }), 400u);
}

TEST_F(StateTest, checkpoints_cutTheLog_andRecoveryUsesImagePlusLog) {
  std::string expect;
  {
    auto s = open(dir_ / "t", 50);
    for (int i = 0; i < 180; ++i) ASSERT_EQ(run(*s, op(OpType::CREATE, kRootIno, "f" + std::to_string(i))).first, 0);
    EXPECT_GE(metrics_.value("mydfs_tracker_checkpoints_total"), 3);
    EXPECT_GT(s->image_index(), 100u);
    expect = image_of(*s);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  auto s = open(dir_ / "crash");
  EXPECT_EQ(image_of(*s), expect);
}

TEST_F(StateTest, tornLastRecord_cut) {
  std::string expect;
  {
    auto s = open(dir_ / "t");
    for (int i = 0; i < 5; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "d" + std::to_string(i))).first, 0);
    expect = image_of(*s);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  std::string seg;
  for (auto& e : fs::directory_iterator(dir_ / "crash/edits")) seg = e.path().string();
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    f << std::string("\x30\x00\x00\x00\x01\x00\x00\x00garbage", 15);  // half a record
  }
  auto s = open(dir_ / "crash");
  EXPECT_EQ(image_of(*s), expect);
  // And it goes on working.
  EXPECT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "after")).first, 0);
}

TEST_F(StateTest, corruptMiddleRecord_refusesToStart) {
  {
    auto s = open(dir_ / "t");
    for (int i = 0; i < 10; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "d" + std::to_string(i))).first, 0);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  std::string seg;
  for (auto& e : fs::directory_iterator(dir_ / "crash/edits")) seg = e.path().string();
  int fd = ::open(seg.c_str(), O_RDWR);
  char c;
  ASSERT_EQ(pread(fd, &c, 1, 40), 1);
  c ^= 0x55;
  ASSERT_EQ(pwrite(fd, &c, 1, 40), 1);
  ::close(fd);
  StateOptions o;
  o.dir = dir_ / "crash";
  auto s = TrackerState::open(o, &metrics_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::CORRUPT);
  EXPECT_NE(s.error().message.find("byte"), std::string::npos) << s.error().message;
}

TEST_F(StateTest, imageInterruptedMidWrite_previousImageAndLogUsed) {
  std::string expect;
  {
    auto s = open(dir_ / "t");
    for (int i = 0; i < 20; ++i) ASSERT_EQ(run(*s, op(OpType::CREATE, kRootIno, "a" + std::to_string(i))).first, 0);
    ASSERT_TRUE(s->checkpoint().ok());
    for (int i = 0; i < 20; ++i) ASSERT_EQ(run(*s, op(OpType::CREATE, kRootIno, "b" + std::to_string(i))).first, 0);
    expect = image_of(*s);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  // The crash came while the next image was being written: a partial temp file is left.
  {
    std::ofstream f(dir_ / "crash/fsimage-00000000000000ff.tmp", std::ios::binary);
    f << "MDFSIMG1 partial";
  }
  // And a final-named image that is damaged is skipped too (older image + log used).
  {
    std::ofstream f(dir_ / "crash/fsimage-0000000000000015", std::ios::binary);
    f << "MDFSIMG1 not really an image, checksum will not match";
  }
  auto s = open(dir_ / "crash");
  EXPECT_EQ(image_of(*s), expect);
}

TEST_F(StateTest, onlyImageDamaged_refusesToStartEmpty) {
  {
    auto s = open(dir_ / "t");
    for (int i = 0; i < 5; ++i) ASSERT_EQ(run(*s, op(OpType::MKDIR, kRootIno, "d" + std::to_string(i))).first, 0);
  }  // stop() wrote an image and cut the log
  std::string image;
  for (auto& e : fs::directory_iterator(dir_ / "t"))
    if (e.path().filename().string().rfind("fsimage-", 0) == 0) image = e.path().string();
  ASSERT_FALSE(image.empty());
  {
    std::fstream f(image, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  StateOptions o;
  o.dir = dir_ / "t";
  auto s = TrackerState::open(o, &metrics_);
  ASSERT_FALSE(s.ok()) << "a damaged only image must not turn into an empty namespace";
  EXPECT_NE(s.error().message.find("no fsimage"), std::string::npos) << s.error().message;
}

TEST_F(StateTest, addGroup_loggedAndReplayed) {
  {
    auto s = open(dir_ / "t");
    std::promise<Status> p;
    s->add_group(1, {"127.0.0.1:7100"}, [&](Status st) { p.set_value(std::move(st)); });
    ASSERT_TRUE(p.get_future().get().ok());
    std::promise<Status> p2;
    s->add_group(1, {"127.0.0.1:7101"}, [&](Status st) { p2.set_value(std::move(st)); });
    EXPECT_EQ(p2.get_future().get().code(), Code::CONFLICT);
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  auto s = open(dir_ / "crash");
  auto members = s->read([](const Namespace&, const GroupRegistry& g) { return g.members(1); });
  EXPECT_EQ(members, (std::vector<std::string>{"127.0.0.1:7100"}));
}

TEST_F(StateTest, replaceMember_loggedAndReplayed) {
  {
    auto s = open(dir_ / "t");
    std::promise<Status> p;
    s->add_group(1, {"127.0.0.1:7100", "127.0.0.1:7101"}, [&](Status st) { p.set_value(std::move(st)); });
    ASSERT_TRUE(p.get_future().get().ok());
    std::promise<Status> p2;
    s->replace_member(1, "127.0.0.1:7101", "127.0.0.1:7109", [&](Status st) { p2.set_value(std::move(st)); });
    ASSERT_TRUE(p2.get_future().get().ok());
    std::promise<Status> p3;
    s->replace_member(1, "127.0.0.1:7101", "127.0.0.1:7108", [&](Status st) { p3.set_value(std::move(st)); });
    EXPECT_EQ(p3.get_future().get().code(), Code::NOT_FOUND) << "a refused change is not logged";
    crash_copy(dir_ / "t", dir_ / "crash");
  }
  auto s = open(dir_ / "crash");
  auto members = s->read([](const Namespace&, const GroupRegistry& g) { return g.members(1); });
  EXPECT_EQ(members, (std::vector<std::string>{"127.0.0.1:7100", "127.0.0.1:7109"}));
}

}  // namespace
}  // namespace mydfs::tracker
