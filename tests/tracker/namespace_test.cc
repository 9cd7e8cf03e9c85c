// Namespace operations: success and POSIX error cases, table-driven where the cases are many.
#include <cerrno>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "tracker/namespace.h"

namespace mydfs::tracker {
namespace {

class NsTest : public ::testing::Test {
 public:  // the table's lambdas build ops through these
  NsOp op(OpType t, uint64_t parent, const std::string& name) {
    NsOp o;
    o.type = t;
    o.parent = parent;
    o.name = name;
    o.mode = 0644;
    o.uid = 1000;
    o.gid = 100;
    o.now = Timespec{++clock_, 0};
    o.new_ino = ns_.next_ino();
    return o;
  }
  // Applies and returns errno; *ino gets the resulting inode.
  int run(const NsOp& o, uint64_t* ino = nullptr) {
    OpResult r;
    int e = ns_.apply(o, &r);
    if (e == 0 && ino) *ino = r.attr.ino;
    last_ = r;
    return e;
  }
  uint64_t mkdir(uint64_t p, const std::string& n) {
    uint64_t ino = 0;
    EXPECT_EQ(run(op(OpType::MKDIR, p, n), &ino), 0) << n;
    return ino;
  }
  uint64_t create(uint64_t p, const std::string& n) {
    uint64_t ino = 0;
    EXPECT_EQ(run(op(OpType::CREATE, p, n), &ino), 0) << n;
    return ino;
  }
  int rename(uint64_t p, const std::string& n, uint64_t p2, const std::string& n2, uint32_t flags = 0) {
    NsOp o = op(OpType::RENAME, p, n);
    o.parent2 = p2;
    o.name2 = n2;
    o.flags = flags;
    return run(o);
  }
  int lookup_err(uint64_t p, const std::string& n) {
    Attr a;
    return ns_.lookup(p, n, &a);
  }
  uint64_t ino_of(uint64_t p, const std::string& n) {
    Attr a;
    EXPECT_EQ(ns_.lookup(p, n, &a), 0) << n;
    return a.ino;
  }
  Attr attr(uint64_t ino) {
    Attr a;
    EXPECT_EQ(ns_.getattr(ino, &a), 0);
    return a;
  }
  std::vector<std::string> names(uint64_t dir) {
    std::vector<std::string> all;
    uint64_t cookie = 0;
    for (bool eof = false; !eof;) {
      std::vector<DirEntry> page;
      EXPECT_EQ(ns_.readdir(dir, cookie, 3, &page, &eof), 0);
      for (auto& e : page) {
        all.push_back(e.name);
        cookie = e.cookie;
      }
      if (page.empty()) break;
    }
    return all;
  }

