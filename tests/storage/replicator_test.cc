// The group state machine behind the single-node replicator: commands, errors, and recovery from
// a crash image (the data directory copied while the node runs, as kill -9 would leave it).
#include <fcntl.h>

#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/checksum.h"
#include "common/file_io.h"
#include "storage/replicator.h"
#include "storage/slice_store.h"
#include "../support/temp_dir.h"

namespace mydfs::storage {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

AlignedBuffer pattern(size_t n, uint64_t seed) {
  AlignedBuffer b(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::byte>(rng());
  return b;
}

// A node: store + replicator + an io_context thread to run coroutines on.
class Node {
 public:
  Node(const std::string& dir, uint64_t checkpoint_bytes = 64u << 20) {
    fs::create_directories(dir);
    StoreOptions so;
    so.path = dir + "/store.vol";
    so.capacity_slots = 32;
    so.group_id = 1;
    so.node_id = 1;
    auto s = SliceStore::open(so);
    if (!s.ok()) throw std::runtime_error(s.error().to_string());
    store = std::move(s).value();
    LocalReplicatorOptions ro;
    ro.log_dir = dir + "/wal";
    ro.checkpoint_bytes = checkpoint_bytes;
    auto r = open_local_replicator(*store, ro, &metrics);
    if (!r.ok()) throw std::runtime_error(r.error().to_string());
    repl = std::move(r).value();
    work.emplace(io.get_executor());
    thread = std::thread([this] { io.run(); });
  }
  ~Node() {
    repl->stop();
    work.reset();
    io.stop();
    thread.join();
  }

  Result<SlotMeta> submit(Command c, AlignedBuffer data = {}) {
    return asio::co_spawn(io, repl->submit(c, std::move(data)), asio::use_future).get();
  }
  SlotMeta reserve(uint64_t file = 7) {
    Command c;
    c.type = CmdType::RESERVE;
    c.file_id = file;
    auto r = submit(c);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : SlotMeta{};
  }
  Code reserve_code() {
    Command c;
    c.type = CmdType::RESERVE;
    return submit(c).code();
  }
  Result<SlotMeta> write(Location loc, const AlignedBuffer& data, uint64_t file = 7, Location next = {}) {
    Command c;
    c.type = CmdType::WRITE_SLOT;
    c.loc = loc;
    c.file_id = file;
    c.next = next;
    c.len = static_cast<uint32_t>(data.size());
    c.checksum = xxh64(data.span());
    return submit(c, AlignedBuffer::copy_of(data.span()));
  }
  Result<SlotMeta> patch(Location loc, uint32_t off, const AlignedBuffer& data) {
    Command c;
    c.type = CmdType::PATCH;
    c.loc = loc;
    c.offset = off;
    c.len = static_cast<uint32_t>(data.size());
    c.checksum = xxh64(data.span());
    return submit(c, AlignedBuffer::copy_of(data.span()));
  }
  Result<SlotMeta> simple(CmdType t, Location loc, Location other = {}, uint32_t len = 0, bool clear = false) {
    Command c;
    c.type = t;
    c.loc = loc;
    c.next = other;
    c.target = other;
    c.len = len;
    c.clear_next = clear;
    return submit(c);
  }
  std::string read_all(uint32_t slot) {
    auto m = store->meta(slot);
    AlignedBuffer b(m->valid_len);
    EXPECT_TRUE(store->read_payload(slot, 0, b.span()).ok());
    return std::string(reinterpret_cast<char*>(b.data()), b.size());
  }

  Metrics metrics;
  std::unique_ptr<SliceStore> store;
  std::unique_ptr<Replicator> repl;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

std::string str(const AlignedBuffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// Copies a running node's directory: what a kill -9 leaves behind (the page cache survives).
void crash_image(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
  fs::remove(to + "/LOCK");
}

TEST(Replicator, reserveWriteRead) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  SlotMeta r = n.reserve();
  EXPECT_EQ(r.state, SlotState::PREPARED);
  EXPECT_EQ(r.loc, (Location{1, 1, 1}));
  auto data = pattern(kPayloadCapacity, 1);
  auto w = n.write(r.loc, data, 7, Location{2, 5, 1});
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  EXPECT_EQ(w->state, SlotState::LIVE);
  EXPECT_EQ(w->valid_len, kPayloadCapacity);
  EXPECT_EQ(w->next, (Location{2, 5, 1}));
  EXPECT_EQ(w->payload_checksum, xxh64(data.span()));
  EXPECT_EQ(n.read_all(1), str(data));
  EXPECT_GT(w->applied_index, r.applied_index);
}

TEST(Replicator, writeAgain_sameBytesIsIdempotent_otherBytesConflict_wrongFileConflict) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  SlotMeta r = n.reserve(7);
  auto data = pattern(100, 2);
  EXPECT_EQ(n.write(r.loc, data, 8).code(), Code::CONFLICT);
  auto first = n.write(r.loc, data, 7);
  ASSERT_TRUE(first.ok());
  // A client that lost the answer sends the same write again: it is told what happened.
  auto again = n.write(r.loc, data, 7);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(again->applied_index, first->applied_index) << "answered from the slot, nothing applied twice";
  EXPECT_EQ(n.write(r.loc, pattern(100, 3), 7).code(), Code::CONFLICT);
  EXPECT_EQ(n.write(r.loc, pattern(99, 2), 7).code(), Code::CONFLICT);
}

TEST(Replicator, badChecksum_rejectedAndSlotStillWritable) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  SlotMeta r = n.reserve();
  auto data = pattern(1000, 3);
  Command c;
  c.type = CmdType::WRITE_SLOT;
  c.loc = r.loc;
  c.file_id = 7;
  c.len = 1000;
  c.checksum = xxh64(data.span()) ^ 1;
  EXPECT_EQ(n.submit(c, AlignedBuffer::copy_of(data.span())).code(), Code::CHECKSUM_MISMATCH);
  EXPECT_TRUE(n.write(r.loc, data).ok());
}

TEST(Replicator, patch_overwritesAndExtends_noHoles) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  SlotMeta r = n.reserve();
  auto data = pattern(10000, 4);
  ASSERT_TRUE(n.write(r.loc, data).ok());
  std::string model = str(data);
  auto p1 = pattern(500, 5);
  ASSERT_TRUE(n.patch(r.loc, 100, p1).ok());
  model.replace(100, 500, str(p1));
  auto p2 = pattern(3000, 6);
  auto m = n.patch(r.loc, 9000, p2);  // runs past the end: extends
  ASSERT_TRUE(m.ok());
  model.replace(9000, std::string::npos, str(p2));
  EXPECT_EQ(m->valid_len, 12000u);
  EXPECT_EQ(n.read_all(1), model);
  EXPECT_EQ(m->payload_checksum, xxh64(model.data(), model.size()));
  EXPECT_EQ(n.patch(r.loc, 12001, p1).code(), Code::BAD_REQUEST) << "a hole";
  EXPECT_EQ(n.patch(r.loc, kPayloadCapacity - 10, p1).code(), Code::BAD_REQUEST) << "past capacity";
}

