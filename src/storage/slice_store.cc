#include "storage/slice_store.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include <spdlog/spdlog.h>

#include "common/buffer.h"
#include "common/checksum.h"

namespace mydfs::storage {

std::unique_ptr<SliceStore> make_volume_store(const StoreOptions& opt);
std::unique_ptr<SliceStore> make_files_store(const StoreOptions& opt);

Result<Backend> parse_backend(const std::string& s) {
  if (s == "volume") return Backend::VOLUME;
  if (s == "files") return Backend::FILES;
  return make_error(Code::BAD_REQUEST, fmt::format("unknown backend '{}' (expected volume or files)", s));
}

Result<std::unique_ptr<SliceStore>> SliceStore::open(const StoreOptions& opt) {
  if (opt.capacity_slots == 0)
    return make_error(Code::BAD_REQUEST, "capacity must be at least one slot");
  if (opt.capacity_slots >= (1u << 30))
    return make_error(Code::BAD_REQUEST, "capacity too large (fewer than 2^30 positions)");
  std::unique_ptr<SliceStore> s = opt.backend == Backend::VOLUME ? make_volume_store(opt)
                                                                 : make_files_store(opt);
  MYDFS_TRY(s->init());
  return s;
}

Status SliceStore::init() {
  bool exists = raw_exists();
  MYDFS_TRY(raw_open(!exists, opt_.capacity_slots));
  MYDFS_TRY(load_superblock(!exists));
  if (opt_.capacity_slots > sb_.capacity_slots) {
    spdlog::info("store: growing from {} to {} positions", sb_.capacity_slots, opt_.capacity_slots);
    MYDFS_TRY(raw_grow(opt_.capacity_slots));
    sb_.capacity_slots = opt_.capacity_slots;
    MYDFS_TRY(write_superblock_locked());
  } else if (opt_.capacity_slots < sb_.capacity_slots) {
    spdlog::info("store: keeping the store's {} positions (more than the {} configured; stores never shrink)",
                 sb_.capacity_slots, opt_.capacity_slots);
  }
  capacity_ = sb_.capacity_slots;
  return scan();
}

Status SliceStore::load_superblock(bool created) {
  if (created) {
    sb_ = Superblock{};
    sb_.backend = static_cast<uint16_t>(opt_.backend);
    sb_.cluster_id = opt_.cluster_id;
    sb_.group_id = opt_.group_id;
    sb_.node_id = opt_.node_id;
    sb_.capacity_slots = opt_.capacity_slots;
    // Both copies, so a later torn write of one always leaves a valid other.
    MYDFS_TRY(write_superblock_locked());
    MYDFS_TRY(write_superblock_locked());
    MYDFS_TRY(raw_sync());
    return raw_commit_create();
  }
  std::vector<std::byte> block(kSuperCopyOffset[1] + kSuperCopySize);
  MYDFS_TRY(raw_read(0, 0, block));
  Superblock c[2];
  HeaderParse p[2];
  for (int i = 0; i < 2; ++i)
    p[i] = decode_superblock(reinterpret_cast<unsigned char*>(block.data()) + kSuperCopyOffset[i], c[i]);
  if (p[0] == HeaderParse::OK && p[1] == HeaderParse::OK) sb_ = c[0].seq >= c[1].seq ? c[0] : c[1];
  else if (p[0] == HeaderParse::OK) sb_ = c[0];
  else if (p[1] == HeaderParse::OK) sb_ = c[1];
  else {
    // A store of the first format (a header block in front of every payload) is told apart.
    auto* b = reinterpret_cast<const unsigned char*>(block.data());
    if (b[0] == 0x4D && b[1] == 0x44 && b[2] == 0x53 && b[3] == 0x42 && b[4] == 1 && b[5] == 0)
      return make_error(Code::CORRUPT, fmt::format("'{}' is a store of format version 1; this build reads version {} "
                                                   "only: move its data off with an older build, or remove the data "
                                                   "directory to start empty", opt_.path, kFormatVersion));
    return make_error(Code::CORRUPT, fmt::format("'{}' is not a mydfs store or its superblock is corrupt", opt_.path));
  }
  if (sb_.backend != static_cast<uint16_t>(opt_.backend))
    return make_error(Code::BAD_REQUEST, fmt::format("'{}' holds a store of another backend", opt_.path));
  if (sb_.group_id != opt_.group_id || sb_.node_id != opt_.node_id || sb_.cluster_id != opt_.cluster_id)
    return make_error(Code::BAD_REQUEST,
                      fmt::format("'{}' belongs to cluster {} group {} node {}, not cluster {} group {} node {}",
                                  opt_.path, sb_.cluster_id, sb_.group_id, sb_.node_id, opt_.cluster_id,
                                  opt_.group_id, opt_.node_id));
  if (sb_.capacity_slots == 0 || sb_.capacity_slots >= (1u << 30) || sb_.high_water < 1 ||
      sb_.high_water > sb_.capacity_slots + 1)
    return make_error(Code::CORRUPT, fmt::format("'{}': superblock values out of range", opt_.path));
  return raw_check(sb_.high_water);
}

Status SliceStore::write_superblock_locked() {
  sb_.seq++;
  unsigned char copy[kSuperCopySize];
  encode_superblock(sb_, copy);
  return raw_write(0, kSuperCopyOffset[sb_.seq % 2], std::as_bytes(std::span(copy)));
}

namespace {
uint64_t live_len(const SlotMeta& m) {
  bool in_use = m.state == SlotState::LIVE || m.state == SlotState::PREPARED || m.state == SlotState::REDIRECT;
  return in_use ? m.valid_len : 0;
}
}  // namespace

SliceStore::Entry& SliceStore::entry_locked(uint32_t slot) {
  if (slot >= table_.size()) {
    size_t want = std::min<size_t>(uint64_t{capacity_} + 1, std::max<size_t>(slot + 1, table_.size() * 2));
    size_t old = table_.size();
    table_.resize(want);
    for (size_t i = old; i < want; ++i) table_[i].meta.loc = Location{sb_.group_id, static_cast<uint32_t>(i), 0};
  }
  return table_[slot];
}

void SliceStore::set_extent_locked(Entry& e, uint32_t extent) {
  if (extent >= e.extent) used_bytes_ += extent - e.extent;
  else used_bytes_ -= e.extent - extent;
  e.extent = extent;
}

// Reads the header tables of every position below the high-water mark (a header past it was
// written by a command the log still holds, so the tables are read to the end of the last one
// that exists on disk).
Status SliceStore::scan() {
  uint32_t hwm = sb_.high_water;
  uint32_t corrupt = 0;
  AlignedBuffer tab(kTableEnd);
  table_.clear();
  uint32_t last_table = table_of(std::min(capacity_, std::max<uint32_t>(hwm, 1)));
  for (uint32_t t = 0; t <= capacity_; t += kTableSpan) {
    MYDFS_TRY(raw_read(t, 0, tab.span()));
    auto* base = reinterpret_cast<unsigned char*>(tab.data());
    bool any = false;
    for (uint32_t s = std::max<uint32_t>(t, 1); s < t + kTableSpan && s <= capacity_; ++s) {
      if (is_table_position(s)) continue;
      DiskHeader h;
      auto p = pick_header(base + header_offset(s, 0), base + header_offset(s, 1), sb_.group_id, h);
      if (p == HeaderParse::EMPTY) continue;
      any = true;
      std::lock_guard g(table_mu_);
      Entry& e = entry_locked(s);
      hwm = std::max(hwm, s + 1);
      if (p == HeaderParse::CORRUPT || h.meta.loc.slot != s) {
        e.corrupt = true;
        ++corrupt;
        spdlog::error("store: slot {} has a corrupt header; it will not be served or reused", s);
        set_extent_locked(e, kPayloadCapacity);  // unknown: counted whole
        continue;
      }
      e.meta = h.meta;
      e.seq = h.seq;
      live_bytes_ += live_len(e.meta);
      // Its payload counts to the end of its last data (a hole counts nothing; what a crash left
      // past the valid bytes counts too, and is given back when the slot is next written).
      set_extent_locked(e, static_cast<uint32_t>(round_block(raw_data_end(s, kPayloadCapacity))));
      if (e.meta.state == SlotState::DELETED) {
        free_.insert(s);
        if (e.extent > 0) {
          e.trim = true;  // cleared by a write; trimmed once released
          open_trims_.push_back(s);
        }
      }
    }
    if (!any && t >= last_table) break;  // past the mark and nothing here: the rest is unused
  }
  std::lock_guard g(table_mu_);
  // Slots below the high-water mark that were never written (allocated, then lost in a crash
  // before their reservation was logged) are free again.
  for (uint32_t s = 1; s < hwm; ++s) {
    if (is_table_position(s)) continue;
    const Entry& e = entry_locked(s);
    if (!e.corrupt && e.meta.state == SlotState::FREE && e.seq == 0) free_.insert(s);
  }
  hwm_ = hwm;
  free_count_ = free_.size();
  used_bytes_ += uint64_t{slots_in(hwm - 1)} * 2 * kHeaderStride;
  if (corrupt) spdlog::warn("store: {} corrupt slot(s) found at open", corrupt);
  spdlog::info("store: opened {} ({} slots, high water {}, {} free, {} bytes used)", opt_.path, slot_capacity(), hwm,
               free_slots(), used_bytes_.load());
  return ok_status();
}

uint32_t SliceStore::free_slots() const {
  uint32_t hwm = hwm_.load();
  uint32_t above = hwm > capacity_ ? 0 : slots_in(capacity_) - slots_in(hwm - 1);
  return above + static_cast<uint32_t>(free_count_.load());
}

uint32_t SliceStore::corrupt_slots() const {
  std::lock_guard g(table_mu_);
  uint32_t n = 0;
  for (const auto& e : table_) n += e.corrupt;
  return n;
}

Superblock SliceStore::superblock() const {
  std::lock_guard g(table_mu_);
  return sb_;
}

uint64_t SliceStore::host_free() const {
  struct statvfs v {};
  std::string where = std::filesystem::path(opt_.path).parent_path().string();
  if (::statvfs(where.empty() ? "." : where.c_str(), &v) != 0) return 0;
  return uint64_t{v.f_bavail} * v.f_frsize;
}

uint64_t SliceStore::free_bytes() const {
  uint64_t used = used_bytes();
  uint64_t host = host_free();
  uint64_t free = host > opt_.reserve_bytes ? host - opt_.reserve_bytes : 0;
  if (opt_.capacity_bytes) free = std::min(free, opt_.capacity_bytes > used ? opt_.capacity_bytes - used : 0);
  return free;
}

Status SliceStore::check_space(uint64_t bytes) const {
  uint64_t free = free_bytes();
  if (bytes > free)
    return make_error(Code::NO_SPACE, fmt::format("store is full ({} bytes free, {} needed)", free, bytes));
  return ok_status();
}

uint64_t SliceStore::trimmable_bytes() const {
  std::lock_guard g(table_mu_);
  uint64_t n = 0;
  for (uint32_t s : to_trim_) n += table_[s].extent;
  return n;
}

Result<Location> SliceStore::allocate() {
  MYDFS_TRY(check_space(kBlock + 2 * kHeaderStride));
  if (free_count_.load() > 0) {
    std::lock_guard g(table_mu_);
    if (!free_.empty()) {
      uint32_t s = *free_.begin();
      free_.erase(free_.begin());
      free_count_ = free_.size();
      Entry& e = table_[s];
      e.allocated = true;
      return Location{sb_.group_id, s, e.meta.loc.gen + 1};
    }
  }
  // Atomic reservation on the high-water mark: each CAS winner owns the slot it moved past
  // (a header table's position is stepped over).
  uint32_t h = hwm_.load();
  uint32_t next;
  do {
    next = is_table_position(h) ? h + 1 : h;
    if (next > capacity_)
      return make_error(Code::NO_SPACE, fmt::format("store is full (all {} slots in use)", slot_capacity()));
  } while (!hwm_.compare_exchange_weak(h, next + 1));
  used_bytes_ += 2 * kHeaderStride;
  uint32_t gen;
  {
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(next);
    e.allocated = true;
    gen = e.meta.loc.gen + 1;
  }
  if (next % kTableSpan == 1 && next > 1) {
    Status st = raw_table(table_of(next));
    if (!st.ok()) {
      release(Location{sb_.group_id, next, gen});
      return st.take_error();
    }
  }
  return Location{sb_.group_id, next, gen};
}

void SliceStore::release(Location loc) {
  std::lock_guard g(table_mu_);
  if (loc.slot == 0 || loc.slot >= table_.size()) return;
  Entry& e = table_[loc.slot];
  if (!e.allocated) return;
  e.allocated = false;
  free_.insert(loc.slot);
  free_count_ = free_.size();
}

Result<SlotMeta> SliceStore::meta(uint32_t slot) const {
  if (slot == 0 || slot > capacity_ || is_table_position(slot))
    return make_error(Code::NOT_FOUND, fmt::format("slot {} is out of range", slot));
  std::lock_guard g(table_mu_);
  if (slot >= table_.size()) {
    SlotMeta never;  // past the table: never used
    never.loc = Location{sb_.group_id, slot, 0};
    return never;
  }
  const Entry& e = table_[slot];
  if (e.corrupt) return make_error(Code::CHECKSUM_MISMATCH, fmt::format("slot {} failed its checksum; not served", slot));
  return e.meta;
}

Result<SlotMeta> SliceStore::resolve(Location loc) const {
  if (loc.group != sb_.group_id)
    return make_error(Code::NOT_FOUND, fmt::format("location {} is not in group {}", loc, sb_.group_id));
  MYDFS_ASSIGN(SlotMeta m, meta(loc.slot));
  if (m.state == SlotState::FREE) return make_error(Code::NOT_FOUND, fmt::format("slot {} is not in use", loc));
  if (m.loc.gen != loc.gen)
    return make_error(Code::STALE, fmt::format("{} is stale: the slot is at gen {}", loc, m.loc.gen));
  if (m.state == SlotState::DELETED) return make_error(Code::DELETED, fmt::format("{} was deleted", loc));
  if (m.state == SlotState::REDIRECT) {
    Error e = make_error(Code::REDIRECT, fmt::format("{} moved to {}", loc, m.redirect));
    e.target = m.redirect;
    return e;
  }
  return m;
}

static bool valid_slot(uint32_t slot, uint32_t capacity) {
  return slot != 0 && slot <= capacity && !is_table_position(slot);
}

Status SliceStore::punch(uint32_t slot, uint64_t from, uint64_t to) {
  if (to <= from) return ok_status();
  Status st = raw_punch(slot, from, to - from);
  if (!st.ok() && st.error().sys_errno == EOPNOTSUPP) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      spdlog::warn("store: the file system under {} cannot punch holes; deleted data keeps its space until reused",
                   opt_.path);
    });
    return st;
  }
  return st;
}

