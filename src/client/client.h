// The client library: paths to inodes through the tracker, files as chains of slices on the
// storage groups (docs/ARCHITECTURE.md "Client"). Uploads allocate runs from the tracker, reserve slots on each group,
// write the slices in parallel (their next pointers are known from the reservation) and publish
// the head with a compare-and-set commit; reads walk the chain one round trip per change of
// group and fetch the slices in parallel, checking every byte against its checksum.
//
// Edits (append, write-at, splice, truncate) are atomic: each happens entirely or not at all, and
// concurrent edits of one file end as some serial order of them. One slice: one conditional
// command. Appends: new slices written unreachable, then one command on the old tail fills it
// and links them. Anything that replaces slices (a write across slices, a splice, growing a
// slice past its capacity): a transaction coordinated by this client (two-phase commit, the
// primary participant records the decision; see docs/ARCHITECTURE.md "Edits").
//
// A blocking API over an internal io_context thread (the CLI, the FUSE mount and the tests call
// it; each call runs as a coroutine on that thread).
#pragma once
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "proto/fs_types.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"

namespace mydfs::client {

struct ClientOptions {
  std::string tracker = "127.0.0.1:7000";
  uint32_t slices_in_flight = 8;                 // parallel slice transfers per file
  std::chrono::milliseconds call_timeout{10000};
  std::chrono::milliseconds connect_timeout{2000};
  // Most bytes put into one new slice (at most the slot's payload capacity). Smaller values make
  // longer chains: tests use them to exercise many slices and groups with little data.
  uint32_t slice_bytes = 0;                      // 0 = the payload capacity
  uint32_t edit_attempts = 40;                   // tries of a conflicting edit before EAGAIN
  // How long a call to a storage group keeps looking for the group's leader (a leader that died
  // is replaced within about a second; the tracker learns of it with the next heartbeat).
  std::chrono::milliseconds failover_timeout{20000};
  // Called by a transaction after every participant prepared and before the decision (tests
  // use it to crash a client or a node at exactly that point).
  std::function<void(uint64_t txid)> after_prepare;
};

// A file-system error (FS_ERROR) told as "what: strerror"; any other error as it is.
Error fs_context(Error e, std::string_view what);
// Codes that mean "the file changed under this operation": walk again and retry.
bool retryable(Code c);
// Codes with which a storage group refuses a command before it is logged: the command did not
// happen and never will. Any other failure of a conditional command (a lost answer: UNAVAILABLE,
// TIMEOUT; a server fault) may have applied it, or may still apply it.
bool refused(Code c);
Timespec now_timespec();
// What a slice takes on each member's disk, as Attr::blocks counts it: its length in 4 KiB
// blocks, none for a slice of zeros (a hole).
uint64_t blocks_of(const proto::SlotMeta& m);
// The same for new bytes about to become a slice.
uint64_t blocks_of(std::span<const std::byte> bytes);

struct SliceInfo {
  proto::SlotMeta meta;
  uint64_t offset = 0;  // of the slice's first byte in the file
};

// Where the bytes of an upload come from: read(offset, out) fills out (may be short at the end).
using Source = std::function<Result<size_t>(uint64_t offset, std::span<std::byte> out)>;
// Where the bytes of a download go.
using Sink = std::function<Status(uint64_t offset, std::span<const std::byte> data)>;
// Progress: bytes done, bytes in all.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

class Client;

// Calls to one storage group's leader, whoever it is: NOT_LEADER answers and dead leaders send
// the call on to the member that leads now. A call is repeated only where that cannot apply it
// twice: when it was refused (NOT_LEADER), never sent (no connection), or is harmless to repeat
// (reads, slice writes, transaction steps, unconditional patches). A conditional command whose
// answer was lost fails with its transport error: it may or may not have happened.
class GroupChannel {
 public:
  GroupChannel(Client* c, uint32_t group) : client_(c), group_(group) {}
  template <typename Req>
  boost::asio::awaitable<Result<typename Req::Response>> call(const Req& req, proto::Bulk bulk = {},
                                                              AlignedBuffer* bulk_out = nullptr);
 private:
  Client* client_;
  uint32_t group_;
};

class Client {
 public:
  explicit Client(ClientOptions opt);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Namespace, by path ("/a/b"; symlinks are not followed).
  Result<Attr> stat(const std::string& path);
  Result<Attr> lookup(uint64_t parent, const std::string& name);
  Result<std::vector<DirEntry>> list(uint64_t dir);
  Result<Attr> mkdir(const std::string& path, uint32_t mode, bool parents);
  Status remove(const std::string& path, bool recursive);
  Status rename(const std::string& from, const std::string& to);
  Result<proto::NsReply> ns_write(NsOp op);
  // Frees the slots of chains the tracker reported released (no file refers to them), in the
  // background: it returns at once, and the chains are deleted (several at a time) on the
  // client's thread. A chain a crash leaves undeleted is unreachable garbage (the collector's).
  void release(std::vector<Location> heads);
  // Returns once every chain released so far is freed (or its freeing failed). The destructor
  // waits for them too.
  void wait_frees();