TEST(Replicator, linkTruncateRedirectDelete_transitions) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  SlotMeta a = n.reserve(), b = n.reserve();
  auto data = pattern(5000, 7);
  ASSERT_TRUE(n.write(a.loc, data).ok());
  ASSERT_TRUE(n.write(b.loc, data).ok());
  auto linked = n.simple(CmdType::SET_NEXT, a.loc, b.loc);
  ASSERT_TRUE(linked.ok());
  EXPECT_EQ(linked->next, b.loc);
  auto cut = n.simple(CmdType::SET_VALID_LEN, a.loc, {}, 1234, true);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->valid_len, 1234u);
  EXPECT_TRUE(cut->next.null());
  EXPECT_EQ(cut->payload_checksum, xxh64(data.data(), 1234));
  EXPECT_EQ(n.simple(CmdType::SET_VALID_LEN, a.loc, {}, 2000).code(), Code::BAD_REQUEST) << "only shrinks";
  auto moved = n.simple(CmdType::REDIRECT, a.loc, b.loc);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->state, SlotState::REDIRECT);
  auto again = n.simple(CmdType::SET_NEXT, a.loc, b.loc);
  EXPECT_EQ(again.code(), Code::REDIRECT);
  EXPECT_EQ(again.error().target, b.loc);
  ASSERT_TRUE(n.simple(CmdType::DELETE, b.loc).ok());
  EXPECT_EQ(n.simple(CmdType::DELETE, b.loc).code(), Code::DELETED);
  EXPECT_EQ(n.simple(CmdType::SET_NEXT, b.loc, a.loc).code(), Code::DELETED);
  // The deleted slot is reused with the next generation, and the old pointer is stale.
  SlotMeta c = n.reserve();
  EXPECT_EQ(c.loc.slot, b.loc.slot);
  EXPECT_EQ(c.loc.gen, b.loc.gen + 1);
  EXPECT_EQ(n.simple(CmdType::SET_NEXT, b.loc, a.loc).code(), Code::STALE);
}

