// SliceStore: a storage node's slots on local disk, behind one interface with two backends:
//   volume - one sparse file: [superblock + table 0][slot 1]...[slot 1023][table 1024][slot 1025]...
//            (the default)
//   files  - a directory: `superblock` (also table 0) plus one sparse file per position under slots/
// Space is taken in 4 KiB blocks as data arrives and given back to the host file system (holes
// punched) as slices shrink or are deleted; all-zero blocks of a new slice are never written.
// The common logic (slot table, allocation, space accounting, header persistence, recovery scan,
// verification) lives here; a backend only moves bytes (raw_read/raw_write/raw_punch/raw_sync/
// raw_fd).
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
// The most positions a store of the backend can address: a volume stays under 16 TiB (the
// largest file ext4 holds), the files backend under 2^30 files.
constexpr uint32_t max_positions(Backend b) { return b == Backend::VOLUME ? (1u << 22) - 1 : (1u << 30) - 1; }

// What put_header() knows about the payload behind the header it writes.
enum class PayloadCheck {
  KEEP,        // payload unchanged: keep whatever was known
  VERIFIED,    // checksum computed from bytes known good (just written from a checked buffer)
  UNVERIFIED,  // checksum computed from disk bytes not checked since open
};

struct StoreOptions {
  std::string path;                 // volume: the file; files: the directory
  Backend backend = Backend::VOLUME;
  // Positions 1..capacity_slots may be used (every 1024th is a header table, the rest are slots).
  // This is address space, not disk: a store can grow but never shrink.
  uint32_t capacity_slots = 256;
  uint64_t capacity_bytes = 0;      // most bytes the store may take on disk; 0: no limit but the disk's
  uint64_t reserve_bytes = 0;       // free space of the host file system the store leaves alone
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

  uint32_t capacity() const { return capacity_; }   // highest position
  uint32_t slot_capacity() const { return slots_in(capacity_); }
  uint32_t group() const { return sb_.group_id; }
  uint32_t high_water() const { return hwm_.load(); }
  uint32_t free_slots() const;    // never-used slots above the high-water mark + DELETED slots
  uint32_t used_slots() const { return slot_capacity() - free_slots(); }

  // Space, in bytes. used: what the slots may hold on disk (4 KiB blocks up to each payload's
  // last written block, plus 256 bytes of header per slot ever used); an upper bound of what the
  // host file system gives the store. free: what new data may still take: the configured
  // capacity less used, and never more than the host file system has free less the reserve.
  uint64_t used_bytes() const { return used_bytes_.load(); }
  // The valid bytes of every slice in use (LIVE, PREPARED, REDIRECT): used - live is the space
  // lost to 4 KiB rounding, deleted slices not yet given back, and headers.
  uint64_t live_bytes() const { return live_bytes_.load(); }
  uint64_t free_bytes() const;
  uint64_t capacity_bytes() const { return used_bytes() + free_bytes(); }
  // NO_SPACE unless `bytes` more fit (checked before a write is logged; never at apply).
  Status check_space(uint64_t bytes) const;
  // Used bytes held by DELETED slots not yet given back (trim() gives them back).
  uint64_t trimmable_bytes() const;
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

  // A whole new slice: the slot's old bytes are given back, then the data's blocks written,
  // all-zero 4 KiB blocks left as holes.
  Status write_slice(uint32_t slot, std::span<const std::byte> data);
  Status write_payload(uint32_t slot, uint32_t offset, std::span<const std::byte> data);
  // True if the payload holds no data (never written since it was last emptied).
  bool payload_empty(uint32_t slot) const;
  // Empties the payload (as write_slice of nothing): it reads as zeros after.
  Status clear_payload(uint32_t slot) { return write_slice(slot, {}); }
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
  // Gives the payloads of deleted slots back to the host file system (at most `max` slots;
  // returns how many). A slot written since its delete (a newer slice's bytes arriving before
  // its reservation) is left alone. Safe at any time, with reads and writes going on.
  uint32_t trim(uint32_t max = UINT32_MAX);
  // Slots found DELETED at open whose payloads hold data (a delete whose trim a crash cut off)
  // are not trimmed until this is called: until then a log entry from before the crash may still
  // name bytes already written there for the slot's next generation. The owner calls it once
  // every such entry is applied (Replicator::open_log_end()).
  void release_open_trims();

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
  // Checks that what is on disk holds every position below high_water (a truncated volume is
  // refused).
  virtual Status raw_check(uint32_t high_water) const = 0;
  virtual Status raw_grow(uint32_t capacity) = 0;
  // Makes the header table at position `table` exist on disk (before its first slot is used).
  virtual Status raw_table(uint32_t table) = 0;
  virtual bool raw_exists() const = 0;
  virtual Status raw_read(uint32_t slot, uint64_t off, std::span<std::byte> out) const = 0;
  virtual Status raw_write(uint32_t slot, uint64_t off, std::span<const std::byte> in) = 0;
  // Gives [off, off+len) of a position back to the host file system; it reads as zeros after.
  virtual Status raw_punch(uint32_t slot, uint64_t off, uint64_t len) = 0;
  virtual Status raw_sync() = 0;
  // Where the data of [0, limit) of a position ends: the end of its last range that is not a
  // hole (0: all hole). Backends that cannot tell answer limit.
  virtual uint64_t raw_data_end(uint32_t slot, uint64_t limit) = 0;
  // The host file system's free bytes where the store lives (statvfs f_bavail).
  uint64_t host_free() const;
  virtual PayloadFile raw_fd(uint32_t slot) = 0;

  StoreOptions opt_;

 private:
  struct Entry {
    SlotMeta meta;
    uint64_t seq = 0;        // seq of the header copy on disk
    uint32_t extent = 0;     // payload bytes that may hold data on disk: 4 KiB blocks from 0
    bool corrupt = false;    // header or payload failed verification: never served, never reused
    bool verified = false;   // payload checked against meta.payload_checksum since open
    bool allocated = false;  // handed out by allocate(), header not yet written
    bool trim = false;       // DELETED and not written since: its payload may be given back
  };
  Status init();
  Status load_superblock(bool created);
  Status write_superblock_locked();
  Status scan();
  // The entry of a slot, the table grown to hold it (entries past the table are never-used slots).
  Entry& entry_locked(uint32_t slot);
  void set_extent_locked(Entry& e, uint32_t extent);
  Status punch(uint32_t slot, uint64_t from, uint64_t to);

  Superblock sb_;                       // guarded by table_mu_
  uint32_t capacity_ = 0;               // fixed after open
  mutable std::mutex table_mu_;         // guards table_, free_, sb_
  std::vector<Entry> table_;            // index = position; grown as slots come into use
  std::atomic<uint64_t> used_bytes_{0};
  std::atomic<uint64_t> live_bytes_{0};
  std::set<uint32_t> to_trim_;          // DELETED slots whose payload may still take space
  std::vector<uint32_t> open_trims_;    // such slots found at open, held back (release_open_trims)
  std::function<void(uint32_t)> change_hook_;
  std::set<uint32_t> free_;             // DELETED slots ready for reuse, lowest first
  std::atomic<size_t> free_count_{0};   // free_.size(), readable without the lock
  std::atomic<uint32_t> hwm_{1};        // first never-used slot; advanced by CAS in allocate()
  LockPool locks_;
};

}  // namespace mydfs::storage
