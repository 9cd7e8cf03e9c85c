// The FUSE mount as users meet it: a real cluster (one Raft group of three), the real `mydfs
// mount` process, and ordinary programs (cp, diff, tar, git) on the mount. Every mount is
// unmounted and its process stopped by PID when the test ends, also when it fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cluster.h"
#include "posix_model.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using mydfs::testing::Cluster;
using mydfs::testing::ClusterOptions;
using mydfs::testing::Daemon;
namespace fs = std::filesystem;

ClusterOptions group_of_three() {
  ClusterOptions o;
  o.groups = 1;
  o.replicas = 3;
  o.capacity = "16GiB";
  return o;
}

bool is_mounted(const fs::path& dir) {
  std::ifstream m("/proc/mounts");
  std::string dev, at, type, rest;
  while (m >> dev >> at >> type && std::getline(m, rest))
    if (at == dir.string() && type == "fuse.mydfs") return true;
  return false;
}

// Runs a shell command; returns its exit status, its output in *out.
int sh(const std::string& cmd, std::string* out = nullptr) { return mydfs::testing::run_shell(cmd + " 2>&1", out); }

// `mydfs mount` in the foreground, as a daemon of the test.
class Mount {
 public:
  Mount(const Cluster& c, fs::path dir, const fs::path& log, const std::string& options = "attr_timeout=0,entry_timeout=0")
      : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    d_ = std::make_unique<Daemon>(mydfs::testing::binary("MYDFS_CLI_BIN"),
                                  std::vector<std::string>{"mount", c.tracker(), dir_.string(), "-f", "-o", options},
                                  log.string());
    d_->start();
    for (int i = 0; i < 200 && !is_mounted(dir_); ++i) std::this_thread::sleep_for(50ms);
    if (!is_mounted(dir_)) throw std::runtime_error("the mount did not come up: " + d_->log());
  }
  ~Mount() { unmount(); }
  void unmount() {
    if (is_mounted(dir_) && sh("fusermount3 -u " + dir_.string()) != 0) sh("fusermount3 -uz " + dir_.string());
    if (d_->running()) d_->terminate();
  }
  const fs::path& dir() const { return dir_; }
  std::string log() const { return d_->log(); }

 private:
  fs::path dir_;
  std::unique_ptr<Daemon> d_;
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << data;
}

class FuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Other users (the permission test) must be able to reach the mount point.
    fs::permissions(root(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    c_ = std::make_unique<Cluster>(root(), options());
    m_ = std::make_unique<Mount>(*c_, root() / "mnt", root() / "mount.log");
  }
  void TearDown() override {
    if (HasFailure() && m_) fmt::print("mount log:\n{}\n", m_->log());
    m_.reset();
    c_.reset();
  }
  virtual ClusterOptions options() const { return group_of_three(); }
  fs::path mnt() const { return m_->dir(); }
  // Bytes the storage nodes' data directories take on disk (as du counts them).
  uint64_t data_bytes() const {
    uint64_t n = 0;
    for (int i = 0; i < c_->storage_count(); ++i)
      for (const auto& e : fs::recursive_directory_iterator(c_->storage_dir(i))) {
        struct stat st {};
        if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) n += uint64_t(st.st_blocks) * 512;
      }
    return n;
  }
  // Runs the POSIX model in a new subdirectory NAME of the mount against a new local one.
  std::string model(const std::string& name, const mydfs::testing::ModelOptions& o) {
    fs::path sub = mnt() / name, ref = root() / ("ref-" + name);
    fs::create_directories(sub);
    fs::create_directories(ref);
    return mydfs::testing::run_posix_model(sub, ref, o);
  }
  fs::path root() const { return fs::path(dir_.path()); }
  mydfs::testing::TempDir dir_;
  std::unique_ptr<Cluster> c_;
  std::unique_ptr<Mount> m_;
};

TEST_F(FuseTest, randomOperations_matchALocalDirectory) {
  for (uint64_t seed : {1, 2, 3}) {
    mydfs::testing::ModelOptions o;
    o.seed = seed;
    o.steps = 120;
    o.max_files = 4;
    o.max_size = 1 << 20;
    EXPECT_EQ(model(fmt::format("model{}", seed), o), "") << "seed " << seed;
  }
}