  // Data. put replaces the file's whole content (creating the file if needed); the new chain
  // becomes visible at the commit, all at once, or not at all.
  Result<Attr> put(const std::string& path, uint64_t size, const Source& src, const Progress& progress = {});
  // Returns the bytes read. A concurrent edit seen during the read restarts it (the sink may be
  // called again for an offset with the newer bytes).
  Result<uint64_t> get(const Attr& file, const Sink& sink, const Progress& progress = {});

  // Edits by path; each returns the file's attributes after the edit (size and mtime published).
  Result<Attr> append(const std::string& path, uint64_t size, const Source& src, const Progress& progress = {});
  // Overwrites [offset, offset+size); past the end the file grows (a gap reads as zeros).
  Result<Attr> write_at(const std::string& path, uint64_t offset, std::string_view data);
  // Replaces [offset, offset+del_len) by data of any length (offset <= file size).
  Result<Attr> splice(const std::string& path, uint64_t offset, uint64_t del_len, std::string_view data);
  Result<Attr> truncate(const std::string& path, uint64_t size);
  // The file's chain: every slice with its location, state, valid_len and offset.
  Result<std::vector<SliceInfo>> chain(const Attr& file);
  // Compaction: merges runs of adjacent slices of the file whose bytes fit in one slice (slices
  // of zeros, which take no space, are left alone), one run per transaction, as a splice that
  // puts the same bytes back (the first old slice redirects to the new one). Online: reads and
  // edits of the file go on, a merge that meets a concurrent edit walks again. The content,
  // size and mtime stay. At most max_merges merges, `pause` between them (rate limit).
  struct CompactResult {
    uint64_t slices_before = 0, slices_after = 0, merges = 0;
  };
  Result<CompactResult> compact(const std::string& path, uint32_t max_merges = UINT32_MAX,
                                std::chrono::milliseconds pause = std::chrono::milliseconds(0));

  // By inode (the mount works on inodes, not paths).
  Result<proto::NsReply> ns_read(proto::NsReadReq req);
  // Returns once every namespace change answered so far is in the tracker's synced log.
  Status sync_namespace();
  Result<Attr> getattr(uint64_t ino);
  // Up to len bytes of the file from off (fewer at its end). The chain map is cached per head and
  // version; a slice that changed since it was walked makes the read walk again and start over.
  Result<std::string> pread(const Attr& file, uint64_t off, uint32_t len);
  Result<Attr> write_ino(uint64_t ino, uint64_t offset, std::string_view data);
  Result<Attr> truncate_ino(uint64_t ino, uint64_t size);
  // Extends the file to size if it is shorter (fallocate); never shrinks it.
  Result<Attr> grow_ino(uint64_t ino, uint64_t size);