  Namespace ns_;
  int64_t clock_ = 1000;
  OpResult last_;
};

TEST_F(NsTest, mkdirCreateLookupGetattr) {
  uint64_t d = mkdir(kRootIno, "docs");
  uint64_t f = create(d, "a.txt");
  EXPECT_EQ(ino_of(kRootIno, "docs"), d);
  EXPECT_EQ(ino_of(d, "a.txt"), f);
  EXPECT_EQ(ino_of(d, ".."), kRootIno);
  EXPECT_EQ(ino_of(d, "."), d);
  Attr a = attr(f);
  EXPECT_EQ(a.type, FileType::REG);
  EXPECT_EQ(a.mode, 0644u);
  EXPECT_EQ(a.uid, 1000u);
  EXPECT_EQ(a.nlink, 1u);
  EXPECT_EQ(attr(d).nlink, 2u);
  EXPECT_EQ(attr(kRootIno).nlink, 3u);
  EXPECT_EQ(ns_.file_count(), 1u);
  EXPECT_EQ(ns_.inode_count(), 3u);
}

struct ErrCase {
  const char* what;
  std::function<NsOp(NsTest&, uint64_t dir, uint64_t file)> make;
  int err;
};

// A change reports the directories whose entries it changed, as they are after it (the mount
// answers their GETATTR from these); a failed one and a change of a file's own attributes none.
TEST_F(NsTest, changes_reportTheDirectoriesTheyChanged) {
  uint64_t a = mkdir(kRootIno, "a"), b = mkdir(kRootIno, "b");
  uint64_t f = create(a, "f");
  ASSERT_EQ(last_.dirs.size(), 1u);
  EXPECT_EQ(last_.dirs[0].ino, a);
  EXPECT_EQ(last_.dirs[0].mtime, attr(a).mtime);
  EXPECT_EQ(last_.dirs[0].nlink, attr(a).nlink);
  ASSERT_EQ(rename(a, "f", b, "g"), 0);
  ASSERT_EQ(last_.dirs.size(), 2u);
  EXPECT_EQ(last_.dirs[0].ino, a);
  EXPECT_EQ(last_.dirs[1].ino, b);
  EXPECT_EQ(last_.dirs[1].mtime, attr(b).mtime);
  NsOp chmod = op(OpType::SETATTR, f, "");
  chmod.flags = SET_MODE;
  ASSERT_EQ(run(chmod), 0);
  EXPECT_TRUE(last_.dirs.empty());
  EXPECT_EQ(run(op(OpType::MKDIR, kRootIno, "a")), EEXIST);
  EXPECT_TRUE(last_.dirs.empty());
  ASSERT_EQ(run(op(OpType::UNLINK, b, "g")), 0);
  ASSERT_EQ(last_.dirs.size(), 1u);
  EXPECT_EQ(last_.dirs[0].ino, b);
}

TEST_F(NsTest, errorCases_table) {
  uint64_t dir = mkdir(kRootIno, "dir");
  uint64_t file = create(dir, "file");
  mkdir(dir, "sub");
  create(ns_.next_ino() - 1, "inner");  // dir/sub/inner: sub is not empty
  std::string long_name(256, 'x');
  std::vector<ErrCase> cases = {
      {"mkdir existing", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, "file"); }, EEXIST},
      {"mkdir in a file", [](NsTest& t, uint64_t, uint64_t f) { return t.op(OpType::MKDIR, f, "x"); }, ENOTDIR},
      {"mkdir in a missing dir", [](NsTest& t, uint64_t, uint64_t) { return t.op(OpType::MKDIR, 9999, "x"); }, ENOENT},
      {"mkdir name too long", [&](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, long_name); }, ENAMETOOLONG},
      {"mkdir with slash", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, "a/b"); }, EINVAL},
      {"mkdir with NUL", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, std::string("a\0b", 3)); }, EINVAL},
      {"mkdir empty name", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, ""); }, EINVAL},
      {"mkdir dot", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::MKDIR, d, "."); }, EEXIST},
      {"create exclusive existing", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::CREATE, d, "file"); o.flags = 1; return o; }, EEXIST},
      {"create over a dir", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::CREATE, d, "sub"); }, EISDIR},
      {"rmdir a file", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::RMDIR, d, "file"); }, ENOTDIR},
      {"rmdir non-empty", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::RMDIR, d, "sub"); }, ENOTEMPTY},
      {"rmdir missing", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::RMDIR, d, "nope"); }, ENOENT},
      {"rmdir dot", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::RMDIR, d, "."); }, EINVAL},
      {"unlink a dir", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::UNLINK, d, "sub"); }, EISDIR},
      {"unlink missing", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::UNLINK, d, "nope"); }, ENOENT},
      {"unlink in a file", [](NsTest& t, uint64_t, uint64_t f) { return t.op(OpType::UNLINK, f, "x"); }, ENOTDIR},
      {"link a dir", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::LINK, d, ""); o.parent2 = d; o.name2 = "l"; return o; }, EPERM},
      {"link onto existing", [](NsTest& t, uint64_t d, uint64_t f) { auto o = t.op(OpType::LINK, f, ""); o.parent2 = d; o.name2 = "sub"; return o; }, EEXIST},
      {"link missing source", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::LINK, 9999, ""); o.parent2 = d; o.name2 = "l"; return o; }, ENOENT},
      {"symlink too long", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::SYMLINK, d, "s"); o.name2 = std::string(4096, 'a'); return o; }, ENAMETOOLONG},
      {"symlink existing", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::SYMLINK, d, "file"); o.name2 = "x"; return o; }, EEXIST},
      {"mknod existing", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::MKNOD, d, "file"); o.ftype = FileType::FIFO; return o; }, EEXIST},
      {"truncate a dir", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::SETATTR, d, ""); o.flags = SET_SIZE; return o; }, EISDIR},
      {"setattr missing", [](NsTest& t, uint64_t, uint64_t) { auto o = t.op(OpType::SETATTR, 9999, ""); o.flags = SET_MODE; return o; }, ENOENT},
      {"removexattr missing", [](NsTest& t, uint64_t, uint64_t f) { return t.op(OpType::REMOVEXATTR, f, "user.x"); }, ENODATA},
      {"xattr replace missing", [](NsTest& t, uint64_t, uint64_t f) { auto o = t.op(OpType::SETXATTR, f, "user.x"); o.flags = XATTR_REPLACE_; return o; }, ENODATA},
      {"xattr value too big", [](NsTest& t, uint64_t, uint64_t f) { auto o = t.op(OpType::SETXATTR, f, "user.x"); o.name2 = std::string(65537, 'v'); return o; }, E2BIG},
      {"run xattr not a number", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::SETXATTR, d, kRunXattr); o.name2 = "x"; return o; }, EINVAL},
      {"run xattr zero", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::SETXATTR, d, kRunXattr); o.name2 = "0"; return o; }, EINVAL},
      {"commit to a dir", [](NsTest& t, uint64_t d, uint64_t) { return t.op(OpType::COMMIT_FILE, d, ""); }, EISDIR},
      {"commit wrong version", [](NsTest& t, uint64_t, uint64_t f) { auto o = t.op(OpType::COMMIT_FILE, f, ""); o.expect_version = 5; return o; }, ESTALE},
      {"rename missing source", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "nope"); o.parent2 = d; o.name2 = "x"; return o; }, ENOENT},
      {"rename dir over file", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "sub"); o.parent2 = d; o.name2 = "file"; return o; }, ENOTDIR},
      {"rename file over dir", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "file"); o.parent2 = d; o.name2 = "sub"; return o; }, EISDIR},
      {"rename into own subtree", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, kRootIno, "dir"); o.parent2 = d; o.name2 = "x"; return o; }, EINVAL},
      {"rename dir onto itself-child", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "sub"); o.parent2 = t.ino_of(d, "sub"); o.name2 = "x"; return o; }, EINVAL},
      {"rename noreplace existing", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "file"); o.parent2 = d; o.name2 = "sub"; o.flags = RENAME_NOREPLACE_; return o; }, EEXIST},
      {"rename exchange missing", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "file"); o.parent2 = d; o.name2 = "nope"; o.flags = RENAME_EXCHANGE_; return o; }, ENOENT},
      {"rename both flags", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, "file"); o.parent2 = d; o.name2 = "x"; o.flags = 3; return o; }, EINVAL},
      {"rename dotdot", [](NsTest& t, uint64_t d, uint64_t) { auto o = t.op(OpType::RENAME, d, ".."); o.parent2 = d; o.name2 = "x"; return o; }, EBUSY},
      {"rename onto non-empty dir", [](NsTest& t, uint64_t, uint64_t) { auto o = t.op(OpType::RENAME, kRootIno, "empty"); o.parent2 = t.ino_of(kRootIno, "dir"); o.name2 = "sub"; return o; }, ENOTEMPTY},
  };
  mkdir(kRootIno, "empty");
  Namespace before = ns_;
  for (const auto& c : cases) {
    NsOp o = c.make(*this, dir, file);
    EXPECT_EQ(run(o), c.err) << c.what;
    EXPECT_TRUE(ns_ == before) << c.what << ": a failed op changed the namespace";
  }
}

