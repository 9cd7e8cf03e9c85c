#include "storage/slice_store.h"

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
  if (opt.capacity_slots > (1u << 30))
    return make_error(Code::BAD_REQUEST, "capacity too large (at most 2^30 slots)");
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
    spdlog::info("store: growing from {} to {} slots", sb_.capacity_slots, opt_.capacity_slots);
    MYDFS_TRY(raw_grow(opt_.capacity_slots));
    sb_.capacity_slots = opt_.capacity_slots;
    MYDFS_TRY(write_superblock_locked());
  } else if (opt_.capacity_slots < sb_.capacity_slots) {
    spdlog::warn("store: configured capacity {} is below the store's {}; keeping {} (stores never shrink)",
                 opt_.capacity_slots, sb_.capacity_slots, sb_.capacity_slots);
  }
  capacity_ = sb_.capacity_slots;
  table_.assign(capacity_ + 1, Entry{});
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
  else return make_error(Code::CORRUPT, fmt::format("'{}' is not a mydfs store or its superblock is corrupt", opt_.path));
  if (sb_.backend != static_cast<uint16_t>(opt_.backend))
    return make_error(Code::BAD_REQUEST, fmt::format("'{}' holds a store of another backend", opt_.path));
  if (sb_.group_id != opt_.group_id || sb_.node_id != opt_.node_id || sb_.cluster_id != opt_.cluster_id)
    return make_error(Code::BAD_REQUEST,
                      fmt::format("'{}' belongs to cluster {} group {} node {}, not cluster {} group {} node {}",
                                  opt_.path, sb_.cluster_id, sb_.group_id, sb_.node_id, opt_.cluster_id,
                                  opt_.group_id, opt_.node_id));
  if (sb_.capacity_slots == 0 || sb_.high_water < 1 || sb_.high_water > sb_.capacity_slots + 1)
    return make_error(Code::CORRUPT, fmt::format("'{}': superblock values out of range", opt_.path));
  return raw_check(sb_.capacity_slots);
}

Status SliceStore::write_superblock_locked() {
  sb_.seq++;
  unsigned char copy[kSuperCopySize];
  encode_superblock(sb_, copy);
  return raw_write(0, kSuperCopyOffset[sb_.seq % 2], std::as_bytes(std::span(copy)));
}

Status SliceStore::scan() {
  uint32_t hwm = sb_.high_water;
  uint32_t corrupt = 0;
  AlignedBuffer block(kHeaderBlock);
  for (uint32_t s = 1; s <= capacity_; ++s) {
    MYDFS_TRY(raw_read(s, 0, block.span()));
    DiskHeader h;
    auto p = read_header_block(reinterpret_cast<unsigned char*>(block.data()), sb_.group_id, h);
    Entry& e = table_[s];
    e.meta.loc = Location{sb_.group_id, s, 0};
    if (p == HeaderParse::EMPTY) continue;
    hwm = std::max(hwm, s + 1);
    if (p == HeaderParse::CORRUPT || h.meta.loc.slot != s) {
      e.corrupt = true;
      ++corrupt;
      spdlog::error("store: slot {} has a corrupt header; it will not be served or reused", s);
      continue;
    }
    e.meta = h.meta;
    e.seq = h.seq;
    if (e.meta.state == SlotState::DELETED) free_.insert(s);
  }
  // Slots below the high-water mark that were never written (allocated, then lost in a crash
  // before their reservation was logged) are free again.
  for (uint32_t s = 1; s < hwm; ++s) {
    const Entry& e = table_[s];
    if (!e.corrupt && e.meta.state == SlotState::FREE && e.seq == 0) free_.insert(s);
  }
  hwm_ = hwm;
  free_count_ = free_.size();
  if (corrupt) spdlog::warn("store: {} corrupt slot(s) found at open", corrupt);
  spdlog::info("store: opened {} ({} slots, high water {}, {} free)", opt_.path, capacity_, hwm, free_slots());
  return ok_status();
}