TEST(Replicator, reserveAtCapacity_noSpace_andStaysHealthy) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  std::vector<SlotMeta> all;
  for (int i = 0; i < 32; ++i) all.push_back(n.reserve());
  Command c;
  c.type = CmdType::RESERVE;
  EXPECT_EQ(n.submit(c).code(), Code::NO_SPACE);
  ASSERT_TRUE(n.simple(CmdType::DELETE, all[3].loc).ok());
  auto r = n.submit(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->loc.slot, all[3].loc.slot);
}

TEST(Replicator, concurrentWrites_groupCommitted) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  std::vector<SlotMeta> slots;
  for (int i = 0; i < 16; ++i) slots.push_back(n.reserve());
  double syncs_before = n.metrics.value("mydfs_wal_syncs_total");
  std::vector<std::future<Result<SlotMeta>>> futs;
  std::vector<AlignedBuffer> datas;
  for (int i = 0; i < 16; ++i) datas.push_back(pattern(1 << 20, 100 + i));
  for (int i = 0; i < 16; ++i) {
    Command c;
    c.type = CmdType::WRITE_SLOT;
    c.loc = slots[i].loc;
    c.file_id = 7;
    c.len = 1 << 20;
    c.checksum = xxh64(datas[i].span());
    futs.push_back(asio::co_spawn(n.io, n.repl->submit(c, AlignedBuffer::copy_of(datas[i].span())), asio::use_future));
  }
  for (auto& f : futs) ASSERT_TRUE(f.get().ok());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(n.read_all(slots[i].loc.slot), str(datas[i]));
  EXPECT_LT(n.metrics.value("mydfs_wal_syncs_total") - syncs_before, 16) << "writes should share fsyncs";
}

TEST(Replicator, crashImage_recoversEveryAcknowledgedChange) {
  mydfs::testing::TempDir d, img;
  std::string model_a, model_b;
  Location a, b;
  {
    Node n(d / "node");
    a = n.reserve().loc;
    b = n.reserve().loc;
    auto da = pattern(200000, 9), db = pattern(3000, 10);
    ASSERT_TRUE(n.write(a, da, 7, b).ok());
    ASSERT_TRUE(n.write(b, db).ok());
    auto p = pattern(1000, 11);
    ASSERT_TRUE(n.patch(a, 500, p).ok());
    model_a = str(da);
    model_a.replace(500, 1000, str(p));
    ASSERT_TRUE(n.simple(CmdType::SET_VALID_LEN, b, {}, 100).ok());
    model_b = str(db).substr(0, 100);
    crash_image(d / "node", img / "node");
  }
  // Tear a header the last commands wrote: replay must repair it from the log.
  {
    auto f = File::open(img / "node/store.vol", O_RDWR);
    ASSERT_TRUE(f.ok());
    std::byte junk[8] = {};
    // slot b's header copies: seq 3 (last write) lives in copy 1.
    ASSERT_TRUE((*f)->pwrite_all(uint64_t{table_of(b.slot)} * kSlotSize + header_offset(b.slot, 1) + 40, junk).ok());
  }
  for (int round = 0; round < 2; ++round) {  // replay twice: must be idempotent
    Node n(img / "node");
    auto ma = n.store->meta(a.slot);
    ASSERT_TRUE(ma.ok());
    EXPECT_EQ(ma->next, b);
    EXPECT_EQ(n.read_all(a.slot), model_a);
    EXPECT_TRUE(n.store->verify(a.slot).ok());
    auto mb = n.store->meta(b.slot);
    ASSERT_TRUE(mb.ok()) << mb.error().to_string();
    EXPECT_EQ(mb->valid_len, 100u);
    EXPECT_EQ(n.read_all(b.slot), model_b);
    EXPECT_TRUE(n.store->verify(b.slot).ok());
    // New allocations never collide with the recovered ones.
    SlotMeta c = n.reserve();
    EXPECT_NE(c.loc.slot, a.slot);
    EXPECT_NE(c.loc.slot, b.slot);
    ASSERT_TRUE(n.simple(CmdType::DELETE, c.loc).ok());
  }
}