TEST_F(NsTest, createExisting_opensIt) {
  uint64_t f = create(kRootIno, "f");
  uint64_t again = 0;
  EXPECT_EQ(run(op(OpType::CREATE, kRootIno, "f"), &again), 0);
  EXPECT_EQ(again, f);
  EXPECT_FALSE(last_.created);
}

TEST_F(NsTest, unlink_lastLinkFreesInodeAndReleasesData) {
  uint64_t f = create(kRootIno, "f");
  NsOp c = op(OpType::COMMIT_FILE, f, "");
  c.head = Location{1, 7, 1};
  c.size = 100;
  ASSERT_EQ(run(c), 0);
  NsOp l = op(OpType::LINK, f, "");
  l.parent2 = kRootIno;
  l.name2 = "g";
  ASSERT_EQ(run(l), 0);
  EXPECT_EQ(attr(f).nlink, 2u);
  ASSERT_EQ(run(op(OpType::UNLINK, kRootIno, "f")), 0);
  EXPECT_TRUE(last_.released.empty()) << "still linked as g";
  EXPECT_EQ(attr(f).nlink, 1u);
  ASSERT_EQ(run(op(OpType::UNLINK, kRootIno, "g")), 0);
  ASSERT_EQ(last_.released.size(), 1u);
  EXPECT_EQ(last_.released[0], (Location{1, 7, 1}));
  Attr a;
  EXPECT_EQ(ns_.getattr(f, &a), ENOENT);
  EXPECT_EQ(ns_.file_count(), 0u);
}

