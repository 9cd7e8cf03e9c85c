// TrackerState: the tracker's namespace and group registry, made durable HDFS style.
//
// Every mutation is applied and appended to the edit log by one committer thread while it holds
// the state lock exclusively (group commit: all queued mutations share one write). When the
// change is answered depends on sync_delay:
//   * 0: the log is fsynced before the lock is released and anyone answered, so no reader sees
//     and no caller is told of a change that is not on disk;
//   * > 0 (the default): callers are answered once their changes are written to the log (in the
//     host's page cache: a kill -9 of the tracker loses nothing), and the log is fsynced in the
//     background at most sync_delay after the first unsynced change; a power cut loses at most
//     that window. sync() waits for everything answered before it to be fsynced (a mount's fsync,
//     fsyncdir, syncfs). Readers never wait on an fsync.
// A checkpoint writes an fsimage (temp file, fsync, rename) and cuts the log; recovery loads the
// newest valid image and replays the log after it (seglog/wal.h: a torn last record is cut, a
// damaged record in the middle stops the start with the file and offset).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/result.h"
#include "seglog/wal.h"
#include "tracker/groups.h"
#include "tracker/namespace.h"

namespace mydfs::tracker {

struct StateOptions {
  std::string dir;                               // holds fsimage-* and edits/
  uint64_t checkpoint_ops = 1000000;             // image after this many logged mutations
  std::chrono::seconds checkpoint_age{3600};     // ... or this long after the last image
  uint32_t max_batch = 1024;                     // mutations per group commit at most
  std::chrono::milliseconds sync_delay{50};      // see above; 0 = fsync before answering
  GroupsConfig groups;
};

class TrackerState {
 public:
  static Result<std::unique_ptr<TrackerState>> open(StateOptions opt, Metrics* metrics);
  ~TrackerState();

  // Mutations. The tracker picks the op's time and new inode id. done(errno, result) runs on
  // the committer thread once the change is durable (or at once, if it failed and changed nothing).
  using Done = std::function<void(int err, OpResult result)>;
  void submit(NsOp op, Done done);
  void add_group(uint32_t id, std::vector<std::string> addresses, std::function<void(Status)> done);
  // Logged like add_group: addresses = {old, new}.
  void replace_member(uint32_t id, std::string old_address, std::string new_address, std::function<void(Status)> done);

  // Reads of durable state: f(const Namespace&, const GroupRegistry&).
  template <typename F>
  auto read(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const Namespace&>(ns_), static_cast<const GroupRegistry&>(groups_));
  }
  // Liveness and placement bookkeeping (heartbeats, the checker, allocate): not logged.
  template <typename F>
  auto with_groups(F&& f) {
    std::unique_lock lock(mu_);
    return f(groups_);
  }

  // Writes an image now (queued behind the mutations already submitted); waits for it.
  Status checkpoint();
  // done(status) on the committer thread once every change submitted before is fsynced.
  void sync(std::function<void(Status)> done);
  // Stops taking mutations, drains the queue, and writes a final image.
  void stop();

  uint64_t applied_index() const { return applied_.load(); }
  uint64_t image_index() const { return image_index_.load(); }
  uint64_t log_bytes() const { return log_bytes_.load(); }
  // Seconds since the newest fsimage was written (by this process or, at start, the file's age);
  // negative if there is none.
  double seconds_since_image() const {
    int64_t at = image_unix_ms_.load();
    if (at == 0) return -1;
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
    return static_cast<double>(now - at) / 1000.0;
  }

 private:
  explicit TrackerState(StateOptions opt, Metrics* metrics);
  struct Item {
    enum Kind { NS, ADD_GROUP, REPLACE_MEMBER, CHECKPOINT, SYNC } kind = NS;
    NsOp op;
    Done done;
    uint32_t group = 0;
    std::vector<std::string> addresses;
    std::function<void(Status)> status_done;
  };
  Status load();
  void enqueue_group_change(Item::Kind kind, uint32_t id, std::vector<std::string> addresses,
                            std::function<void(Status)> done);
  Status replay(uint64_t index, std::string_view body);
  Status write_image();
  void committer();
  void sync_log();  // committer thread: fsync the log (fail-stop on error)
  static Timespec wall_now();

  StateOptions opt_;
  mutable std::shared_mutex mu_;   // guards ns_ and groups_: exclusive for the committer's batch
  Namespace ns_;
  GroupRegistry groups_;
  std::unique_ptr<seglog::Wal> log_;  // committer thread only (and load())

  std::mutex queue_mu_;            // guards queue_, stopping_
  std::condition_variable queue_cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::thread thread_;

  std::atomic<uint64_t> applied_{0};      // last log index applied
  std::atomic<uint64_t> image_index_{0};  // log index the newest image holds
  std::atomic<uint64_t> log_bytes_{0};
  std::atomic<int64_t> image_unix_ms_{0};  // wall time of the newest image, 0 = none
  std::chrono::steady_clock::time_point image_time_;  // committer thread only
  bool unsynced_ = false;                             // committer thread only: log written past its last fsync
  std::chrono::steady_clock::time_point unsynced_since_;  // committer thread only
  Counter* ops_logged_;
  Counter* syncs_;
  Counter* images_;
};

}  // namespace mydfs::tracker