// Longer sequences: 2 seeds in the suite; the long run is MYDFS_FUSE_MODEL_SEEDS=N (e.g. 50) seeds
// from MYDFS_FUSE_MODEL_FIRST (default 1000); to replay one seed, FIRST=S and SEEDS=1
// (build/tests/fuse_test --gtest_filter='*longerSequences*' with the MYDFS_*_BIN variables that
// meson test sets).
TEST_F(FuseTest, randomOperations_longerSequences) {
  const char* n_env = std::getenv("MYDFS_FUSE_MODEL_SEEDS");
  const char* first_env = std::getenv("MYDFS_FUSE_MODEL_FIRST");
  uint64_t n = n_env ? std::strtoull(n_env, nullptr, 10) : 2;
  uint64_t first = first_env ? std::strtoull(first_env, nullptr, 10) : 1000;
  for (uint64_t seed = first; seed < first + n; ++seed) {
    mydfs::testing::ModelOptions o;
    o.seed = seed;
    o.steps = 400;
    o.max_size = seed % 4 == 0 ? 9 << 20 : 1 << 20;
    std::string name = fmt::format("long{}", seed);
    ASSERT_EQ(model(name, o), "") << "seed " << seed;
    fs::remove_all(mnt() / name);
  }
}

TEST_F(FuseTest, randomOperations_acrossSliceBoundaries) {
  mydfs::testing::ModelOptions o;
  o.seed = 11;
  o.steps = 30;
  o.max_files = 2;
  o.max_size = 9 << 20;  // files of more than two 4 MiB slices
  EXPECT_EQ(model("big", o), "");
}

// A wrong tracker address is an error at mount time, not a dead mount.
TEST_F(FuseTest, mountOfUnreachableCluster_failsClearly) {
  fs::path at = root() / "mnt-bad";
  fs::create_directories(at);
  std::string out;
  int rc = sh(fmt::format("{} mount 127.0.0.1:{} {}", mydfs::testing::binary("MYDFS_CLI_BIN"),
                          mydfs::testing::free_port(), at.string()),
              &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("cannot reach the cluster"), std::string::npos) << out;
  EXPECT_FALSE(is_mounted(at));
}