Status SliceStore::write_slice(uint32_t slot, std::span<const std::byte> data) {
  if (!valid_slot(slot, capacity_) || data.size() > kPayloadCapacity)
    return make_error(Code::BAD_REQUEST, "slice write out of range");
  uint32_t had;
  {
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(slot);
    had = e.extent;
    e.trim = false;
    to_trim_.erase(slot);
  }
  // The whole position, not only what the table knows of: a crash can leave bytes the table
  // does not count (a slice written but never logged, a shrink not yet given back), and a
  // block left unwritten below must read as zeros. Punching a hole is cheap where there is one.
  bool holes = true;
  Status st = punch(slot, 0, kPayloadCapacity);
  if (!st.ok()) {
    if (st.error().sys_errno != EOPNOTSUPP) return st;
    holes = false;  // old bytes stay: every block must be written, zeros too
  }
  // The blocks that hold something, in runs; the rest stay holes.
  auto zero_block = [&](size_t at) { return holes && all_zero(data.subspan(at, std::min<size_t>(kBlock, data.size() - at))); };
  size_t end = 0, n = data.size();
  for (size_t at = 0; at < n;) {
    if (zero_block(at)) {
      at += kBlock;
      continue;
    }
    size_t run = at;
    while (run < n && !zero_block(run)) run += kBlock;
    run = std::min(run, n);
    MYDFS_TRY(raw_write(slot, at, data.subspan(at, run - at)));
    end = run;
    at = run;
  }
  if (!holes) end = n;
  {
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(slot);
    set_extent_locked(e, static_cast<uint32_t>(std::max<uint64_t>(round_block(end), holes ? 0 : had)));
  }
  if (change_hook_) change_hook_(slot);
  return ok_status();
}