TEST(Replicator, smallCheckpointThreshold_logStaysShort_dataSurvives) {
  mydfs::testing::TempDir d, img;
  std::vector<std::pair<Location, std::string>> written;
  {
    Node n(d / "node", 64 << 10);  // checkpoint every 64 KiB of log
    for (int i = 0; i < 20; ++i) {
      auto loc = n.reserve().loc;
      auto data = pattern(10000 + i, 200 + i);
      ASSERT_TRUE(n.write(loc, data).ok());
      auto p = pattern(30000, 300 + i);  // patches go into the log
      ASSERT_TRUE(n.patch(loc, 0, p).ok());
      std::string m = str(p);
      written.emplace_back(loc, m);
    }
    EXPECT_GT(n.metrics.value("mydfs_wal_checkpoints_total"), 2);
    crash_image(d / "node", img / "node");
  }
  Node n(img / "node");
  for (auto& [loc, model] : written) EXPECT_EQ(n.read_all(loc.slot), model);
}

TEST(Replicator, logWriteFails_failStop_acknowledgedDataKept) {
  mydfs::testing::TempDir d;
  Location ok_loc;
  auto data = pattern(4096, 12);
  {
    Node n(d / "node");
    ok_loc = n.reserve().loc;
    ASSERT_TRUE(n.write(ok_loc, data).ok());
    auto second = n.reserve().loc;
    set_write_fault([](const std::string& path, uint64_t, size_t) -> long {
      return path.find("/wal/") != std::string::npos ? 10 : -1;  // log writes tear after 10 bytes
    });
    auto r = n.write(second, data);
    set_write_fault(nullptr);
    EXPECT_EQ(r.code(), Code::IO_ERROR);
    EXPECT_EQ(n.reserve_code(), Code::UNAVAILABLE) << "after a failed log write the node takes no writes";
  }
  Node n(d / "node");  // the torn record is cut at open
  EXPECT_EQ(n.read_all(ok_loc.slot), str(data));
  auto c = n.reserve();
  EXPECT_EQ(c.state, SlotState::PREPARED);
}


// ---------------------------------------------------------------------------------------------
// Transactions: lock old slots, prepare new ones, decide on the primary, finish elsewhere.

Command tx_cmd(CmdType t, uint64_t txid, TxDecision d = TxDecision::NONE) {
  Command c;
  c.type = t;
  c.txid = txid;
  c.decision = d;
  return c;
}

Result<SlotMeta> lock(Node& n, Location loc, uint64_t txid, uint64_t expect, Location on_commit = {}) {
  Command c;
  c.type = CmdType::LOCK;
  c.loc = loc;
  c.txid = txid;
  c.tx_primary = 1;
  c.expect_applied = expect;
  c.target = on_commit;
  return n.submit(c);
}

