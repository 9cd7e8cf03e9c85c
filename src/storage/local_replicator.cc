// Single-node replicator: write-ahead log + group commit. The Raft replicator replaces it.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/async.h"
#include "common/checksum.h"
#include "storage/replicator.h"
#include "storage/state_machine.h"
#include "seglog/wal.h"

namespace mydfs::storage {
using seglog::Wal;
using seglog::kWalRecordHeader;

namespace {

namespace asio = boost::asio;

// Log record body: u64 index | command | u32 data_len | data (PATCH bytes only).
std::string encode_entry(uint64_t index, const Command& cmd, std::span<const std::byte> data) {
  Writer w;
  w.u64(index);
  cmd.encode(w);
  w.u32(static_cast<uint32_t>(data.size()));
  w.raw(data.data(), data.size());
  return w.take();
}

class LocalReplicator final : public Replicator {
 public:
  LocalReplicator(SliceStore& store, LocalReplicatorOptions opt, Metrics* m)
      : store_(store), sm_(store), opt_(std::move(opt)), pool_(opt_.io_threads) {
    syncs_ = m->counter("mydfs_wal_syncs_total", "", "Group commits (log fsyncs)");
    records_ = m->counter("mydfs_wal_records_total", "", "Commands written to the log");
    checkpoints_ = m->counter("mydfs_wal_checkpoints_total", "", "Store checkpoints (log cut)");
    m->gauge_fn("mydfs_storage_applied_index", "Log index of the last applied command",
                [this] { return static_cast<double>(applied_.load()); });
    m->gauge_fn("mydfs_wal_bytes", "Bytes in the write-ahead log",
                [this] { return static_cast<double>(wal_bytes_.load()); });
  }

  ~LocalReplicator() override { stop(); }

  Status open() {
    uint64_t after = store_.superblock().checkpoint_index;
    uint64_t replayed = 0;
    MYDFS_TRY(sm_.load_decisions(opt_.log_dir));
    auto visit = [&](uint64_t index, std::string_view body) -> Status {
      Reader r(body);
      r.u64();
      Command cmd;
      cmd.decode(r);
      uint32_t n = r.u32();
      std::string_view rest = body.substr(body.size() - std::min<size_t>(r.remaining(), body.size()));
      if (!r.ok() || n != rest.size())
        return make_error(Code::CORRUPT, fmt::format("log entry {} does not decode", index));
      auto res = sm_.apply(index, cmd, as_bytes(rest), true);
      if (!res.ok()) {
        if (res.code() == Code::IO_ERROR || res.code() == Code::NO_SPACE) return res.take_error();
        spdlog::debug("replay: entry {} ({}) -> {}", index, cmd_name(cmd.type), res.error().to_string());
      }
      ++replayed;
      return ok_status();
    };
    MYDFS_ASSIGN(wal_, Wal::open(opt_.log_dir, after, visit));
    applied_ = wal_->last_index();
    if (replayed) spdlog::info("log: replayed {} command(s) after checkpoint {}", replayed, after);
    MYDFS_TRY(checkpoint());
    thread_ = std::thread([this] { committer(); });
    return ok_status();
  }

  asio::awaitable<Result<SlotMeta>> submit(Command cmd, AlignedBuffer data) override {
    if (failed_) co_return make_error(Code::UNAVAILABLE, "the log failed; this node stopped taking writes");
    if (cmd.type == CmdType::RESERVE) {
      auto loc = store_.allocate();
      if (!loc.ok()) co_return loc.take_error();
      cmd.loc = *loc;
      auto res = co_await enqueue(std::move(cmd), {});
      if (!res.ok()) store_.release(*loc);
      co_return res;
    }
    MYDFS_CO_ASSIGN(auto answered, gate_.enter(sm_, cmd, data.size()));
    if (answered) co_return *answered;
    if (cmd.type == CmdType::PATCH || cmd.type == CmdType::SET_VALID_LEN) {
      // These recompute the checksum over old bytes: check those before the command is logged,
      // so a damaged slot refuses the command instead of a replay later blessing the damage.
      uint32_t slot = cmd.loc.slot;
      Status v = co_await run_on(pool_, [&] { return store_.verify(slot); });
      if (!v.ok()) co_return v.take_error();
    }
    if (cmd.type != CmdType::WRITE_SLOT) co_return co_await enqueue(std::move(cmd), std::move(data));

    // WRITE_SLOT: the slice goes into its slot beside the command, and is durable before the
    // command is (the committer syncs the store before it writes the log).
    uint32_t slot = cmd.loc.slot;
    Status st = co_await run_on(pool_, [&]() -> Status {
      if (is_hole(cmd, data.size())) return store_.clear_payload(slot);
      if (data.size() != cmd.len) return make_error(Code::BAD_REQUEST, "slice length differs from the command's");
      if (xxh64(data.span()) != cmd.checksum)
        return make_error(Code::CHECKSUM_MISMATCH, "slice bytes do not match their checksum");
      return store_.write_slice(slot, data.span());
    });
    // (No co_await inside ?: — GCC 12 miscompiles it.)
    Result<SlotMeta> res;
    if (st.ok()) res = co_await enqueue(std::move(cmd), {});
    else res = st.take_error();
    gate_.leave(slot);
    co_return res;
  }

  asio::awaitable<Status> read_barrier() override { co_return ok_status(); }
  uint64_t applied_index() const override { return applied_.load(); }
  const StateMachine& state_machine() const override { return sm_; }