Status SliceStore::write_payload(uint32_t slot, uint32_t offset, std::span<const std::byte> data) {
  if (!valid_slot(slot, capacity_) || offset > kPayloadCapacity || data.size() > kPayloadCapacity - offset)
    return make_error(Code::BAD_REQUEST, "payload write out of range");
  {
    // Counted before the write: the space is taken as soon as the bytes may be on disk.
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(slot);
    e.trim = false;
    to_trim_.erase(slot);
    if (!data.empty())
      set_extent_locked(e, std::max<uint32_t>(e.extent, static_cast<uint32_t>(round_block(offset + data.size()))));
  }
  Status st = raw_write(slot, offset, data);
  if (change_hook_) change_hook_(slot);
  return st;
}

bool SliceStore::payload_empty(uint32_t slot) const {
  std::lock_guard g(table_mu_);
  return slot >= table_.size() || table_[slot].extent == 0;
}

Status SliceStore::read_payload(uint32_t slot, uint32_t offset, std::span<std::byte> out) const {
  if (!valid_slot(slot, capacity_) || offset > kPayloadCapacity || out.size() > kPayloadCapacity - offset)
    return make_error(Code::BAD_REQUEST, "payload read out of range");
  return raw_read(slot, offset, out);
}

Result<uint64_t> SliceStore::checksum_payload(uint32_t slot, uint32_t len) const {
  AlignedBuffer buf(len);
  MYDFS_TRY(read_payload(slot, 0, buf.span()));
  return xxh64(buf.span());
}