TEST_F(FuseTest, posixErrors) {
  fs::path d = mnt() / "e";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  auto fails_with = [](int rc, int err) { return rc == -1 && errno == err; };
  EXPECT_TRUE(fails_with(::mkdir(d.c_str(), 0755), EEXIST));
  EXPECT_TRUE(fails_with(::open((d / "none").c_str(), O_RDONLY), ENOENT));
  write_file(d / "f", "x");
  EXPECT_TRUE(fails_with(::open((d / "f" / "g").c_str(), O_RDONLY), ENOTDIR));
  EXPECT_TRUE(fails_with(::open(d.c_str(), O_WRONLY), EISDIR));
  EXPECT_TRUE(fails_with(::rmdir(d.c_str()), ENOTEMPTY));
  EXPECT_TRUE(fails_with(::open((d / std::string(256, 'n')).c_str(), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG));
  EXPECT_TRUE(fails_with(::open((d / "f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST));
  EXPECT_TRUE(fails_with(::rename((d / "f").c_str(), (root() / "outside").c_str()), EXDEV));
  EXPECT_TRUE(fails_with(::unlink(d.c_str()), EISDIR));
}

TEST_F(FuseTest, metadataCalls) {
  fs::path d = mnt() / "m";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  struct stat st {};
  // FIFOs and symlinks are metadata.
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0640), 0);
  ASSERT_EQ(::lstat((d / "fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::symlink("target/of/link", (d / "ln").c_str()), 0);
  char buf[64] = {};
  ASSERT_EQ(::readlink((d / "ln").c_str(), buf, sizeof buf), 14);
  EXPECT_EQ(std::string(buf), "target/of/link");
  // Hard links share the inode and count.
  write_file(d / "a", "A");
  ASSERT_EQ(::link((d / "a").c_str(), (d / "a2").c_str()), 0);
  ASSERT_EQ(::stat((d / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  // Extended attributes.
  ASSERT_EQ(::setxattr((d / "a").c_str(), "user.color", "blue", 4, XATTR_CREATE), 0);
  EXPECT_EQ(::setxattr((d / "a").c_str(), "user.color", "red", 3, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  char v[16] = {};
  EXPECT_EQ(::getxattr((d / "a2").c_str(), "user.color", v, sizeof v), 4);
  EXPECT_EQ(std::string(v, 4), "blue");
  char names[64] = {};
  ssize_t nl = ::listxattr((d / "a").c_str(), names, sizeof names);
  EXPECT_EQ(std::string(names, static_cast<size_t>(std::max<ssize_t>(nl, 0))), std::string("user.color\0", 11));
  ASSERT_EQ(::removexattr((d / "a").c_str(), "user.color"), 0);
  EXPECT_EQ(::getxattr((d / "a").c_str(), "user.color", v, sizeof v), -1);
  EXPECT_EQ(errno, ENODATA);
  // Times: UTIME_OMIT leaves one alone, an explicit time is kept to the nanosecond.
  struct timespec ts[2] = {{1000, 5}, {2000, 123456789}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d / "a").c_str(), ts, 0), 0);
  struct timespec omit[2] = {{0, UTIME_OMIT}, {3000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d / "a").c_str(), omit, 0), 0);
  ASSERT_EQ(::stat((d / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_atim.tv_sec, 1000);
  EXPECT_EQ(st.st_atim.tv_nsec, 5);
  EXPECT_EQ(st.st_mtim.tv_sec, 3000);
  // fallocate: mode 0 grows the file (zeros), KEEP_SIZE keeps its size; others are not supported.
  int fd = ::open((d / "a").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fallocate(fd, 0, 0, 10000), 0);
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 50000), 0);
  EXPECT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 10), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 10000);
  // Locks are kept by the kernel for this mount: a second open file description conflicts.
  int fd2 = ::open((d / "a").c_str(), O_RDWR);
  ASSERT_GE(fd2, 0);
  EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(::flock(fd2, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  ::close(fd2);
  ::close(fd);
  std::string content = read_file(d / "a");
  EXPECT_EQ(content, "A" + std::string(9999, '\0'));
  // renameat2: RENAME_NOREPLACE refuses an existing target, RENAME_EXCHANGE swaps.
  write_file(d / "b", "B");
  EXPECT_EQ(::renameat2(AT_FDCWD, (d / "a").c_str(), AT_FDCWD, (d / "b").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, (d / "fifo").c_str(), AT_FDCWD, (d / "b").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(read_file(d / "fifo"), "B");
  ASSERT_EQ(::lstat((d / "b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // statfs reports the cluster's space.
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(mnt().c_str(), &sv), 0);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_LE(sv.f_bfree, sv.f_blocks);
  EXPECT_EQ(sv.f_namemax, 255u);
}

// Users without privileges (setpriv): the kernel checks mode bits and ownership
// (default_permissions) against the attributes the tracker keeps, and the tracker passes a
// setgid directory's group down.
TEST_F(FuseTest, permissions_asUsersWithoutPrivileges) {
  auto as = [](int uid) { return fmt::format("setpriv --reuid={0} --regid={0} --clear-groups ", uid); };
  auto mode_of = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 0u;
  };
  std::string out;
  fs::path d = mnt() / "p";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(d.c_str(), 0755), 0);
  // EACCES: a directory the user may not write, a file the user may not read.
  EXPECT_NE(sh(as(4321) + "touch " + (d / "x").string(), &out), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  write_file(d / "secret", "s");
  ASSERT_EQ(::chmod((d / "secret").c_str(), 0600), 0);
  EXPECT_NE(sh(as(4321) + "cat " + (d / "secret").string(), &out), 0);
  EXPECT_NE(out.find("Permission denied"), std::string::npos) << out;
  // EPERM: chmod and chown of someone else's file.
  EXPECT_NE(sh(as(4321) + "chmod 666 " + (d / "secret").string(), &out), 0);
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  // What a user creates is the user's.
  fs::path open_dir = mnt() / "u";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 01777), 0);  // sticky, like /tmp
  ASSERT_EQ(sh(as(4321) + "sh -c 'echo mine > " + (open_dir / "mine").string() + "'", &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::stat((open_dir / "mine").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4321u);
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_NE(sh(as(4321) + "chown 0 " + (open_dir / "mine").string(), &out), 0);
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  // Sticky directory: another user may not remove or rename it.
  EXPECT_NE(sh(as(4322) + "rm -f " + (open_dir / "mine").string(), &out), 0);
  EXPECT_NE(out.find("Operation not permitted"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(open_dir / "mine"));
  EXPECT_EQ(sh(as(4321) + "rm " + (open_dir / "mine").string(), &out), 0) << out;
  // setgid directory: new entries take its group; new directories keep the bit.
  fs::path sg = mnt() / "sg";
  ASSERT_EQ(::mkdir(sg.c_str(), 0777), 0);
  ASSERT_EQ(::chown(sg.c_str(), 0, 777), 0);
  ASSERT_EQ(::chmod(sg.c_str(), 02777), 0);
  ASSERT_EQ(sh(as(4321) + "sh -c 'echo f > " + (sg / "f").string() + " && mkdir " + (sg / "sub").string() + "'", &out),
            0)
      << out;
  ASSERT_EQ(::stat((sg / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 777u);
  ASSERT_EQ(::stat((sg / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 777u);
  EXPECT_TRUE(st.st_mode & S_ISGID);
  // A set-user-id file loses the bit when a user without privileges writes to it.
  fs::path suid = open_dir / "tool";
  write_file(suid, "#!/bin/sh\n");
  ASSERT_EQ(::chmod(suid.c_str(), 04777), 0);
  ASSERT_EQ(sh(as(4321) + "sh -c 'echo more >> " + suid.string() + "'", &out), 0) << out;
  EXPECT_EQ(mode_of(suid) & 04000, 0u) << "mode " << std::oct << mode_of(suid);
}

TEST_F(FuseTest, cpRsyncStyleTreeInAndOut_diffClean_modesAndTimesKept) {
  // A source tree with nested directories, modes and a symlink.
  fs::path src = root() / "src";
  for (int i = 0; i < 4; ++i) {
    fs::create_directories(src / fmt::format("d{}/e", i));
    for (int j = 0; j < 6; ++j)
      write_file(src / fmt::format("d{}/e/f{}.c", i, j), std::string(1000 * (i * 7 + j + 1), static_cast<char>('a' + j)));
  }
  write_file(src / "big.bin", std::string(5 << 20, 'z') + "end");
  fs::permissions(src / "d0/e/f0.c", fs::perms::owner_all);
  fs::create_symlink("d1/e/f1.c", src / "link");
  std::string out;
  // Times in the past, with nanoseconds: rsync sets a directory's time only when the seconds
  // differ (its default comparison), so times of this very second could be left as the copy
  // made them, on any file system.
  ASSERT_EQ(sh(fmt::format("find {} -depth -exec touch -h -d '2021-03-04 05:06:07.123456789' {{}} +", src.string()), &out), 0)
      << out;
  ASSERT_EQ(sh(fmt::format("cp -a {} {}/tree", src.string(), mnt().string()), &out), 0) << out;
  ASSERT_EQ(sh(fmt::format("diff -r --no-dereference {} {}/tree", src.string(), mnt().string()), &out), 0) << out;
  fs::path back = root() / "back";
  ASSERT_EQ(sh(fmt::format("cp -a {}/tree {}", mnt().string(), back.string()), &out), 0) << out;
  ASSERT_EQ(sh(fmt::format("diff -r --no-dereference {} {}", src.string(), back.string()), &out), 0) << out;
  // Modes and modification times went through both ways.
  std::string listing = "find . -printf '%P %y %m %T@\\n' | sort";
  std::string a, b, cc;
  ASSERT_EQ(sh(fmt::format("cd {} && {}", src.string(), listing), &a), 0);
  ASSERT_EQ(sh(fmt::format("cd {}/tree && {}", mnt().string(), listing), &b), 0);
  ASSERT_EQ(sh(fmt::format("cd {} && {}", back.string(), listing), &cc), 0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, cc);
  // rsync -a in and out (it writes temporaries and renames them over the targets).
  fs::path rs = root() / "rsynced";
  ASSERT_EQ(sh(fmt::format("rsync -a {}/ {}/rtree/ && rsync -a {}/rtree/ {}/", src.string(), mnt().string(),
                           mnt().string(), rs.string()),
               &out),
            0)
      << out;
  ASSERT_EQ(sh(fmt::format("diff -r --no-dereference {} {}", src.string(), rs.string()), &out), 0) << out;
  std::string d;
  ASSERT_EQ(sh(fmt::format("cd {} && {}", rs.string(), listing), &d), 0);
  EXPECT_EQ(a, d);
  // A second rsync finds nothing to send: sizes and times on the mount are what it set.
  ASSERT_EQ(sh(fmt::format("rsync -a --itemize-changes {}/ {}/rtree/", src.string(), mnt().string()), &out), 0) << out;
  EXPECT_EQ(out, "");
}

// mount(8) through mount.fuse3. With -t fuse.mydfs it runs `mydfs` from mount's own PATH (an
// installed binary); the form naming the program, -t fuse PROGRAM#TRACKER, runs this build's.
TEST_F(FuseTest, mountCommand_throughMountFuse3) {
  fs::path at = root() / "mnt3";
  fs::create_directories(at);
  std::string out;
  int rc = sh(fmt::format("mount -t fuse '{}#{}' {} -o attr_timeout=0", mydfs::testing::binary("MYDFS_CLI_BIN"),
                          c_->tracker(), at.string()),
              &out);
  struct Unmount {
    fs::path at;
    ~Unmount() {
      if (is_mounted(at)) sh("fusermount3 -u " + at.string());
    }
  } guard{at};
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(is_mounted(at));
  write_file(at / "via-mount8", "hello");
  EXPECT_EQ(read_file(mnt() / "via-mount8"), "hello");
  EXPECT_EQ(sh("fusermount3 -u " + at.string(), &out), 0) << out;
  EXPECT_FALSE(is_mounted(at));
}

TEST_F(FuseTest, tarExtractAndRecreate) {
  fs::path src = root() / "t";
  std::string out;
  ASSERT_EQ(sh(fmt::format("mkdir -p {0}/s0 {0}/s1 {0}/s2", src.string()), &out), 0) << out;
  for (int i = 0; i < 20; ++i) write_file(src / fmt::format("s{}/x{}", i % 3, i), std::string(i * 3000 + 1, 'q'));
  fs::path tarball = root() / "t.tar";
  ASSERT_EQ(sh(fmt::format("tar -cf {} -C {} .", tarball.string(), src.string()), &out), 0) << out;
  ASSERT_EQ(sh(fmt::format("mkdir {0}/x && tar -xf {1} -C {0}/x", mnt().string(), tarball.string()), &out), 0) << out;
  ASSERT_EQ(sh(fmt::format("diff -r {} {}/x", src.string(), mnt().string()), &out), 0) << out;
  ASSERT_EQ(sh(fmt::format("tar -cf {0}/again.tar -C {0}/x . && tar -tvf {0}/again.tar | sort > {1}/a.txt && "
                           "tar -tvf {2} | sort > {1}/b.txt && diff {1}/a.txt {1}/b.txt",
                           mnt().string(), root().string(), tarball.string()),
               &out),
            0)
      << out;
}

TEST_F(FuseTest, gitInsideTheMount) {
  std::string out;
  std::string git = "git -c user.email=t@example.com -c user.name=t -c init.defaultBranch=main";
  std::string cmd = fmt::format(
      "cd {0} && {1} init -q repo && cd repo && printf 'one\\n' > a.txt && mkdir sub && printf 'two\\n' > sub/b.txt "
      "&& {1} add . && {1} commit -qm first && printf 'three\\n' >> a.txt && {1} commit -qam second "
      "&& {1} checkout -q -b side HEAD~1 && test \"$(cat a.txt)\" = one && {1} checkout -q main "
      "&& test \"$(tail -n1 a.txt)\" = three && {1} log --oneline | wc -l && {1} fsck --strict",
      mnt().string(), git);
  ASSERT_EQ(sh(cmd, &out), 0) << out;
  EXPECT_NE(out.find("2\n"), std::string::npos) << out;
}

TEST_F(FuseTest, editorAtomicSave_andInPlaceRewrite) {
  fs::path f = mnt() / "notes.txt";
  write_file(f, "first version\n");
  // Atomic save: a temporary beside the original, fsync, rename over it.
  fs::path tmp = mnt() / ".notes.txt.swp";
  int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  std::string v2 = "second version, longer than the first\n";
  ASSERT_EQ(::write(fd, v2.data(), v2.size()), static_cast<ssize_t>(v2.size()));
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(::rename(tmp.c_str(), f.c_str()), 0);
  EXPECT_EQ(read_file(f), v2);
  EXPECT_FALSE(fs::exists(tmp));
  // In place: overwrite a word in the middle through an O_RDWR descriptor.
  fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "SECOND", 6, 0), 6);
  char back[6];
  ASSERT_EQ(::pread(fd, back, 6, 0), 6);  // the handle sees its own write before close
  EXPECT_EQ(std::string(back, 6), "SECOND");
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(read_file(f), "SECOND version, longer than the first\n");
}

// Two descriptors of one file: O_TRUNC through one removes what the other still buffers, and
// fsync through one makes the other's writes durable (another mount reads them).
TEST_F(FuseTest, twoDescriptors_truncateAndFsyncCoverEachOther) {
  fs::path f = mnt() / "log";
  int a = ::open(f.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
  ASSERT_GE(a, 0);
  ASSERT_EQ(::write(a, "first\n", 6), 6);  // buffered in a's handle
  int t = ::open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(t, 0);
  ::close(t);
  EXPECT_EQ(read_file(f), "");
  ASSERT_EQ(::write(a, "second\n", 7), 7);
  Mount other(*c_, root() / "mnt2", root() / "mount2.log");
  int b = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::fsync(b), 0);
  EXPECT_EQ(read_file(other.dir() / "log"), "second\n");
  ::close(b);
  ::close(a);
}

TEST_F(FuseTest, twoMounts_seeEachOthersClosedFiles) {
  Mount other(*c_, root() / "mnt2", root() / "mount2.log");
  std::string data(3 << 20, 'k');
  data += "tail";
  write_file(mnt() / "shared.bin", data);
  EXPECT_EQ(read_file(other.dir() / "shared.bin"), data);
  write_file(other.dir() / "shared.bin", "replaced");
  EXPECT_EQ(read_file(mnt() / "shared.bin"), "replaced");
  fs::rename(other.dir() / "shared.bin", other.dir() / "moved.bin");
  EXPECT_FALSE(fs::exists(mnt() / "shared.bin"));
  EXPECT_EQ(read_file(mnt() / "moved.bin"), "replaced");
}

TEST_F(FuseTest, leaderKilledDuringLargeCopy_copyCompletesOrFailsClearly_nothingAcknowledgedLost) {
  fs::path src = root() / "large.bin";
  {
    std::string chunk(1 << 20, '\0');
    std::ofstream f(src, std::ios::binary);
    for (int i = 0; i < 48; ++i) {
      for (size_t k = 0; k < chunk.size(); k += 8) chunk[k] = static_cast<char>(i * 31 + k / 8);
      f << chunk;
    }
  }
  write_file(mnt() / "before.txt", "acknowledged before the kill");
  int leader = c_->leader(1, 10s);
  ASSERT_GE(leader, 0);
  std::string out;
  std::thread killer([&] {
    std::this_thread::sleep_for(300ms);
    c_->storage(leader).kill9();
  });
  int rc = sh(fmt::format("cp {} {}/large.bin", src.string(), mnt().string()), &out);
  killer.join();
  if (rc == 0) {
    EXPECT_EQ(sh(fmt::format("cmp {} {}/large.bin", src.string(), mnt().string()), &out), 0) << out;
  } else {
    EXPECT_NE(out.find("large.bin"), std::string::npos) << "cp failed without saying what: " << out;
  }
  EXPECT_EQ(read_file(mnt() / "before.txt"), "acknowledged before the kill");
  c_->start_storage(leader);
}

// ---- Space (slices sized to their data) ---------------------------------------------------------

// Holes take no space and read as zeros: a byte written at 10 GiB, a growing truncate to 50 GiB,
// fallocate with and without KEEP_SIZE. The three members' data directories grow by their
// headers and log entries only.
TEST_F(FuseTest, sparseFile_holesTakeNoSpace_readAsZeros) {
  uint64_t before = data_bytes();
  fs::path p = mnt() / "sparse";
  constexpr uint64_t G = 1ull << 30;
  int fd = ::open(p.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "x", 1, static_cast<off_t>(10 * G)), 1);
  ASSERT_EQ(::fsync(fd), 0) << std::strerror(errno);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(50 * G)), 0) << std::strerror(errno);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(50 * G), static_cast<off_t>(G)), 0)
      << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 50 * G) << "KEEP_SIZE keeps the size";
  ASSERT_EQ(::fallocate(fd, 0, static_cast<off_t>(50 * G), static_cast<off_t>(G)), 0) << std::strerror(errno);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 51 * G);
  // du on the mount: the blocks the file takes (its one byte's), not its size.
  EXPECT_EQ(uint64_t(st.st_blocks) * 512, 4096u) << st.st_blocks;
  std::string du;
  ASSERT_EQ(sh("du -k " + p.string() + " | cut -f1", &du), 0);
  EXPECT_EQ(std::stoull(du), 4u) << "du reports the KiB the file takes";
  {
    write_file(mnt() / "dense", std::string(100000, 'd'));
    struct stat ds {};
    ASSERT_EQ(::stat((mnt() / "dense").c_str(), &ds), 0);
    EXPECT_EQ(uint64_t(ds.st_blocks) * 512, 102400u) << "a file with data takes its size in 4 KiB blocks";
  }
  auto at = [&](uint64_t off, size_t n) {
    std::string b(n, '?');
    EXPECT_EQ(::pread(fd, b.data(), n, static_cast<off_t>(off)), static_cast<ssize_t>(n)) << off;
    return b;
  };
  EXPECT_EQ(at(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(at(10 * G - 10, 11), std::string(10, '\0') + "x");
  EXPECT_EQ(at(10 * G + 1, 4096), std::string(4096, '\0'));
  EXPECT_EQ(at(33 * G + 12345, 70000), std::string(70000, '\0'));
  EXPECT_EQ(at(51 * G - 4096, 4096), std::string(4096, '\0'));
  ::close(fd);
  sh("sync");
  uint64_t grew = data_bytes() - before;
  std::cout << "[ info ] 51 GiB of holes grew the three data directories by " << grew << " bytes\n";
  // 13 056 slices: per member their headers (256 bytes each) and log entries; no data.
  EXPECT_LT(grew, 24u << 20);
}

// A cluster small enough to fill: one group of three, 48 MiB per member.
class SmallClusterTest : public FuseTest {
 protected:
  ClusterOptions options() const override {
    ClusterOptions o = group_of_three();
    o.capacity = "48MiB";
    return o;
  }
};

// Files of mixed sizes until the group is full: every failure is ENOSPC (never EIO) and leaves
// what was written before it; a random half deleted gives its space back, the next fill uses it,
// and every file reads back as written.
TEST_F(SmallClusterTest, fillToNoSpace_deleteHalf_fillAgain) {
  std::mt19937_64 rng(1414);
  const std::vector<size_t> sizes = {1, 100, 5000, 70000, 1u << 20, 5u << 20, 12u << 20};
  std::map<std::string, std::string> files;  // what each file holds
  int n = 0;
  // Writes files until one fails; returns the bytes written.
  auto fill = [&]() -> uint64_t {
    uint64_t wrote = 0;
    for (;;) {
      std::string name = fmt::format("f{:04}", n++);
      std::string data(sizes[rng() % sizes.size()], '\0');
      for (auto& c : data) c = static_cast<char>(rng() | 1);
      int fd = ::open((mnt() / name).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      EXPECT_GE(fd, 0) << std::strerror(errno);
      if (fd < 0) return wrote;
      size_t done = 0;
      int err = 0;
      while (done < data.size()) {
        ssize_t w = ::write(fd, data.data() + done, std::min<size_t>(data.size() - done, 1 << 20));
        if (w < 0) { err = errno; break; }
        done += static_cast<size_t>(w);
      }
      if (!err && ::fsync(fd) != 0) err = errno;
      if (::close(fd) != 0 && !err) err = errno;
      if (!err) {
        files[name] = std::move(data);
        wrote += files[name].size();
        continue;
      }
      EXPECT_EQ(err, ENOSPC) << "a full cluster answers ENOSPC, not " << std::strerror(err);
      // What the mount holds of the failed file is a prefix of what was written: never garbage.
      std::string back = read_file(mnt() / name);
      EXPECT_LE(back.size(), data.size());
      EXPECT_EQ(back, data.substr(0, back.size())) << name;
      fs::remove(mnt() / name);
      return wrote;
    }
  };
  uint64_t first = fill();
  ASSERT_GT(files.size(), 3u);
  std::cout << "[ info ] first fill: " << files.size() << " files, " << first << " bytes\n";
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(mnt().c_str(), &sv), 0);
  EXPECT_LT(uint64_t(sv.f_bavail) * sv.f_frsize, 13u << 20) << "df shows the group nearly full: the failed file did not fit";
  EXPECT_LE(uint64_t(sv.f_blocks) * sv.f_frsize, 48u << 20);
  // A random half goes; its space comes back (trimmed, then reported by the next heartbeats).
  uint64_t freed = 0;
  for (auto it = files.begin(); it != files.end();) {
    if (rng() % 2) {
      freed += it->second.size();
      fs::remove(mnt() / it->first);
      it = files.erase(it);
    } else {
      ++it;
    }
  }
  std::this_thread::sleep_for(2500ms);
  uint64_t second = fill();
  std::cout << "[ info ] deleted " << freed << " bytes; second fill wrote " << second << " bytes\n";
  EXPECT_GE(second + (13u << 20), freed) << "the deleted files' space is used again";
  for (const auto& [name, data] : files) EXPECT_EQ(read_file(mnt() / name), data) << name;
}

// cp -a of a real tree of small files (default /usr/include/linux; MYDFS_SPACE_TREE=/usr/include
// copies the whole of /usr/include, about 22 000 files, which takes minutes): diff clean, the
// members' data directories hold about what the tree's files do (at most 1.3 times their apparent
// size), and rm -rf gives the space back to the host file system.
TEST_F(FuseTest, treeOfSmallFiles_takesItsSize_rmGivesSpaceBack) {
  const char* env = std::getenv("MYDFS_SPACE_TREE");
  fs::path tree = env && *env ? env : "/usr/include/linux";
  if (!fs::is_directory(tree)) GTEST_SKIP() << tree << " is not here";
  std::string out;
  ASSERT_EQ(sh("du -s -B1 --apparent-size " + tree.string() + " | cut -f1", &out), 0);
  uint64_t apparent = std::stoull(out);
  ASSERT_EQ(sh("du -s -B1 " + tree.string() + " | cut -f1", &out), 0);
  uint64_t local = std::stoull(out);  // what the host's own file system takes for the tree
  uint64_t before = data_bytes();
  ASSERT_EQ(sh(fmt::format("cp -a {} {}/", tree.string(), mnt().string()), &out), 0) << out;
  EXPECT_EQ(sh(fmt::format("diff -r --no-dereference {} {}/{}", tree.string(), mnt().string(), tree.filename().string()), &out), 0)
      << out.substr(0, 2000);
  sh("sync");
  uint64_t per_member = (data_bytes() - before) / static_cast<uint64_t>(c_->storage_count());
  double ratio = static_cast<double>(per_member) / static_cast<double>(apparent);
  std::cout << "[ info ] " << tree << ": " << apparent << " bytes apparent, " << local << " locally, " << per_member
            << " bytes per member on disk, ratio " << ratio << "\n";
  // At most 1.3 times the apparent size, or (for trees of files much smaller than a block, where
  // the host's own file system needs more) about what the host takes, with the members' logs.
  EXPECT_LE(per_member, std::max(1.3 * static_cast<double>(apparent), 1.1 * static_cast<double>(local) + (1 << 20)));
  struct statvfs host {};
  ASSERT_EQ(::statvfs(root().c_str(), &host), 0);
  uint64_t host_free = uint64_t(host.f_bavail) * host.f_frsize;
  ASSERT_EQ(sh(fmt::format("rm -rf {}/{}", mnt().string(), tree.filename().string()), &out), 0) << out;
  std::this_thread::sleep_for(2s);  // deleted slices are given back in the background
  sh("sync");
  uint64_t left = data_bytes() - before;
  std::cout << "[ info ] after rm -rf the data directories hold " << left << " bytes more than before the copy\n";
  EXPECT_LT(left, per_member / 2) << "most of the space is given back (what stays: logs and header tables)";
  ASSERT_EQ(::statvfs(root().c_str(), &host), 0);
  uint64_t host_after = uint64_t(host.f_bavail) * host.f_frsize;
  EXPECT_GT(host_after + apparent / 2, host_free + apparent) << "the host's df shows the space back";
}

}  // namespace