  void stop() override {
    {
      std::lock_guard g(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    pool_.join();
    if (wal_ && !failed_) {
      Status st = checkpoint();
      if (!st.ok()) spdlog::error("checkpoint at stop failed: {}", st.error().to_string());
    }
  }

 private:
  struct Item {
    Command cmd;
    AlignedBuffer data;
    std::function<void(Result<SlotMeta>)> done;
  };

  asio::awaitable<Result<SlotMeta>> enqueue(Command cmd, AlignedBuffer data) {
    co_return co_await await_completion<Result<SlotMeta>>([&](auto done) {
      {
        std::lock_guard g(mu_);
        if (stopping_) {
          done(make_error(Code::UNAVAILABLE, "shutting down"));
          return;
        }
        queue_.push_back(Item{std::move(cmd), std::move(data), std::move(done)});
      }
      cv_.notify_one();
    });
  }

  Status checkpoint() {
    uint64_t idx = applied_.load();
    // The decision table first: if the superblock write is lost, replay from the older
    // checkpoint re-applies set/erase commands over it in order and ends at the same table.
    MYDFS_TRY(sm_.save_decisions(opt_.log_dir));
    MYDFS_TRY(store_.checkpoint(idx));
    MYDFS_TRY(wal_->truncate_through(idx));
    wal_bytes_ = wal_->bytes();
    checkpoints_->inc();
    return ok_status();
  }

  // The one thread that writes the log and applies: group commit of whatever is queued.
  void committer() {
    for (;;) {
      std::vector<Item> batch;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        while (!queue_.empty() && batch.size() < opt_.max_batch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (failed_) {
        for (auto& it : batch) it.done(make_error(Code::UNAVAILABLE, "the log failed; this node stopped taking writes"));
        continue;
      }
      bool payloads = std::any_of(batch.begin(), batch.end(),
                                  [](const Item& i) { return i.cmd.type == CmdType::WRITE_SLOT; });
      uint64_t first = wal_->last_index() + 1;
      std::vector<std::string> bodies;
      bodies.reserve(batch.size());
      for (size_t i = 0; i < batch.size(); ++i)
        bodies.push_back(encode_entry(first + i, batch[i].cmd,
                                      batch[i].cmd.type == CmdType::PATCH ? batch[i].data.span()
                                                                          : std::span<const std::byte>{}));
      // Sync the store before the log: this batch's payloads must be durable before the log says
      // they exist, and the previous batch's header and patch writes must be durable before any
      // later command is logged, so after a crash at most the last batch is half-applied (its
      // replay then finds every earlier slot state intact, and a torn header always has an
      // intact older copy).
      Status st = (payloads || store_dirty_) ? store_.sync() : ok_status();
      if (st.ok()) store_dirty_ = false;
      if (st.ok()) st = wal_->append(bodies, first);
      if (st.ok()) st = wal_->sync();
      if (!st.ok()) {
        // Fail-stop: what is on disk is no longer known to match what we would acknowledge. The
        // callers get an error, which (like a timeout) means "outcome unknown": a record that did
        // reach the log is applied at the next start.
        failed_ = true;
        spdlog::critical("log write failed, refusing further writes: {}", st.error().to_string());
        for (auto& it : batch) it.done(st.error());
        continue;
      }
      syncs_->inc();
      records_->inc(batch.size());
      wal_bytes_ = wal_->bytes();
      for (size_t i = 0; i < batch.size(); ++i) {
        auto res = failed_ ? Result<SlotMeta>(make_error(Code::UNAVAILABLE, "an earlier apply failed"))
                           : sm_.apply(first + i, batch[i].cmd, batch[i].data.span(), false);
        if (res.code() == Code::IO_ERROR || res.code() == Code::NO_SPACE) {
          // The command is logged but its effect may be half on disk: stop here, and let the
          // replay at the next start finish it. No checkpoint may pass this index.
          failed_ = true;
          spdlog::critical("apply of log entry {} failed, refusing further writes: {}", first + i,
                           res.error().to_string());
        }
        if (!failed_) applied_ = first + i;
        batch[i].done(std::move(res));
      }
      store_dirty_ = true;
      if (!failed_ && wal_->bytes() > opt_.checkpoint_bytes) {
        Status c = checkpoint();
        if (!c.ok()) spdlog::error("checkpoint failed: {}", c.error().to_string());
      }
    }
  }

  SliceStore& store_;
  StateMachine sm_;                // applied only by the committer thread (and open())
  LocalReplicatorOptions opt_;
  std::unique_ptr<Wal> wal_;       // committer thread only, after open()
  bool store_dirty_ = false;       // committer thread only: applies since the last store sync
  std::mutex mu_;                  // guards queue_, stopping_
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::thread thread_;
  asio::thread_pool pool_;         // payload writes and pre-log verification
  WriteGate gate_;
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> wal_bytes_{0};
  std::atomic<bool> failed_{false};
  Counter* syncs_;
  Counter* records_;
  Counter* checkpoints_;
};

}  // namespace

Result<std::unique_ptr<Replicator>> open_local_replicator(SliceStore& store, LocalReplicatorOptions opt,
                                                          Metrics* metrics) {
  auto r = std::make_unique<LocalReplicator>(store, std::move(opt), metrics);
  MYDFS_TRY(r->open());
  return std::unique_ptr<Replicator>(std::move(r));
}

}  // namespace mydfs::storage