uint32_t SliceStore::free_slots() const {
  uint32_t hwm = hwm_.load();
  return (capacity_ + 1 - hwm) + static_cast<uint32_t>(free_count_.load());
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

Result<Location> SliceStore::allocate() {
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
  // Atomic reservation on the high-water mark: each CAS winner owns the slot it moved past.
  uint32_t h = hwm_.load();
  do {
    if (h > capacity_) return make_error(Code::NO_SPACE, fmt::format("store is full ({} slots)", capacity_));
  } while (!hwm_.compare_exchange_weak(h, h + 1));
  std::lock_guard g(table_mu_);
  table_[h].allocated = true;
  return Location{sb_.group_id, h, table_[h].meta.loc.gen + 1};
}

void SliceStore::release(Location loc) {
  std::lock_guard g(table_mu_);
  if (loc.slot == 0 || loc.slot > capacity_) return;
  Entry& e = table_[loc.slot];
  if (!e.allocated) return;
  e.allocated = false;
  free_.insert(loc.slot);
  free_count_ = free_.size();
}

Result<SlotMeta> SliceStore::meta(uint32_t slot) const {
  if (slot == 0 || slot > capacity_)
    return make_error(Code::NOT_FOUND, fmt::format("slot {} is out of range", slot));
  std::lock_guard g(table_mu_);
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

Status SliceStore::write_payload(uint32_t slot, uint32_t offset, std::span<const std::byte> data) {
  if (slot == 0 || slot > capacity_ || offset > kPayloadCapacity || data.size() > kPayloadCapacity - offset)
    return make_error(Code::BAD_REQUEST, "payload write out of range");
  Status st = raw_write(slot, kHeaderBlock + offset, data);
  if (change_hook_) change_hook_(slot);
  return st;
}

Status SliceStore::read_payload(uint32_t slot, uint32_t offset, std::span<std::byte> out) const {
  if (slot == 0 || slot > capacity_ || offset > kPayloadCapacity || out.size() > kPayloadCapacity - offset)
    return make_error(Code::BAD_REQUEST, "payload read out of range");
  return raw_read(slot, kHeaderBlock + offset, out);
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
  {
    std::lock_guard g(table_mu_);
    if (table_[slot].verified) return ok_status();
  }
  MYDFS_ASSIGN(uint64_t sum, checksum_payload(slot, m.valid_len));
  std::lock_guard g(table_mu_);
  Entry& e = table_[slot];
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
  if (s == 0 || s > capacity_) return make_error(Code::BAD_REQUEST, "header for a slot out of range");
  if (m.valid_len > kPayloadCapacity) return make_error(Code::BAD_REQUEST, "valid_len beyond capacity");
  DiskHeader h;
  h.meta = m;
  h.meta.loc.group = sb_.group_id;
  {
    std::lock_guard g(table_mu_);
    h.seq = table_[s].seq + 1;
  }
  unsigned char copy[kHeaderCopySize];
  encode_header(h, copy);
  MYDFS_TRY(raw_write(s, kHeaderCopyOffset[h.seq % 2], std::as_bytes(std::span(copy))));
  {
    std::lock_guard g(table_mu_);
    Entry& e = table_[s];
    e.meta = h.meta;
    e.seq = h.seq;
    e.corrupt = false;
    e.allocated = false;
    if (check != PayloadCheck::KEEP) e.verified = check == PayloadCheck::VERIFIED;
    if (m.state == SlotState::DELETED) free_.insert(s);
    else free_.erase(s);
    free_count_ = free_.size();
    if (s >= hwm_.load()) {
      // A header for a slot above the mark (log replay): move the mark past it.
      uint32_t h2 = hwm_.load();
      while (h2 <= s && !hwm_.compare_exchange_weak(h2, s + 1)) {}
    }
  }
  if (change_hook_) change_hook_(s);
  return ok_status();
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

PayloadFile SliceStore::payload_file(uint32_t slot) {
  PayloadFile f = raw_fd(slot);
  f.offset += kHeaderBlock;
  return f;
}

}  // namespace mydfs::storage
