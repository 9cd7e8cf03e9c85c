// SliceStore: a storage node's slots on local disk, behind one interface with two backends:
//   volume - one pre-sized file: [superblock 4 MiB][slot 1][slot 2]...   (the default)
//   files  - a directory: `superblock` plus one file per slot under slots/
// The common logic (slot table, allocation, header persistence, recovery scan, verification)
// lives here; a backend only moves bytes (raw_read/raw_write/raw_sync/raw_fd).
//
// Concurrency: every public method is thread-safe. The slot table is guarded by table_mu_ for
// short copies only. Callers that need a sequence of operations on one slot to be atomic
// (the group state machine, readers) hold that slot's lock from locks() around the sequence.
#pragma once
#include <functional>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "proto/messages.h"
#include "storage/slot_format.h"

namespace mydfs::storage {

using proto::SlotMeta;
using proto::SlotState;

enum class Backend : uint16_t { VOLUME = 1, FILES = 2 };
Result<Backend> parse_backend(const std::string& s);

// What put_header() knows about the payload behind the header it writes.
enum class PayloadCheck {
  KEEP,        // payload unchanged: keep whatever was known
  VERIFIED,    // checksum computed from bytes known good (just written from a checked buffer)
  UNVERIFIED,  // checksum computed from disk bytes not checked since open
};

struct StoreOptions {
  std::string path;                 // volume: the file; files: the directory
  Backend backend = Backend::VOLUME;
  uint32_t capacity_slots = 256;    // usable slots; a store can grow but never shrink
  uint64_t cluster_id = 0;
  uint32_t group_id = 0;
  uint32_t node_id = 0;
};

// Striped reader/writer locks keyed by slot number: a slot's identity on this node is its number
// (gen changes on reuse but the bytes it guards do not move), never a byte offset.
class LockPool {
 public:
  std::shared_mutex& of(uint32_t slot) { return locks_[(slot * 2654435761u) % locks_.size()]; }

 private:
  std::array<std::shared_mutex, 256> locks_;
};

// Where a slot's payload bytes sit in an open file, for sendfile.
struct PayloadFile {
  int fd = -1;
  uint64_t offset = 0;
  std::shared_ptr<const void> keep;  // keeps fd open while held (a backend may close idle files)
};

class SliceStore {
 public:
  // Opens the store at opt.path, creating it if absent; rebuilds the slot table from the headers.
  static Result<std::unique_ptr<SliceStore>> open(const StoreOptions& opt);
  virtual ~SliceStore() = default;

  uint32_t capacity() const { return capacity_; }
  uint32_t group() const { return sb_.group_id; }
  uint32_t high_water() const { return hwm_.load(); }
  uint32_t free_slots() const;    // never-used slots above the high-water mark + DELETED slots
  uint32_t used_slots() const { return capacity_ - free_slots(); }
  uint32_t corrupt_slots() const;
  Superblock superblock() const;

  // Hands out a slot no one else holds: a DELETED slot (lowest first) with gen + 1, else the
  // next slot at the high-water mark (gen 1). NO_SPACE at capacity. In memory only: the caller
  // persists it by put_header(), or gives it back with release().
  Result<Location> allocate();
  void release(Location loc);

  // The slot's current header. NOT_FOUND out of range, CHECKSUM_MISMATCH if the slot failed
  // verification (header at open, or payload since).
  Result<SlotMeta> meta(uint32_t slot) const;
  // meta() of loc.slot checked against loc: NOT_FOUND (never used / not this group), STALE (gen
  // differs), DELETED, REDIRECT (error.target = where it went), CHECKSUM_MISMATCH.
  Result<SlotMeta> resolve(Location loc) const;

  Status write_payload(uint32_t slot, uint32_t offset, std::span<const std::byte> data);
  Status read_payload(uint32_t slot, uint32_t offset, std::span<std::byte> out) const;
  Result<uint64_t> checksum_payload(uint32_t slot, uint32_t len) const;
  // Checks the payload against the header checksum once per open (then remembered until the
  // next put_header); CHECKSUM_MISMATCH marks the slot corrupt so it is never served.
  Status verify(uint32_t slot);
  // The payload is to be checked again before it is next served (it may differ from the header).
  void forget_verified(uint32_t slot);
  // Persists a header (alternating copies) and updates the table and the free table.
  Status put_header(const SlotMeta& m, PayloadCheck check);
  Status sync();                                // makes every write so far durable
  Status checkpoint(uint64_t applied_index);    // sync + superblock {high water, index}
  PayloadFile payload_file(uint32_t slot);

  LockPool& locks() { return locks_; }

  // Called with the slot number after every write_payload and put_header (the hot-slice cache
  // drops its copy). Set once, before the store is shared between threads.
  void set_change_hook(std::function<void(uint32_t slot)> hook) { change_hook_ = std::move(hook); }

 protected:
  explicit SliceStore(StoreOptions opt) : opt_(std::move(opt)) {}
  // Backend I/O. Slot 0 is the superblock region. Reads past what was ever written return zeros.
  // create: make a new store under a temporary name; raw_commit_create() moves it into place
  // once its superblock is durable, so a crash during creation never leaves a half-made store.
  virtual Status raw_open(bool create, uint32_t capacity) = 0;
  virtual Status raw_commit_create() = 0;
  // Checks that what is on disk can hold `capacity` slots (a truncated volume is refused).
  virtual Status raw_check(uint32_t capacity) const = 0;
  virtual Status raw_grow(uint32_t capacity) = 0;
  virtual bool raw_exists() const = 0;
  virtual Status raw_read(uint32_t slot, uint64_t off, std::span<std::byte> out) const = 0;
  virtual Status raw_write(uint32_t slot, uint64_t off, std::span<const std::byte> in) = 0;
  virtual Status raw_sync() = 0;
  virtual PayloadFile raw_fd(uint32_t slot) = 0;

  StoreOptions opt_;

 private:
  struct Entry {
    SlotMeta meta;
    uint64_t seq = 0;        // seq of the header copy on disk
    bool corrupt = false;    // header or payload failed verification: never served, never reused
    bool verified = false;   // payload checked against meta.payload_checksum since open
    bool allocated = false;  // handed out by allocate(), header not yet written
  };
  Status init();
  Status load_superblock(bool created);
  Status write_superblock_locked();
  Status scan();

  Superblock sb_;                       // guarded by table_mu_
  uint32_t capacity_ = 0;               // fixed after open
  mutable std::mutex table_mu_;         // guards table_, free_, sb_
  std::vector<Entry> table_;            // index = slot number; [0] unused
  std::function<void(uint32_t)> change_hook_;
  std::set<uint32_t> free_;             // DELETED slots ready for reuse, lowest first
  std::atomic<size_t> free_count_{0};   // free_.size(), readable without the lock
  std::atomic<uint32_t> hwm_{1};        // first never-used slot; advanced by CAS in allocate()
  LockPool locks_;
};

}  // namespace mydfs::storage
