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
  w.u64(version); w.u8(run); w.u64(blocks);
}

void Attr::decode(Reader& r, bool with_blocks) {
  ino = r.u64();
  uint8_t t = r.u8();
  if (!valid_type(t)) r.fail();
  type = static_cast<FileType>(t);
  mode = r.u32(); uid = r.u32(); gid = r.u32(); nlink = r.u32(); size = r.u64();
  atime = get_ts(r); mtime = get_ts(r); ctime = get_ts(r); rdev = r.u32(); head = r.loc();
  version = r.u64(); run = r.u8();
  blocks = with_blocks ? r.u64() : (type == FileType::REG ? (size + 4095) / 4096 * 4096 : 0);
}

void NsOp::encode(Writer& w) const {
  w.u8(static_cast<uint8_t>(type)); w.u64(parent); w.str(name); w.u64(parent2); w.str(name2);
  w.u8(static_cast<uint8_t>(ftype)); w.u32(mode); w.u32(uid); w.u32(gid); w.u32(rdev); w.u32(flags);
  w.u64(size); put_ts(w, atime); put_ts(w, mtime); w.loc(head); w.u64(expect_version); put_ts(w, now);
  w.u64(new_ino); w.u64(blocks);
}

void NsOp::decode(Reader& r, bool from_log) {
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
  blocks = from_log && r.remaining() == 0 ? kUnknownBlocks : r.u64();
}

namespace {
NsOp op_on(OpType type, uint64_t parent, std::string name) {
  NsOp op;
  op.type = type;
  op.parent = parent;
  op.name = std::move(name);
  return op;
}
}  // namespace

NsOp NsOp::mkdir(uint64_t parent, std::string name, uint32_t mode) {
  NsOp op = op_on(OpType::MKDIR, parent, std::move(name));
  op.mode = mode;
  return op;
}

NsOp NsOp::create(uint64_t parent, std::string name, uint32_t mode, bool exclusive) {
  NsOp op = op_on(OpType::CREATE, parent, std::move(name));
  op.mode = mode;
  op.flags = exclusive ? uint32_t{CREATE_EXCLUSIVE} : 0u;
  return op;
}

NsOp NsOp::make_node(uint64_t parent, std::string name, FileType type, uint32_t mode, uint32_t rdev) {
  OpType t = type == FileType::DIR ? OpType::MKDIR : type == FileType::REG ? OpType::CREATE : OpType::MKNOD;
  NsOp op = op_on(t, parent, std::move(name));
  op.ftype = type;
  op.mode = mode;
  op.rdev = rdev;
  if (t == OpType::CREATE) op.flags = CREATE_EXCLUSIVE;  // mknod of an existing name is EEXIST
  return op;
}

NsOp NsOp::symlink(uint64_t parent, std::string name, std::string target) {
  NsOp op = op_on(OpType::SYMLINK, parent, std::move(name));
  op.name2 = std::move(target);
  op.mode = 0777;
  return op;
}

NsOp NsOp::link(uint64_t ino, uint64_t new_parent, std::string new_name) {
  NsOp op = op_on(OpType::LINK, ino, "");
  op.parent2 = new_parent;
  op.name2 = std::move(new_name);
  return op;
}

NsOp NsOp::unlink(uint64_t parent, std::string name) { return op_on(OpType::UNLINK, parent, std::move(name)); }
NsOp NsOp::rmdir(uint64_t parent, std::string name) { return op_on(OpType::RMDIR, parent, std::move(name)); }

NsOp NsOp::rename(uint64_t parent, std::string name, uint64_t new_parent, std::string new_name, uint32_t rename_flags) {
  NsOp op = op_on(OpType::RENAME, parent, std::move(name));
  op.parent2 = new_parent;
  op.name2 = std::move(new_name);
  op.flags = rename_flags;
  return op;
}

NsOp NsOp::setattr(uint64_t ino) { return op_on(OpType::SETATTR, ino, ""); }

NsOp NsOp::setxattr(uint64_t ino, std::string name, std::string value, uint32_t xattr_flags) {
  NsOp op = op_on(OpType::SETXATTR, ino, std::move(name));
  op.name2 = std::move(value);
  op.flags = xattr_flags;
  return op;
}

NsOp NsOp::removexattr(uint64_t ino, std::string name) { return op_on(OpType::REMOVEXATTR, ino, std::move(name)); }

NsOp NsOp::commit_file(uint64_t ino, uint64_t expect_version, Location head, uint64_t size, Timespec mtime,
                       uint64_t blocks) {
  NsOp op = op_on(OpType::COMMIT_FILE, ino, "");
  op.expect_version = expect_version;
  op.head = head;
  op.size = size;
  op.mtime = mtime;
  op.blocks = blocks;
  return op;
}

}  // namespace mydfs
