#include "tracker/namespace.h"

#include <algorithm>
#include <cerrno>

#include "common/checksum.h"

namespace mydfs::tracker {

int check_name(const std::string& name) {
  if (name.empty()) return EINVAL;
  if (name.size() > kMaxName) return ENAMETOOLONG;
  if (name.find('/') != std::string::npos || name.find('\0') != std::string::npos) return EINVAL;
  return 0;
}

Namespace::Namespace() {
  Inode root;
  root.a.ino = kRootIno;
  root.a.type = FileType::DIR;
  root.a.mode = 0755;
  root.a.nlink = 2;
  root.extra().parent = kRootIno;
  inodes_.emplace(kRootIno, std::move(root));
}

uint64_t Namespace::cookie_of(const std::string& name) {
  return 3 + (xxh64(name.data(), name.size()) >> 2);  // 0 = start, 1 = ".", 2 = ".."
}

Namespace::Inode* Namespace::find(uint64_t ino) {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}
const Namespace::Inode* Namespace::find(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}

const Namespace::Entry* Namespace::find_entry(const Inode& dir, const std::string& name) const {
  if (!dir.x) return nullptr;
  auto [b, e] = dir.x->entries.equal_range(cookie_of(name));
  for (auto it = b; it != e; ++it)
    if (it->second.name == name) return &it->second;
  return nullptr;
}

void Namespace::add_entry(Inode& dir, const std::string& name, uint64_t ino) {
  dir.extra().entries.emplace(cookie_of(name), Entry{name, ino});
}

void Namespace::remove_entry(Inode& dir, const std::string& name) {
  auto [b, e] = dir.x->entries.equal_range(cookie_of(name));
  for (auto it = b; it != e; ++it)
    if (it->second.name == name) {
      dir.x->entries.erase(it);
      return;
    }
}

bool Namespace::is_ancestor(uint64_t anc, uint64_t ino) const {
  // Walks up from ino through directory parents.
  for (uint64_t cur = ino;;) {
    if (cur == anc) return true;
    const Inode* n = find(cur);
    if (!n || cur == kRootIno || !n->x) return false;
    cur = n->x->parent;
  }
}

uint8_t Namespace::run_of(uint64_t ino) const {
  const Inode* n = find(ino);
  return n ? n->a.run : 0;
}

// ---------------------------------------------------------------------------------------------
// Reads

int Namespace::getattr(uint64_t ino, Attr* out) const {
  const Inode* n = find(ino);
  if (!n) return ENOENT;
  *out = n->a;
  return 0;
}

int Namespace::lookup(uint64_t parent, const std::string& name, Attr* out) const {
  const Inode* d = find(parent);
  if (!d) return ENOENT;
  if (d->a.type != FileType::DIR) return ENOTDIR;
  if (name == ".") return getattr(parent, out);
  if (name == "..") return getattr(d->x->parent, out);
  if (int e = check_name(name)) return e;
  const Entry* en = find_entry(*d, name);
  if (!en) return ENOENT;
  return getattr(en->ino, out);
}

int Namespace::readlink(uint64_t ino, std::string* out) const {
  const Inode* n = find(ino);
  if (!n) return ENOENT;
  if (n->a.type != FileType::LNK) return EINVAL;
  *out = n->x->symlink;
  return 0;
}

int Namespace::readdir(uint64_t ino, uint64_t cookie, uint32_t max, std::vector<DirEntry>* out, bool* eof) const {
  const Inode* d = find(ino);
  if (!d) return ENOENT;
  if (d->a.type != FileType::DIR) return ENOTDIR;
  out->clear();
  *eof = false;
  if (max == 0) max = 1;
  if (cookie < 1) out->push_back({".", ino, FileType::DIR, 1});
  if (cookie < 2 && out->size() < max) out->push_back({"..", d->x->parent, FileType::DIR, 2});
  if (out->size() >= max) return 0;
  const auto& entries = d->x->entries;
  auto it = entries.upper_bound(std::max<uint64_t>(cookie, 2));
  while (it != entries.end()) {
    // Entries sharing a cookie go out together: a page never ends inside them.
    auto group_end = entries.upper_bound(it->first);
    if (out->size() >= max) return 0;
    for (; it != group_end; ++it) {
      const Inode* child = find(it->second.ino);
      out->push_back({it->second.name, it->second.ino, child ? child->a.type : FileType::REG, it->first});
    }
  }
  *eof = true;
  return 0;
}

int Namespace::getxattr(uint64_t ino, const std::string& name, std::string* value) const {
  const Inode* n = find(ino);
  if (!n) return ENOENT;
  if (n->x)
    for (const auto& [k, v] : n->x->xattrs)
      if (k == name) {
        *value = v;
        return 0;
      }
  return ENODATA;
}

int Namespace::listxattr(uint64_t ino, std::vector<std::string>* names) const {
  const Inode* n = find(ino);
  if (!n) return ENOENT;
  names->clear();
  if (n->x)
    for (const auto& [k, v] : n->x->xattrs) names->push_back(k);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Mutations: every check before the first change.

int Namespace::apply(const NsOp& op, OpResult* out) {
  if (!out) return apply_op(op, nullptr);
  int e = apply_op(op, out);
  if (e != 0) return e;
  // The directories whose entries changed, for the caller's attribute cache.
  auto add_dir = [&](uint64_t ino) {
    Attr a;
    if (getattr(ino, &a) == 0 && a.type == FileType::DIR) out->dirs.push_back(a);
  };
  switch (op.type) {
    case OpType::MKDIR:
    case OpType::CREATE:
    case OpType::MKNOD:
    case OpType::SYMLINK:
    case OpType::UNLINK:
    case OpType::RMDIR:
      add_dir(op.parent);
      break;
    case OpType::LINK:
      add_dir(op.parent2);
      break;
    case OpType::RENAME:
      add_dir(op.parent);
      if (op.parent2 != op.parent) add_dir(op.parent2);
      break;
    default:
      break;
  }
  return 0;
}

int Namespace::apply_op(const NsOp& op, OpResult* out) {
  OpResult ignored;
  if (!out) out = &ignored;
  switch (op.type) {
    case OpType::MKDIR:
    case OpType::CREATE:
    case OpType::MKNOD:
    case OpType::SYMLINK: return do_create(op, out);
    case OpType::LINK: return do_link(op, out);
    case OpType::UNLINK:
    case OpType::RMDIR: return do_unlink(op, out);
    case OpType::RENAME: return do_rename(op, out);
    case OpType::SETATTR: return do_setattr(op, out);
    case OpType::SETXATTR:
    case OpType::REMOVEXATTR: return do_xattr(op, out);
    case OpType::COMMIT_FILE: return do_commit(op, out);
  }
  return EINVAL;
}

int Namespace::check_dir_for_new(uint64_t parent, const std::string& name, Inode** dir) {
  Inode* d = find(parent);
  if (!d) return ENOENT;
  if (d->a.type != FileType::DIR) return ENOTDIR;
  if (name == "." || name == "..") return EEXIST;
  if (int e = check_name(name)) return e;
  *dir = d;
  return 0;
}

Namespace::Inode& Namespace::make_inode(const NsOp& op, FileType type, uint32_t mode) {
  Inode n;
  n.a.ino = op.new_ino;
  n.a.type = type;
  n.a.mode = mode & 07777;
  n.a.uid = op.uid;
  n.a.gid = op.gid;
  n.a.nlink = type == FileType::DIR ? 2 : 1;
  n.a.atime = n.a.mtime = n.a.ctime = op.now;
  n.a.rdev = op.rdev;
  next_ino_ = std::max(next_ino_, op.new_ino + 1);
  return inodes_.emplace(op.new_ino, std::move(n)).first->second;
}

int Namespace::do_create(const NsOp& op, OpResult* out) {
  Inode* dir = nullptr;
  if (int e = check_dir_for_new(op.parent, op.name, &dir)) return e;
  if (const Entry* existing = find_entry(*dir, op.name)) {
    // open(O_CREAT) of an existing file opens it, unless O_EXCL.
    const Inode* n = find(existing->ino);
    if (op.type != OpType::CREATE || (op.flags & CREATE_EXCLUSIVE)) return EEXIST;
    if (n->a.type == FileType::DIR) return EISDIR;
    out->attr = n->a;
    out->created = false;
    return 0;
  }
  if (op.new_ino < next_ino_ || find(op.new_ino)) return EINVAL;  // ids are never reused
  FileType type = op.type == OpType::MKDIR ? FileType::DIR
                : op.type == OpType::SYMLINK ? FileType::LNK
                : op.type == OpType::MKNOD ? op.ftype : FileType::REG;
  if (op.type == OpType::MKNOD && (type == FileType::DIR || type == FileType::LNK)) return EINVAL;
  if (op.type == OpType::SYMLINK && (op.name2.empty() || op.name2.size() > kMaxSymlink))
    return op.name2.empty() ? ENOENT : ENAMETOOLONG;
  uint8_t run = 0;
  std::string runv;
  if (getxattr(op.parent, kRunXattr, &runv) == 0) run = static_cast<uint8_t>(std::stoul(runv));
  uint32_t mode = type == FileType::LNK ? 0777 : op.mode;
  // setgid directories pass their group (and, to subdirectories, the bit) down.
  uint32_t gid = (dir->a.mode & 02000) ? dir->a.gid : op.gid;
  if (type == FileType::DIR && (dir->a.mode & 02000)) mode |= 02000;
  Inode& n = make_inode(op, type, mode);
  n.a.gid = gid;
  n.a.run = run;
  if (type == FileType::DIR) {
    n.extra().parent = op.parent;
    dir->a.nlink++;
  }
  if (type == FileType::LNK) {
    n.extra().symlink = op.name2;
    n.a.size = op.name2.size();
  }
  if (type == FileType::REG) files_++;
  add_entry(*dir, op.name, n.a.ino);
  dir->a.mtime = dir->a.ctime = op.now;
  out->attr = n.a;
  out->created = true;
  return 0;
}

int Namespace::do_link(const NsOp& op, OpResult* out) {
  Inode* src = find(op.parent);
  if (!src) return ENOENT;
  if (src->a.type == FileType::DIR) return EPERM;
  Inode* dir = nullptr;
  if (int e = check_dir_for_new(op.parent2, op.name2, &dir)) return e;
  if (find_entry(*dir, op.name2)) return EEXIST;
  if (src->a.nlink >= 65000) return EMLINK;
  src->a.nlink++;
  src->a.ctime = op.now;
  add_entry(*dir, op.name2, src->a.ino);
  dir->a.mtime = dir->a.ctime = op.now;
  out->attr = src->a;
  return 0;
}

void Namespace::drop_link(Inode& n, OpResult* out) {
  if (n.a.type == FileType::DIR) {
    n.a.nlink = 0;
  } else if (n.a.nlink > 0) {
    n.a.nlink--;
  }
  out->attr = n.a;
  if (n.a.nlink == 0) {
    if (!n.a.head.null()) out->released.push_back(n.a.head);
    if (n.a.type == FileType::REG) files_--;
    inodes_.erase(n.a.ino);
  }
}

int Namespace::do_unlink(const NsOp& op, OpResult* out) {
  Inode* dir = find(op.parent);
  if (!dir) return ENOENT;
  if (dir->a.type != FileType::DIR) return ENOTDIR;
  bool rmdir = op.type == OpType::RMDIR;
  if (op.name == ".") return rmdir ? EINVAL : EISDIR;
  if (op.name == "..") return rmdir ? ENOTEMPTY : EISDIR;
  if (int e = check_name(op.name)) return e;
  const Entry* en = find_entry(*dir, op.name);
  if (!en) return ENOENT;
  Inode* n = find(en->ino);
  if (rmdir) {
    if (n->a.type != FileType::DIR) return ENOTDIR;
    if (n->x && !n->x->entries.empty()) return ENOTEMPTY;
    dir->a.nlink--;
  } else if (n->a.type == FileType::DIR) {
    return EISDIR;
  }
  remove_entry(*dir, op.name);
  dir->a.mtime = dir->a.ctime = op.now;
  n->a.ctime = op.now;
  drop_link(*n, out);
  return 0;
}

int Namespace::do_rename(const NsOp& op, OpResult* out) {
  bool noreplace = op.flags & RENAME_NOREPLACE_, exchange = op.flags & RENAME_EXCHANGE_;
  if ((op.flags & ~3u) || (noreplace && exchange)) return EINVAL;
  Inode* sdir = find(op.parent);
  Inode* ddir = find(op.parent2);
  if (!sdir || !ddir) return ENOENT;
  if (sdir->a.type != FileType::DIR || ddir->a.type != FileType::DIR) return ENOTDIR;
  for (const auto* nm : {&op.name, &op.name2}) {
    if (*nm == "." || *nm == "..") return EBUSY;
    if (int e = check_name(*nm)) return e;
  }
  const Entry* se = find_entry(*sdir, op.name);
  if (!se) return ENOENT;
  if (sdir == ddir && op.name == op.name2) return 0;  // renaming a name onto itself does nothing
  Inode* src = find(se->ino);
  const Entry* de = find_entry(*ddir, op.name2);
  Inode* dst = de ? find(de->ino) : nullptr;
  bool src_dir = src->a.type == FileType::DIR;
  // Never a directory into its own subtree (either way round for an exchange).
  if (src_dir && is_ancestor(src->a.ino, ddir->a.ino)) return EINVAL;
  if (exchange) {
    if (!dst) return ENOENT;
    if (dst->a.type == FileType::DIR && is_ancestor(dst->a.ino, sdir->a.ino)) return EINVAL;
  } else if (dst) {
    if (noreplace) return EEXIST;
    if (dst == src) return 0;  // two names of one inode: POSIX says do nothing
    bool dst_dir = dst->a.type == FileType::DIR;
    if (src_dir && !dst_dir) return ENOTDIR;
    if (!src_dir && dst_dir) return EISDIR;
    if (dst_dir && dst->x && !dst->x->entries.empty()) return ENOTEMPTY;
  }
  // All checks passed: change.
  uint64_t src_ino = src->a.ino;
  if (exchange) {
    uint64_t dst_ino = dst->a.ino;
    remove_entry(*sdir, op.name);
    remove_entry(*ddir, op.name2);
    add_entry(*sdir, op.name, dst_ino);
    add_entry(*ddir, op.name2, src_ino);
    bool dst_dir = dst->a.type == FileType::DIR;
    if (sdir != ddir) {
      if (src_dir) { src->x->parent = ddir->a.ino; sdir->a.nlink--; ddir->a.nlink++; }
      if (dst_dir) { dst->x->parent = sdir->a.ino; ddir->a.nlink--; sdir->a.nlink++; }
    }
    dst->a.ctime = op.now;
  } else {
    if (dst) {
      remove_entry(*ddir, op.name2);
      if (dst->a.type == FileType::DIR) ddir->a.nlink--;
      dst->a.ctime = op.now;
      OpResult dropped;
      drop_link(*dst, &dropped);
      out->released = std::move(dropped.released);
      src = find(src_ino);  // the map may have rehashed
      sdir = find(op.parent);
      ddir = find(op.parent2);
    }
    remove_entry(*sdir, op.name);
    add_entry(*ddir, op.name2, src_ino);
    if (src_dir && sdir != ddir) {
      src->x->parent = ddir->a.ino;
      sdir->a.nlink--;
      ddir->a.nlink++;
    }
  }
  src->a.ctime = op.now;
  sdir->a.mtime = sdir->a.ctime = op.now;
  ddir->a.mtime = ddir->a.ctime = op.now;
  out->attr = src->a;
  return 0;
}

int Namespace::do_setattr(const NsOp& op, OpResult* out) {
  Inode* n = find(op.parent);
  if (!n) return ENOENT;
  uint32_t m = op.flags;
  if ((m & SET_SIZE) && n->a.type == FileType::DIR) return EISDIR;
  if ((m & SET_SIZE) && n->a.type != FileType::REG) return EINVAL;
  if (m & SET_MODE) n->a.mode = op.mode & 07777;
  if (m & SET_UID) n->a.uid = op.uid;
  if (m & SET_GID) n->a.gid = op.gid;
  if (m & SET_SIZE) {
    n->a.size = op.size;
    n->a.blocks = std::min(n->a.blocks, (op.size + 4095) / 4096 * 4096);
    n->a.mtime = op.now;
  }
  if (m & SET_ATIME_NOW) n->a.atime = op.now;
  else if (m & SET_ATIME) n->a.atime = op.atime;
  if (m & SET_MTIME_NOW) n->a.mtime = op.now;
  else if (m & SET_MTIME) n->a.mtime = op.mtime;
  n->a.ctime = op.now;
  out->attr = n->a;
  return 0;
}

int Namespace::do_xattr(const NsOp& op, OpResult* out) {
  Inode* n = find(op.parent);
  if (!n) return ENOENT;
  if (op.name.empty() || op.name.size() > kMaxXattrName) return op.name.empty() ? EINVAL : ERANGE;
  // Look without creating the extra part: a failing op must leave the inode as it was.
  std::vector<std::pair<std::string, std::string>>* xs = n->x ? &n->x->xattrs : nullptr;
  auto it = xs ? std::find_if(xs->begin(), xs->end(), [&](const auto& kv) { return kv.first == op.name; })
               : std::vector<std::pair<std::string, std::string>>::iterator{};
  bool exists = xs && it != xs->end();
  if (op.type == OpType::REMOVEXATTR) {
    if (!exists) return ENODATA;
    xs->erase(it);
  } else {
    if (op.name2.size() > kMaxXattrValue) return E2BIG;
    if ((op.flags & XATTR_CREATE_) && exists) return EEXIST;
    if ((op.flags & XATTR_REPLACE_) && !exists) return ENODATA;
    uint8_t run = 0;
    if (op.name == kRunXattr) {
      if (n->a.type != FileType::DIR && n->a.type != FileType::REG) return EINVAL;
      if (op.name2.empty() || op.name2.size() > 2 || op.name2.find_first_not_of("0123456789") != std::string::npos)
        return EINVAL;
      unsigned long k = std::stoul(op.name2);
      if (k < 1 || k > 64) return EINVAL;
      run = static_cast<uint8_t>(k);
    }
    if (exists) {
      it->second = op.name2;
    } else {
      if (xs && xs->size() >= kMaxXattrs) return ENOSPC;
      n->extra().xattrs.emplace_back(op.name, op.name2);
    }
    if (run && n->a.type == FileType::REG) n->a.run = run;
  }
  n->a.ctime = op.now;
  out->attr = n->a;
  return 0;
}

int Namespace::do_commit(const NsOp& op, OpResult* out) {
  Inode* n = find(op.parent);
  if (!n) return ENOENT;
  if (n->a.type == FileType::DIR) return EISDIR;
  if (n->a.type != FileType::REG) return EINVAL;
  // Compare-and-set: a commit made against an older version would silently drop the other
  // writer's change; the caller must re-read and retry.
  if (n->a.version != op.expect_version) return ESTALE;
  if (!(n->a.head == op.head) && !n->a.head.null()) out->released.push_back(n->a.head);
  n->a.head = op.head;
  n->a.size = op.size;
  n->a.blocks = op.blocks == NsOp::kUnknownBlocks ? (op.size + 4095) / 4096 * 4096 : op.blocks;
  n->a.mtime = op.mtime;
  n->a.ctime = op.now;
  n->a.version++;
  out->attr = n->a;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Image encoding: inodes in id order, each with its extra parts.

void Namespace::encode(Writer& w) const {
  w.u64(next_ino_);
  std::vector<uint64_t> ids;
  ids.reserve(inodes_.size());
  for (const auto& [id, n] : inodes_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  w.u64(ids.size());
  for (uint64_t id : ids) {
    const Inode& n = inodes_.at(id);
    n.a.encode(w);
    bool has_x = n.x != nullptr;
    w.boolean(has_x);
    if (!has_x) continue;
    w.str(n.x->symlink);
    w.u64(n.x->parent);
    w.u32(static_cast<uint32_t>(n.x->xattrs.size()));
    for (const auto& [k, v] : n.x->xattrs) { w.str(k); w.str(v); }
    w.u64(n.x->entries.size());
    for (const auto& [c, e] : n.x->entries) { w.str(e.name); w.u64(e.ino); }
  }
}

bool Namespace::decode(Reader& r, bool with_blocks) {
  inodes_.clear();
  files_ = 0;
  next_ino_ = r.u64();
  uint64_t count = r.u64();
  if (!r.ok() || count > r.remaining() / 60 + 1) return false;
  inodes_.reserve(count);
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    Inode n;
    n.a.decode(r, with_blocks);
    if (r.boolean()) {
      auto& x = n.extra();
      x.symlink = r.str(kMaxSymlink);
      x.parent = r.u64();
      uint32_t nx = r.count(8, kMaxXattrs);
      for (uint32_t k = 0; k < nx && r.ok(); ++k) {
        std::string key = r.str(kMaxXattrName);
        std::string val = r.str(kMaxXattrValue);
        x.xattrs.emplace_back(std::move(key), std::move(val));
      }
      uint64_t ne = r.u64();
      if (ne > r.remaining() / 12) r.fail();
      for (uint64_t k = 0; k < ne && r.ok(); ++k) {
        std::string name = r.str(kMaxName);
        uint64_t ino = r.u64();
        uint64_t cookie = cookie_of(name);  // before the move below (argument order is unspecified)
        x.entries.emplace(cookie, Entry{std::move(name), ino});
      }
    }
    if (n.a.type == FileType::REG) files_++;
    uint64_t id = n.a.ino;
    if (!inodes_.emplace(id, std::move(n)).second) return false;  // an inode twice
  }
  if (!r.ok()) return false;
  // The structure must hold together before anyone walks it: the root is a directory, every
  // directory has its entry table and a directory parent, every entry names an inode that exists.
  const Inode* root = find(kRootIno);
  if (!root || root->a.type != FileType::DIR) return false;
  for (const auto& [id, n] : inodes_) {
    if (n.a.ino != id || id >= next_ino_) return false;
    if (n.a.type != FileType::DIR) continue;
    if (!n.x) return false;
    const Inode* parent = find(n.x->parent);
    if (!parent || parent->a.type != FileType::DIR) return false;
    for (const auto& [cookie, e] : n.x->entries)
      if (!find(e.ino) || check_name(e.name) != 0) return false;
  }
  return true;
}

bool Namespace::operator==(const Namespace& o) const {
  Writer a, b;
  encode(a);
  o.encode(b);
  return a.data() == b.data();
}

std::map<uint64_t, std::string> Namespace::paths_of(const std::vector<uint64_t>& inos) const {
  std::map<uint64_t, std::string> out;
  std::map<uint64_t, std::pair<uint64_t, const std::string*>> where;  // ino -> (directory, name)
  for (uint64_t i : inos) {
    if (i == kRootIno) out[i].push_back('/');
    else out[i];
    if (i != kRootIno) where[i] = {0, nullptr};
  }
  size_t left = where.size();
  for (const auto& [dir_ino, dir] : inodes_) {
    if (left == 0) break;
    if (dir.a.type != FileType::DIR || !dir.x) continue;
    for (const auto& [cookie, e] : dir.x->entries) {
      auto it = where.find(e.ino);
      if (it == where.end() || it->second.second) continue;
      it->second = {dir_ino, &e.name};
      --left;
    }
  }
  for (auto& [ino, w] : where) {
    if (!w.second) continue;
    std::vector<const std::string*> names{w.second};  // leaf first
    uint64_t d = w.first;
    bool whole = true;
    for (int depth = 0; d != kRootIno && depth < 4096; ++depth) {  // directories name their parent
      const Inode* dn = find(d);
      if (!dn || !dn->x) { whole = false; break; }
      uint64_t parent = dn->x->parent;
      const Inode* pn = find(parent);
      const std::string* name = nullptr;
      if (pn && pn->x)
        for (const auto& [cookie, e] : pn->x->entries)
          if (e.ino == d) { name = &e.name; break; }
      if (!name) { whole = false; break; }
      names.push_back(name);
      d = parent;
    }
    std::string path;
    if (whole)
      for (auto it = names.rbegin(); it != names.rend(); ++it) path.append("/").append(**it);
    out[ino] = std::move(path);
  }
  return out;
}

}  // namespace mydfs::tracker