 private:
  template <typename T>
  Result<T> run(boost::asio::awaitable<Result<T>> a);
  boost::asio::awaitable<Result<proto::NsReply>> ns_read_async(proto::NsReadReq req);
  boost::asio::awaitable<Result<proto::NsReply>> ns_write_async(NsOp op);
  boost::asio::awaitable<Result<std::string>> leader_of(uint32_t group, bool refresh);
  boost::asio::awaitable<Result<std::shared_ptr<GroupChannel>>> storage_for(uint32_t group);
  friend class GroupChannel;
  template <typename Req>
  boost::asio::awaitable<Result<typename Req::Response>> group_call(uint32_t group, const Req& req, proto::Bulk bulk,
                                                                    AlignedBuffer* bulk_out);
  // The member to try after `failed` (round robin over the group's members), or "".
  std::string next_member(uint32_t group, const std::string& failed);
  boost::asio::awaitable<Result<Attr>> resolve_async(std::string path);
  boost::asio::awaitable<Result<Attr>> put_async(std::string path, uint64_t size, const Source& src, const Progress& progress);
  boost::asio::awaitable<Result<std::vector<SliceInfo>>> chain_async(Attr file);
  boost::asio::awaitable<Result<uint64_t>> get_async(Attr file, const Sink& sink, const Progress& progress);
  boost::asio::awaitable<Result<uint64_t>> read_chain_once(const std::vector<SliceInfo>& slices, const Sink& sink,
                                                           const Progress& progress);
  std::shared_ptr<proto::RpcClient> connect(const std::string& address);

  // Edits (edits.cc).
  // A file as an edit sees it: attributes and the chain walked from its head.
  struct FileView {
    Attr attr;
    std::vector<SliceInfo> slices;
    uint64_t size = 0;  // sum of the slices' valid_len: the content's true length
    // What the edit did, for publishing without a second walk:
    int64_t delta = 0;               // change of size
    int64_t delta_blocks = 0;        // change of the bytes the chain takes on disk (Attr::blocks)
    std::optional<Location> head;    // the head slot was replaced by this one
    struct Retire {                  // a slot that now redirects: link its predecessor past it
      Location pred;
      uint64_t pred_applied = 0;
      Location old, now;
    };
    std::optional<Retire> retire;
    std::optional<std::pair<size_t, proto::SlotMeta>> patched;  // only slice i changed, to this
    std::optional<Attr> published;   // the edit published itself (a file's first chain)
    std::optional<Timespec> mtime;   // publish this mtime, not now (an edit that changes no byte)
  };
  // Bytes to write: size bytes from src.
  struct Span {
    uint64_t size = 0;
    Source src;
    uint64_t zeros = 0;  // the first `zeros` bytes are known to be zero (a gap): they take no space
  };
  using EditStep = std::function<boost::asio::awaitable<Status>(FileView&)>;
  uint32_t slice_bytes() const;
  boost::asio::awaitable<Result<FileView>> view_async(uint64_t ino);
  boost::asio::awaitable<Result<Attr>> edit_async(std::string path, EditStep step);
  boost::asio::awaitable<Result<Attr>> edit_ino_async(Attr a, EditStep step);
  boost::asio::awaitable<Result<std::string>> pread_async(Attr file, uint64_t off, uint32_t len);
  boost::asio::awaitable<Result<Attr>> getattr_async(uint64_t ino);
  Result<Attr> resize_ino(uint64_t ino, uint64_t size, bool grow_only);
  // A read found the chain changed: forget the cached map, back off, read the attributes again.
  boost::asio::awaitable<Result<Attr>> reread_after_change(uint64_t ino, uint32_t attempt);
  boost::asio::awaitable<Result<Attr>> publish_async(uint64_t ino, std::optional<Timespec> mtime = std::nullopt);
  boost::asio::awaitable<Result<Attr>> publish_fast(const FileView& v);
  boost::asio::awaitable<Status> write_step(FileView& v, uint64_t off, const Span& in, const Progress& progress);
  boost::asio::awaitable<Status> write_in_tail(FileView& v, uint64_t off, const Span& data, const Progress& progress);
  // A transaction (transaction.h) over TxChannels, the calls to the participants' leaders.
  class TxChannels;
  boost::asio::awaitable<Status> replace_range(FileView& v, uint64_t off, uint64_t del, const Span& data);
  boost::asio::awaitable<Status> truncate_step(FileView& v, uint64_t size);
  // *blocks (if given): what the new slices take on disk (blocks_of each).
  boost::asio::awaitable<Result<std::vector<Location>>> write_new_slices(uint64_t ino, const Span& data, Location last_next,
                                                                       const Progress& progress, uint64_t* blocks = nullptr);
  boost::asio::awaitable<Result<std::vector<Location>>> write_new_slices_once(uint64_t ino, const Span& data,
                                                                            Location last_next, const Progress& progress,
                                                                            uint64_t* blocks);
  boost::asio::awaitable<Result<std::string>> read_range(const SliceInfo& s, uint32_t off, uint32_t len);
  boost::asio::awaitable<void> discard(std::vector<Location> slots);
  boost::asio::awaitable<void> free_chains(std::vector<Location> heads);
  // On io_: queue chains to free, and start the background freeing if it is not running.
  void free_later(std::vector<Location> heads);
  boost::asio::awaitable<void> drain_frees();
  boost::asio::awaitable<void> backoff(uint32_t attempt);