// A prepared copy-on-write slot of transaction txid holding data.
SlotMeta prepared(Node& n, uint64_t txid, const AlignedBuffer& data, Location next = {}) {
  Command r;
  r.type = CmdType::RESERVE;
  r.file_id = 7;
  r.txid = txid;
  r.tx_primary = 1;
  auto res = n.submit(r);
  EXPECT_TRUE(res.ok());
  Command w;
  w.type = CmdType::WRITE_SLOT;
  w.loc = res->loc;
  w.file_id = 7;
  w.next = next;
  w.len = static_cast<uint32_t>(data.size());
  w.checksum = xxh64(data.span());
  w.state = SlotState::PREPARED;
  w.txid = txid;
  w.tx_primary = 1;
  auto wr = n.submit(w, AlignedBuffer::copy_of(data.span()));
  EXPECT_TRUE(wr.ok()) << wr.error().to_string();
  return *wr;
}

TEST(Transactions, commit_redirectsOldAndPublishesNew_inOneCommand) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  auto a = n.write(n.reserve().loc, pattern(100, 1));
  auto b = n.write(n.reserve().loc, pattern(50, 2));
  ASSERT_TRUE(a.ok() && b.ok());
  const uint64_t tx = 0xabc;
  SlotMeta fresh = prepared(n, tx, pattern(120, 3));
  // The edit was computed from a's state at a->applied_index: a stale expectation conflicts.
  EXPECT_EQ(lock(n, a->loc, tx, a->applied_index - 1).code(), Code::CONFLICT);
  ASSERT_TRUE(lock(n, a->loc, tx, a->applied_index, fresh.loc).ok());
  ASSERT_TRUE(lock(n, b->loc, tx, b->applied_index).ok());
  ASSERT_TRUE(lock(n, b->loc, tx, b->applied_index).ok()) << "a retried lock is harmless";
  EXPECT_EQ(lock(n, b->loc, tx + 1, 0).code(), Code::CONFLICT) << "another transaction";
  // While locked: old content still readable, every edit refused; the new slot stays invisible.
  EXPECT_EQ(n.read_all(a->loc.slot), str(pattern(100, 1)));
  EXPECT_EQ(n.patch(a->loc, 0, pattern(4, 9)).code(), Code::CONFLICT);
  EXPECT_EQ(n.simple(CmdType::DELETE, b->loc).code(), Code::CONFLICT);
  EXPECT_EQ(n.repl->state_machine().pending_slots(), 3u);
  auto pend = n.repl->state_machine().pending_transactions();
  ASSERT_EQ(pend.size(), 1u);
  EXPECT_EQ(pend.begin()->first, tx);

  auto dec = n.submit(tx_cmd(CmdType::TX_DECIDE, tx, TxDecision::COMMIT));
  ASSERT_TRUE(dec.ok()) << dec.error().to_string();
  EXPECT_EQ(tx_response(*dec).decision, TxDecision::COMMIT);
  EXPECT_EQ(tx_response(*dec).finished, 3u);
  EXPECT_EQ(n.store->resolve(a->loc).code(), Code::REDIRECT);
  EXPECT_EQ(n.store->resolve(b->loc).code(), Code::DELETED);
  auto now = n.store->resolve(fresh.loc);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->state, SlotState::LIVE);
  EXPECT_EQ(now->txid, 0u);
  EXPECT_EQ(n.repl->state_machine().pending_slots(), 0u);
  // The first decision wins: a late abort (a participant's timeout) learns the commit.
  auto late = n.submit(tx_cmd(CmdType::TX_DECIDE, tx, TxDecision::ABORT));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(tx_response(*late).decision, TxDecision::COMMIT);
  EXPECT_EQ(n.repl->state_machine().decision(tx), TxDecision::COMMIT);
  ASSERT_TRUE(n.submit(tx_cmd(CmdType::TX_FORGET, tx)).ok());
  EXPECT_EQ(n.repl->state_machine().decision(tx), TxDecision::NONE);
}