TEST_F(NsTest, rename_replacesTargetAtomically) {
  uint64_t a = create(kRootIno, "a");
  uint64_t b = create(kRootIno, "b");
  ASSERT_EQ(rename(kRootIno, "a", kRootIno, "b"), 0);
  EXPECT_EQ(ino_of(kRootIno, "b"), a);
  EXPECT_EQ(lookup_err(kRootIno, "a"), ENOENT);
  Attr gone;
  EXPECT_EQ(ns_.getattr(b, &gone), ENOENT);
}

TEST_F(NsTest, rename_exchangeSwapsDirsAndFixesParents) {
  uint64_t d1 = mkdir(kRootIno, "d1");
  uint64_t d2 = mkdir(kRootIno, "d2");
  uint64_t x = mkdir(d1, "x");
  uint64_t y = create(d2, "y");
  ASSERT_EQ(rename(d1, "x", d2, "y", RENAME_EXCHANGE_), 0);
  EXPECT_EQ(ino_of(d1, "x"), y);
  EXPECT_EQ(ino_of(d2, "y"), x);
  EXPECT_EQ(ino_of(x, ".."), d2);
  EXPECT_EQ(attr(d1).nlink, 2u);
  EXPECT_EQ(attr(d2).nlink, 3u);
}

TEST_F(NsTest, rename_dirAcrossParents_nlinkAndDotdot) {
  uint64_t a = mkdir(kRootIno, "a");
  uint64_t b = mkdir(kRootIno, "b");
  uint64_t c = mkdir(a, "c");
  ASSERT_EQ(rename(a, "c", b, "c2"), 0);
  EXPECT_EQ(attr(a).nlink, 2u);
  EXPECT_EQ(attr(b).nlink, 3u);
  EXPECT_EQ(ino_of(c, ".."), b);
  // A hard-linked pair renamed onto each other: nothing happens.
  uint64_t f = create(b, "f");
  NsOp l = op(OpType::LINK, f, "");
  l.parent2 = b;
  l.name2 = "f2";
  ASSERT_EQ(run(l), 0);
  ASSERT_EQ(rename(b, "f", b, "f2"), 0);
  EXPECT_EQ(ino_of(b, "f"), f);
  EXPECT_EQ(ino_of(b, "f2"), f);
}