void SliceStore::forget_verified(uint32_t slot) {
  std::lock_guard g(table_mu_);
  if (slot >= 1 && slot < table_.size()) table_[slot].verified = false;
}

Status SliceStore::verify(uint32_t slot) {
  MYDFS_ASSIGN(SlotMeta m, meta(slot));
  if (m.state == SlotState::FREE) return ok_status();  // never used: nothing stored to check
  {
    std::lock_guard g(table_mu_);
    if (entry_locked(slot).verified) return ok_status();
  }
  MYDFS_ASSIGN(uint64_t sum, checksum_payload(slot, m.valid_len));
  std::lock_guard g(table_mu_);
  Entry& e = entry_locked(slot);
  if (e.meta.applied_index != m.applied_index || e.meta.payload_checksum != m.payload_checksum)
    return ok_status();  // changed under us; the writer verified its own bytes
  if (sum != m.payload_checksum) {
    e.corrupt = true;
    spdlog::error("store: slot {} payload checksum mismatch; the slot will not be served", slot);
    return make_error(Code::CHECKSUM_MISMATCH, fmt::format("slot {} payload failed its checksum", slot));
  }
  e.verified = true;
  return ok_status();
}

Status SliceStore::put_header(const SlotMeta& m, PayloadCheck check) {
  uint32_t s = m.loc.slot;
  if (!valid_slot(s, capacity_)) return make_error(Code::BAD_REQUEST, "header for a slot out of range");
  if (m.valid_len > kPayloadCapacity) return make_error(Code::BAD_REQUEST, "valid_len beyond capacity");
  DiskHeader h;
  h.meta = m;
  h.meta.loc.group = sb_.group_id;
  uint32_t extent;
  bool fresh, shrink;
  uint32_t keep = static_cast<uint32_t>(round_block(m.valid_len));
  {
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(s);
    h.seq = e.seq + 1;
    extent = e.extent;
    fresh = e.seq == 0 && !e.allocated;  // replay of a slot above the mark: its header space is new
    // A slice that shrank (same generation, shorter) gives back the blocks past its new end. Not
    // a new generation's header: a member may hold that slice's bytes before its reservation
    // is applied (they travel beside the log).
    shrink = m.state != SlotState::DELETED && e.meta.loc.gen == m.loc.gen && m.valid_len < e.meta.valid_len &&
             keep < extent;
  }
  unsigned char copy[kHeaderCopySize];
  encode_header(h, copy);
  MYDFS_TRY(raw_write(table_of(s), header_offset(s, static_cast<int>(h.seq % 2)), std::as_bytes(std::span(copy))));
  // (The caller holds the slot's lock; a later command that writes past the new end again
  // carries its bytes in the log.)
  if (shrink && !punch(s, keep, extent).ok()) shrink = false;
  {
    std::lock_guard g(table_mu_);
    Entry& e = entry_locked(s);
    bool was_deleted = e.meta.state == SlotState::DELETED;
    live_bytes_ += live_len(h.meta);
    live_bytes_ -= live_len(e.meta);
    e.meta = h.meta;
    e.seq = h.seq;
    e.corrupt = false;
    e.allocated = false;
    if (check != PayloadCheck::KEEP) e.verified = check == PayloadCheck::VERIFIED;
    if (shrink) set_extent_locked(e, std::min(e.extent, keep));
    if (m.state == SlotState::DELETED) {
      free_.insert(s);
      if (!was_deleted && e.extent > 0) {
        e.trim = true;
        to_trim_.insert(s);
      }
    } else {
      free_.erase(s);
      e.trim = false;
      to_trim_.erase(s);
    }
    free_count_ = free_.size();
    if (fresh) used_bytes_ += 2 * kHeaderStride;
    if (s >= hwm_.load()) {
      // A header for a slot above the mark (log replay): move the mark past it.
      uint32_t h2 = hwm_.load();
      while (h2 <= s && !hwm_.compare_exchange_weak(h2, s + 1)) {}
    }
  }
  if (change_hook_) change_hook_(s);
  return ok_status();
}