TEST(Transactions, abort_unlocksOldAndFreesNew) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  auto a = n.write(n.reserve().loc, pattern(100, 1));
  ASSERT_TRUE(a.ok());
  SlotMeta fresh = prepared(n, 5, pattern(10, 3));
  ASSERT_TRUE(lock(n, a->loc, 5, a->applied_index, fresh.loc).ok());
  // Another participant of the same transaction finishes by TX_FINISH, not by deciding.
  auto fin = n.submit(tx_cmd(CmdType::TX_FINISH, 5, TxDecision::ABORT));
  ASSERT_TRUE(fin.ok());
  EXPECT_EQ(tx_response(*fin).finished, 2u);
  auto back = n.store->resolve(a->loc);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->txid, 0u);
  EXPECT_TRUE(back->redirect.null());
  EXPECT_EQ(n.store->resolve(fresh.loc).code(), Code::DELETED);
  EXPECT_TRUE(n.patch(a->loc, 0, pattern(4, 9)).ok()) << "unlocked again";
  EXPECT_EQ(n.repl->state_machine().decision(5), TxDecision::NONE) << "only TX_DECIDE records";
}

TEST(Transactions, preparedSlotsAndDecisions_surviveCrashAndCheckpoint) {
  mydfs::testing::TempDir d;
  std::string img = d.path() + "/image";
  {
    Node n(d.path() + "/node", /*checkpoint_bytes=*/1);  // a checkpoint after every batch
    auto a = n.write(n.reserve().loc, pattern(100, 1));
    ASSERT_TRUE(a.ok());
    SlotMeta fresh = prepared(n, 77, pattern(10, 3));
    ASSERT_TRUE(lock(n, a->loc, 77, a->applied_index, fresh.loc).ok());
    ASSERT_TRUE(n.submit(tx_cmd(CmdType::TX_DECIDE, 99, TxDecision::ABORT)).ok());
    ASSERT_TRUE(n.submit(tx_cmd(CmdType::TX_DECIDE, 98, TxDecision::COMMIT)).ok());
    crash_image(d.path() + "/node", img);
  }
  Node n(img);
  EXPECT_EQ(n.repl->state_machine().pending_slots(), 2u);
  EXPECT_EQ(n.repl->state_machine().decision(99), TxDecision::ABORT);
  EXPECT_EQ(n.repl->state_machine().decision(98), TxDecision::COMMIT);
  auto pend = n.repl->state_machine().pending_transactions();
  ASSERT_EQ(pend.count(77), 1u);
  EXPECT_EQ(pend[77], 1u);
}

TEST(Transactions, damagedDecisionTable_refusesToStart) {
  mydfs::testing::TempDir d;
  {
    Node n(d.path());
    ASSERT_TRUE(n.submit(tx_cmd(CmdType::TX_DECIDE, 5, TxDecision::COMMIT)).ok());
  }
  std::string path = d.path() + "/wal/tx-decisions";
  ASSERT_TRUE(fs::exists(path));
  {
    auto f = File::open(path, O_RDWR);
    ASSERT_TRUE(f.ok());
    std::byte junk{0x5a};
    ASSERT_TRUE((*f)->pwrite_all(9, std::span(&junk, 1)).ok());
  }
  EXPECT_THROW(Node n(d.path()), std::runtime_error);
}

TEST(Transactions, editConditions_expectAppliedAndNoExtend) {
  mydfs::testing::TempDir d;
  Node n(d.path());
  auto a = n.write(n.reserve().loc, pattern(100, 1));
  ASSERT_TRUE(a.ok());
  Command p;
  p.type = CmdType::PATCH;
  p.loc = a->loc;
  p.offset = 90;
  AlignedBuffer bytes = pattern(20, 4);
  p.len = 20;
  p.checksum = xxh64(bytes.span());
  p.flags = proto::PATCH_NO_EXTEND;
  EXPECT_EQ(n.submit(p, AlignedBuffer::copy_of(bytes.span())).code(), Code::CONFLICT) << "would extend";
  p.flags = proto::PATCH_SET_NEXT;
  p.next = Location{1, 9, 9};
  p.expect_applied = a->applied_index + 100;
  EXPECT_EQ(n.submit(p, AlignedBuffer::copy_of(bytes.span())).code(), Code::CONFLICT) << "stale expectation";
  p.expect_applied = a->applied_index;
  auto ok = n.submit(p, AlignedBuffer::copy_of(bytes.span()));
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->valid_len, 110u);
  EXPECT_EQ(ok->next, (Location{1, 9, 9})) << "patch and link in one command";
}

}  // namespace
}  // namespace mydfs::storage