TEST_F(NsTest, rename_ontoItself_doesNothing) {
  uint64_t d = mkdir(kRootIno, "d");
  uint64_t f = create(d, "f");
  Namespace before = ns_;
  ASSERT_EQ(rename(d, "f", d, "f", RENAME_EXCHANGE_), 0);
  ASSERT_EQ(rename(d, "f", d, "f"), 0);
  EXPECT_EQ(ino_of(d, "f"), f);
  EXPECT_EQ(names(d).size(), 3u) << "., .. and f: no duplicate entry";
  NsOp m = op(OpType::MKNOD, d, "l");
  m.ftype = FileType::LNK;
  EXPECT_EQ(run(m), EINVAL) << "symlinks are made by SYMLINK, with its checks";
}

TEST_F(NsTest, setattr_timesAndNow) {
  uint64_t f = create(kRootIno, "f");
  NsOp s = op(OpType::SETATTR, f, "");
  s.flags = SET_MODE | SET_UID | SET_ATIME | SET_MTIME_NOW | SET_SIZE;
  s.mode = 04755;
  s.uid = 7;
  s.atime = Timespec{42, 999999999};
  s.size = 12345;
  ASSERT_EQ(run(s), 0);
  Attr a = attr(f);
  EXPECT_EQ(a.mode, 04755u);
  EXPECT_EQ(a.uid, 7u);
  EXPECT_EQ(a.atime, (Timespec{42, 999999999}));
  EXPECT_EQ(a.mtime, s.now);
  EXPECT_EQ(a.ctime, s.now);
  EXPECT_EQ(a.size, 12345u);
}

TEST_F(NsTest, symlinkReadlinkMknod) {
  NsOp s = op(OpType::SYMLINK, kRootIno, "ln");
  s.name2 = "../target/path";
  uint64_t ln = 0;
  ASSERT_EQ(run(s, &ln), 0);
  std::string t;
  ASSERT_EQ(ns_.readlink(ln, &t), 0);
  EXPECT_EQ(t, "../target/path");
  EXPECT_EQ(attr(ln).size, t.size());
  EXPECT_EQ(ns_.readlink(kRootIno, &t), EINVAL);
  NsOp m = op(OpType::MKNOD, kRootIno, "fifo");
  m.ftype = FileType::FIFO;
  uint64_t fifo = 0;
  ASSERT_EQ(run(m, &fifo), 0);
  EXPECT_EQ(attr(fifo).type, FileType::FIFO);
}

TEST_F(NsTest, xattrs_setGetListRemove_andRunHint) {
  uint64_t d = mkdir(kRootIno, "d");
  NsOp x = op(OpType::SETXATTR, d, "user.color");
  x.name2 = "blue";
  ASSERT_EQ(run(x), 0);
  x.flags = XATTR_CREATE_;
  EXPECT_EQ(run(x), EEXIST);
  std::string v;
  ASSERT_EQ(ns_.getxattr(d, "user.color", &v), 0);
  EXPECT_EQ(v, "blue");
  EXPECT_EQ(ns_.getxattr(d, "user.none", &v), ENODATA);
  NsOp r = op(OpType::SETXATTR, d, kRunXattr);
  r.name2 = "5";
  ASSERT_EQ(run(r), 0);
  std::vector<std::string> names;
  ASSERT_EQ(ns_.listxattr(d, &names), 0);
  EXPECT_EQ(names, (std::vector<std::string>{"user.color", kRunXattr}));
  uint64_t f = create(d, "f");
  EXPECT_EQ(ns_.run_of(f), 5) << "files take their directory's run length at creation";
  ASSERT_EQ(run(op(OpType::REMOVEXATTR, d, "user.color")), 0);
  EXPECT_EQ(ns_.getxattr(d, "user.color", &v), ENODATA);
}