void SliceStore::release_open_trims() {
  std::lock_guard g(table_mu_);
  for (uint32_t s : open_trims_)
    if (table_[s].trim && table_[s].meta.state == SlotState::DELETED) to_trim_.insert(s);
  open_trims_.clear();
  open_trims_.shrink_to_fit();
}

uint32_t SliceStore::trim(uint32_t max) {
  uint32_t done = 0;
  while (done < max) {
    uint32_t s, extent;
    {
      std::lock_guard g(table_mu_);
      if (to_trim_.empty()) break;
      s = *to_trim_.begin();
      to_trim_.erase(to_trim_.begin());
    }
    // Under the slot's lock (as every writer of its payload): nothing writes it while the hole is
    // punched, and a slot taken out of the free table cannot be handed out meanwhile.
    std::unique_lock lk(locks_.of(s));
    {
      std::lock_guard g(table_mu_);
      Entry& e = table_[s];
      if (!e.trim || e.allocated || e.meta.state != SlotState::DELETED || !free_.count(s)) continue;
      extent = e.extent;
      free_.erase(s);  // not handed out while its hole is punched (free_count_ keeps counting it)
    }
    bool ok = punch(s, 0, extent).ok();
    {
      std::lock_guard g(table_mu_);
      Entry& e = table_[s];
      free_.insert(s);
      free_count_ = free_.size();  // a header written meanwhile recounted without it
      e.trim = false;
      if (ok) set_extent_locked(e, 0);
    }
    if (change_hook_) change_hook_(s);
    ++done;
  }
  return done;
}

Status SliceStore::sync() { return raw_sync(); }

Status SliceStore::checkpoint(uint64_t applied_index) {
  MYDFS_TRY(raw_sync());
  {
    std::lock_guard g(table_mu_);
    sb_.high_water = hwm_.load();
    sb_.checkpoint_index = applied_index;
    MYDFS_TRY(write_superblock_locked());
  }
  return raw_sync();
}

PayloadFile SliceStore::payload_file(uint32_t slot) { return raw_fd(slot); }

}  // namespace mydfs::storage
