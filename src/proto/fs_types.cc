#include "proto/fs_types.h"

namespace mydfs {

namespace {

void put_ts(Writer& w, const Timespec& t) { w.i64(t.sec); w.u32(t.nsec); }
Timespec get_ts(Reader& r) {
  Timespec t;
  t.sec = r.i64();
  t.nsec = r.u32();
  if (t.nsec >= 1000000000u) r.fail();
  return t;
}
bool valid_type(uint8_t t) { return t >= 1 && t <= 7; }

}  // namespace

void Attr::encode(Writer& w) const {
  w.u64(ino); w.u8(static_cast<uint8_t>(type)); w.u32(mode); w.u32(uid); w.u32(gid); w.u32(nlink);
  w.u64(size); put_ts(w, atime); put_ts(w, mtime); put_ts(w, ctime); w.u32(rdev); w.loc(head);
  w.u64(version); w.u8(run);
}

void Attr::decode(Reader& r) {
  ino = r.u64();
  uint8_t t = r.u8();
  if (!valid_type(t)) r.fail();
  type = static_cast<FileType>(t);
  mode = r.u32(); uid = r.u32(); gid = r.u32(); nlink = r.u32(); size = r.u64();
  atime = get_ts(r); mtime = get_ts(r); ctime = get_ts(r); rdev = r.u32(); head = r.loc();
  version = r.u64(); run = r.u8();
}

void NsOp::encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(type)); w.u64(parent); w.str(name); w.u64(parent2); w.str(name2);
  w.u8(static_cast<uint8_t>(ftype)); w.u32(mode); w.u32(uid); w.u32(gid); w.u32(rdev); w.u32(flags);
  w.u64(size); put_ts(w, atime); put_ts(w, mtime); w.loc(head); w.u64(expect_version); put_ts(w, now);
  w.u64(new_ino);
}

void NsOp::decode(Reader& r) {
  uint8_t t = r.u8();
  if (t < 1 || t > static_cast<uint8_t>(OpType::COMMIT_FILE)) r.fail();
  type = static_cast<OpType>(t);
  parent = r.u64(); name = r.str(kMaxSymlink + 1); parent2 = r.u64(); name2 = r.str(kMaxXattrValue);
  uint8_t ft = r.u8();
  if (!valid_type(ft)) r.fail();
  ftype = static_cast<FileType>(ft);
  mode = r.u32(); uid = r.u32(); gid = r.u32(); rdev = r.u32(); flags = r.u32(); size = r.u64();
  atime = get_ts(r); mtime = get_ts(r); head = r.loc(); expect_version = r.u64(); now = get_ts(r);
  new_ino = r.u64();
}

}  // namespace mydfs