TEST_F(NsTest, commitFile_compareAndSet) {
  uint64_t f = create(kRootIno, "f");
  NsOp c1 = op(OpType::COMMIT_FILE, f, "");
  c1.expect_version = 0;
  c1.head = Location{1, 2, 3};
  c1.size = 10;
  c1.mtime = Timespec{5, 6};
  ASSERT_EQ(run(c1), 0);
  EXPECT_EQ(last_.attr.version, 1u);
  // A second writer that read version 0 too must not overwrite silently.
  NsOp c2 = op(OpType::COMMIT_FILE, f, "");
  c2.expect_version = 0;
  c2.head = Location{2, 2, 2};
  EXPECT_EQ(run(c2), ESTALE);
  EXPECT_EQ(attr(f).head, (Location{1, 2, 3}));
  c2.expect_version = 1;
  ASSERT_EQ(run(c2), 0);
  ASSERT_EQ(last_.released.size(), 1u);
  EXPECT_EQ(last_.released[0], (Location{1, 2, 3})) << "the replaced chain is garbage";
}

TEST_F(NsTest, readdir_pagedAndStableWhileEntriesChange) {
  uint64_t d = mkdir(kRootIno, "d");
  for (int i = 0; i < 50; ++i) create(d, "f" + std::to_string(i));
  // Read half, then change the directory, then continue from the cookie.
  std::vector<DirEntry> page;
  bool eof = false;
  ASSERT_EQ(ns_.readdir(d, 0, 20, &page, &eof), 0);
  ASSERT_EQ(page.size(), 20u);
  EXPECT_EQ(page[0].name, ".");
  EXPECT_EQ(page[1].name, "..");
  std::set<std::string> seen;
  for (auto& e : page) seen.insert(e.name);
  uint64_t cookie = page.back().cookie;
  // Remove one already returned, add new ones: every entry present throughout appears once.
  ASSERT_EQ(run(op(OpType::UNLINK, d, page[5].name)), 0);
  for (int i = 0; i < 10; ++i) create(d, "new" + std::to_string(i));
  while (!eof) {
    ASSERT_EQ(ns_.readdir(d, cookie, 7, &page, &eof), 0);
    for (auto& e : page) {
      EXPECT_TRUE(seen.insert(e.name).second) << e.name << " returned twice";
      cookie = e.cookie;
    }
  }
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(seen.count("f" + std::to_string(i))) << i;
  EXPECT_EQ(ns_.readdir(9999, 0, 10, &page, &eof), ENOENT);
  uint64_t f = create(d, "plain");
  EXPECT_EQ(ns_.readdir(f, 0, 10, &page, &eof), ENOTDIR);
}

TEST_F(NsTest, setgidDirectory_passesGroupDown) {
  uint64_t d = mkdir(kRootIno, "shared");
  NsOp s = op(OpType::SETATTR, d, "");
  s.flags = SET_MODE | SET_GID;
  s.mode = 02775;
  s.gid = 500;
  ASSERT_EQ(run(s), 0);
  uint64_t f = create(d, "f");
  EXPECT_EQ(attr(f).gid, 500u);
  uint64_t sub = mkdir(d, "sub");
  EXPECT_EQ(attr(sub).gid, 500u);
  EXPECT_TRUE(attr(sub).mode & 02000);
}