  ClientOptions opt_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  // Touched only on io_ (the coroutines' executor).
  std::shared_ptr<proto::RpcClient> tracker_;
  std::map<std::string, std::shared_ptr<proto::RpcClient>> storage_;  // by address
  std::map<uint32_t, std::string> leaders_;                            // group -> leader address
  std::map<uint32_t, std::vector<std::string>> members_;               // group -> member addresses
  std::deque<Location> frees_;  // released chains' heads still to free
  bool freeing_ = false;        // drain_frees() is running
  struct CachedChain {
    Location head;
    uint64_t version = 0;  // of the inode when the chain was walked
    std::vector<SliceInfo> slices;
  };
  std::map<uint64_t, CachedChain> chains_;  // by inode: the chain map of files read recently
};

// Commands a retry cannot apply twice (or whose repetition is harmless).
template <typename Req>
bool repeatable(const Req&) {
  using namespace proto;
  return std::is_same_v<Req, ReadReq> || std::is_same_v<Req, StatReq> || std::is_same_v<Req, WalkReq> ||
         std::is_same_v<Req, InfoReq> || std::is_same_v<Req, WriteSlotReq> || std::is_same_v<Req, ReserveReq> ||
         std::is_same_v<Req, TxDecideReq> || std::is_same_v<Req, TxFinishReq> || std::is_same_v<Req, TxForgetReq> ||
         std::is_same_v<Req, DeleteReq>;
}
inline bool repeatable(const proto::PatchReq& p) { return p.expect_applied == 0 && p.flags == 0; }

template <typename Req>
boost::asio::awaitable<Result<typename Req::Response>> GroupChannel::call(const Req& req, proto::Bulk bulk,
                                                                          AlignedBuffer* bulk_out) {
  return client_->group_call(group_, req, std::move(bulk), bulk_out);
}

template <typename Req>
boost::asio::awaitable<Result<typename Req::Response>> Client::group_call(uint32_t group, const Req& req,
                                                                          proto::Bulk bulk, AlignedBuffer* bulk_out) {
  namespace asio = boost::asio;
  auto deadline = std::chrono::steady_clock::now() + opt_.failover_timeout;
  std::string addr;
  for (uint32_t attempt = 0;; ++attempt) {
    Error err;
    if (addr.empty()) {
      auto a = co_await leader_of(group, attempt > 0);
      if (a.ok()) addr = *a;
      else err = a.take_error();
    }
    if (!addr.empty()) {
      auto& slot = storage_[addr];
      if (!slot) slot = connect(addr);
      auto c = slot;
      Status conn = co_await c->connect();
      if (!conn.ok()) {
        err = conn.take_error();  // nothing was sent: try another member
        addr = next_member(group, addr);
      } else {
        auto r = co_await c->call(req, bulk, bulk_out);
        if (r.ok()) {
          leaders_[group] = addr;
          co_return r;
        }
        err = r.take_error();
        if (err.code == Code::NOT_LEADER) {
          addr = !err.hint.empty() && err.hint != addr ? err.hint : next_member(group, addr);
        } else if ((err.code == Code::UNAVAILABLE || err.code == Code::TIMEOUT) && repeatable(req)) {
          addr = next_member(group, addr);
        } else {
          co_return err;
        }
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) co_return err;
    if (attempt > 0) {  // the first retry goes at once (a hint is usually right)
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_after(std::chrono::milliseconds(std::min<uint32_t>(500, 25u << std::min<uint32_t>(attempt, 5))));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
}

// Splits "/a/b/c" into its parent path "/a/b" and name "c"; BAD_REQUEST for "/" or "".
Result<std::pair<std::string, std::string>> split_path(const std::string& path);

}  // namespace mydfs::client