// A file's blocks (st_blocks) are what its publisher counted; an op logged before the field
// existed counts the size rounded up to 4 KiB; a size cut by SETATTR never leaves more blocks
// than the new size holds.
TEST_F(NsTest, commitFile_blocks) {
  uint64_t f = create(kRootIno, "sparse");
  EXPECT_EQ(attr(f).blocks, 0u);
  NsOp c = op(OpType::COMMIT_FILE, f, "");
  c.head = Location{1, 2, 3};
  c.size = 50ull << 30;
  c.blocks = 8192;
  ASSERT_EQ(run(c), 0);
  EXPECT_EQ(attr(f).blocks, 8192u);
  NsOp old = op(OpType::COMMIT_FILE, f, "");
  old.expect_version = 1;
  old.head = Location{1, 2, 3};
  old.size = 5000;
  Writer w;
  old.encode(w);
  std::string bytes = w.data();
  bytes.resize(bytes.size() - 8);  // as an op logged before `blocks` was
  {
    NsOp strict;
    Reader wire(bytes);
    strict.decode(wire);
    EXPECT_FALSE(wire.ok()) << "on the wire the field is not optional: what decodes re-encodes to its input";
  }
  NsOp back;
  Reader r(bytes);
  back.decode(r, /*from_log=*/true);
  ASSERT_TRUE(r.done());
  EXPECT_EQ(back.blocks, NsOp::kUnknownBlocks);
  ASSERT_EQ(run(back), 0);
  EXPECT_EQ(attr(f).blocks, 8192u) << "5000 bytes rounded up";
  NsOp cut = op(OpType::SETATTR, f, "");
  cut.flags = SET_SIZE;
  cut.size = 100;
  ASSERT_EQ(run(cut), 0);
  EXPECT_EQ(attr(f).blocks, 4096u);
  // An inode of an image of format 1 has no blocks: its size rounded up stands in.
  Writer aw;
  attr(f).encode(aw);
  std::string a1 = aw.data();
  a1.resize(a1.size() - 8);
  Attr back_a;
  Reader ar(a1);
  back_a.decode(ar, false);
  ASSERT_TRUE(ar.done());
  EXPECT_EQ(back_a.size, 100u);
  EXPECT_EQ(back_a.blocks, 4096u);
}

TEST_F(NsTest, imageRoundTrip_equalNamespace) {
  uint64_t d = mkdir(kRootIno, "d");
  create(d, "f");
  NsOp s = op(OpType::SYMLINK, d, "l");
  s.name2 = "f";
  ASSERT_EQ(run(s), 0);
  NsOp x = op(OpType::SETXATTR, d, "user.k");
  x.name2 = std::string("v\0v", 3);
  ASSERT_EQ(run(x), 0);
  Writer w;
  ns_.encode(w);
  Namespace back;
  Reader r(w.data());
  ASSERT_TRUE(back.decode(r));
  EXPECT_TRUE(back == ns_);
  EXPECT_EQ(back.file_count(), 1u);
  // Names are found again by lookup (directory positions are rebuilt from the names).
  Attr a;
  EXPECT_EQ(back.lookup(kRootIno, "d", &a), 0);
  EXPECT_EQ(back.lookup(d, "f", &a), 0);
  EXPECT_EQ(back.lookup(d, "l", &a), 0);
  EXPECT_EQ(back.next_ino(), ns_.next_ino());
  // Truncated images never decode.
  for (size_t n : {size_t{0}, size_t{10}, w.size() / 2, w.size() - 1}) {
    Namespace t;
    Reader rr(std::string_view(w.data()).substr(0, n));
    EXPECT_FALSE(t.decode(rr) && rr.done()) << n;
  }
}

TEST_F(NsTest, opEncoding_roundTrip) {
  NsOp o = op(OpType::RENAME, 5, "old");
  o.parent2 = 6;
  o.name2 = "new";
  o.flags = RENAME_NOREPLACE_;
  o.head = Location{1, 2, 3};
  o.atime = Timespec{1, 2};
  Writer w;
  o.encode(w);
  NsOp back;
  Reader r(w.data());
  back.decode(r);
  ASSERT_TRUE(r.done());
  Writer w2;
  back.encode(w2);
  EXPECT_EQ(w.data(), w2.data());
}

}  // namespace
}  // namespace mydfs::tracker
