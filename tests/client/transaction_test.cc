// The transaction coordinator (client/transaction.h) against fake participant groups: the order
// of the protocol's steps, the abort paths, a lost decision, a group that cannot be told, and a
// coordinator that crashes after any step — after which the participants' timeout recovery (as
// the fake models it: abort unless decided, then finish) must leave the file entirely old or
// entirely new. After every step the fake also reads the file as a reader would, so a reader
// never sees a mix of old and new slices, nor the old content again once it saw the new.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include "client/transaction.h"
#include "common/checksum.h"

namespace {

using namespace mydfs;
using namespace mydfs::client;
using namespace mydfs::proto;
namespace asio = boost::asio;

Location at(uint32_t group, uint32_t slot) { return Location{group, slot, 1}; }

// A slot as a participant keeps it (the fields of the header that the protocol touches).
struct FakeSlot {
  SlotState state = SlotState::LIVE;
  uint64_t txid = 0;
  uint32_t tx_primary = 0;
  uint64_t applied = 1;
  Location next;
  Location redirect;  // LIVE and locked: where it redirects on commit; REDIRECT: where it points
  bool written = false;
  std::string bytes;
};

struct FakeGroup {
  std::map<uint32_t, FakeSlot> slots;
  std::map<uint64_t, TxDecision> decisions;  // as a primary
  std::set<uint64_t> committed;              // decided COMMIT here at some time (forgotten or not)
  uint32_t next_slot = 100;
};

struct Fault {
  Error error;
  bool applied = false;  // the step took effect, only its answer was lost
};

// Participant groups in memory. Every step is recorded ("reserve g1 x4", "write g1 s100",
// "lock g2 s3", "decide g1 COMMIT", "finish g2 commit", "forget g1"). Faults make one step fail;
// a crash makes every step from the k-th on fail (the coordinator is gone: nothing it sends
// arrives, except, with crash_lost, step k itself, whose answer is lost).
class FakeGroups : public TxGroups {
 public:
  std::map<uint32_t, FakeGroup> groups;
  std::vector<std::string> calls;
  std::vector<std::string> violations;  // protocol rules the coordinator broke
  std::map<std::string, std::vector<Fault>> faults;  // by call: the next ones that fail
  std::optional<size_t> crash_at;
  bool crash_lost = false;
  bool short_reserve = false;  // answer one slot fewer than asked
  // The reader's view after every step: old content, then at some point new content, nothing else.
  Location head;
  std::string old_content, new_content;
  bool seen_new = false;
  std::vector<std::string> bad_views;

  void seed(Location loc, std::string bytes, Location next, uint64_t applied) {
    FakeSlot s;
    s.bytes = std::move(bytes);
    s.next = next;
    s.applied = applied;
    s.written = true;
    groups[loc.group].slots[loc.slot] = s;
  }
  void fail(const std::string& call, Code code, bool applied = false) {
    faults[call].push_back(Fault{make_error(code, "injected failure of " + call), applied});
  }
  void note(const std::string& what) { calls.push_back(what); }

  // The file as a reader walks it from its head (redirects followed, PREPARED invisible).
  std::string read() const {
    std::string out;
    Location loc = head;
    for (int hops = 0; !loc.null() && hops < 100; ++hops) {
      auto g = groups.find(loc.group);
      if (g == groups.end() || !g->second.slots.count(loc.slot)) return "<missing>";
      const FakeSlot& s = g->second.slots.at(loc.slot);
      if (s.state == SlotState::REDIRECT) {
        loc = s.redirect;
        continue;
      }
      if (s.state != SlotState::LIVE) return "<broken>";
      out += s.bytes;
      loc = s.next;
    }
    return out;
  }

  // What every participant's timeout recovery does: ask the primary, which records abort unless
  // it decided already, then finish this group's slots with that decision.
  void recover() {
    for (auto& [g, group] : groups) {
      std::map<uint64_t, uint32_t> pending;
      for (auto& [n, s] : group.slots)
        if (s.txid) pending[s.txid] = s.tx_primary;
      for (auto [txid, primary] : pending) {
        if (groups[primary].committed.count(txid) && !groups[primary].decisions.count(txid))
          violations.push_back("the decision was forgotten before every participant had it");
        TxDecision d = groups[primary].decisions.emplace(txid, TxDecision::ABORT).first->second;
        finish_slots(group, txid, d);
        observe();
      }
    }
  }
  size_t pending_slots() const {
    size_t n = 0;
    for (auto& [g, group] : groups)
      for (auto& [k, s] : group.slots) n += s.txid != 0;
    return n;
  }
  TxDecision decision(uint32_t primary, uint64_t txid) {
    auto& d = groups[primary].decisions;
    return d.count(txid) ? d[txid] : TxDecision::NONE;
  }

  asio::awaitable<Result<ReserveResp>> reserve(uint32_t group, const ReserveReq& req) override {
    std::string call = fmt::format("reserve g{} x{}", group, req.count);
    co_return step<ReserveResp>(call, [&] { return do_reserve(group, req); });
  }
  asio::awaitable<Result<SlotResp>> write(uint32_t group, const WriteSlotReq& req,
                                          const std::shared_ptr<const AlignedBuffer>& bytes) override {
    std::string call = fmt::format("write g{} s{}", group, req.loc.slot);
    co_return step<SlotResp>(call, [&] { return do_write(group, req, *bytes); });
  }
  asio::awaitable<Result<SlotResp>> lock(uint32_t group, const LockReq& req) override {
    co_return step<SlotResp>(fmt::format("lock g{} s{}", group, req.loc.slot), [&] { return do_lock(group, req); });
  }
  asio::awaitable<Result<TxDecideResp>> decide(uint32_t group, uint64_t txid, TxDecision want) override {
    std::string call = fmt::format("decide g{} {}", group, want == TxDecision::COMMIT ? "COMMIT" : "ABORT");
    co_return step<TxDecideResp>(call, [&] { return do_decide(group, txid, want); });
  }
  asio::awaitable<Result<TxDecideResp>> finish(uint32_t group, uint64_t txid, bool commit) override {
    std::string call = fmt::format("finish g{} {}", group, commit ? "commit" : "abort");
    co_return step<TxDecideResp>(call, [&]() -> Result<TxDecideResp> {
      TxDecision d = commit ? TxDecision::COMMIT : TxDecision::ABORT;
      return TxDecideResp{d, finish_slots(groups[group], txid, d)};
    });
  }
  asio::awaitable<Result<TxDecideResp>> forget(uint32_t group, uint64_t txid) override {
    co_return step<TxDecideResp>(fmt::format("forget g{}", group), [&]() -> Result<TxDecideResp> {
      groups[group].decisions.erase(txid);
      return TxDecideResp{};
    });
  }

 private:
  template <typename T, typename Apply>
  Result<T> step(const std::string& call, Apply apply) {
    size_t k = steps_++;
    calls.push_back(call);
    if (crash_at && k > *crash_at) return make_error(Code::UNAVAILABLE, "the coordinator is gone");
    if (crash_at && k == *crash_at) {
      if (crash_lost) (void)apply(), observe();
      return make_error(Code::UNAVAILABLE, "the coordinator is gone");
    }
    if (auto f = faults.find(call); f != faults.end() && !f->second.empty()) {
      Fault fault = f->second.front();
      f->second.erase(f->second.begin());
      if (fault.applied) (void)apply(), observe();
      return fault.error;
    }
    Result<T> r = apply();
    observe();
    return r;
  }

  void observe() {
    std::string v = read();
    if (v == new_content) seen_new = true;
    else if (v != old_content || seen_new) bad_views.push_back(v);
  }

  Result<ReserveResp> do_reserve(uint32_t group, const ReserveReq& req) {
    if (req.txid == 0 || req.tx_primary != group) violations.push_back("reserve outside the transaction's primary");
    ReserveResp r;
    FakeGroup& g = groups[group];
    for (uint32_t i = 0; i < req.count - (short_reserve ? 1 : 0); ++i) {
      FakeSlot s;
      s.state = SlotState::PREPARED;
      s.txid = req.txid;
      s.tx_primary = req.tx_primary;
      uint32_t n = g.next_slot++;
      g.slots[n] = s;
      r.slots.push_back(at(group, n));
    }
    return r;
  }

  Result<SlotResp> do_write(uint32_t group, const WriteSlotReq& req, const AlignedBuffer& bytes) {
    auto& slots = groups[group].slots;
    if (!slots.count(req.loc.slot)) return make_error(Code::NOT_FOUND, "no such slot");
    FakeSlot& s = slots[req.loc.slot];
    if (s.state != SlotState::PREPARED || s.txid != req.txid || req.state != SlotState::PREPARED ||
        req.tx_primary != group)
      violations.push_back(fmt::format("write of s{} outside its transaction", req.loc.slot));
    if (xxh64(bytes.span()) != req.checksum) return make_error(Code::CHECKSUM_MISMATCH, "bad checksum");
    s.bytes.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    s.next = req.next;
    s.written = true;
    ++s.applied;
    return SlotResp{};
  }

  Result<SlotResp> do_lock(uint32_t group, const LockReq& req) {
    auto& slots = groups[group].slots;
    if (!slots.count(req.loc.slot)) return make_error(Code::NOT_FOUND, "no such slot");
    FakeSlot& s = slots[req.loc.slot];
    if (s.state != SlotState::LIVE || s.txid != 0 || s.applied != req.expect_applied)
      return make_error(Code::CONFLICT, fmt::format("s{} changed since the walk", req.loc.slot));
    s.txid = req.txid;
    s.tx_primary = req.tx_primary;
    s.redirect = req.on_commit;
    ++s.applied;
    return SlotResp{};
  }

  Result<TxDecideResp> do_decide(uint32_t group, uint64_t txid, TxDecision want) {
    auto [it, fresh] = groups[group].decisions.emplace(txid, want);
    if (fresh && want == TxDecision::COMMIT && !fully_prepared(txid))
      violations.push_back("commit decided before every participant prepared");
    if (it->second == TxDecision::COMMIT) groups[group].committed.insert(txid);
    return TxDecideResp{it->second, finish_slots(groups[group], txid, it->second)};
  }

  // Every slot of the transaction written, every seeded slot it names locked.
  bool fully_prepared(uint64_t txid) const {
    size_t locked = 0;
    for (auto& [g, group] : groups)
      for (auto& [n, s] : group.slots) {
        if (s.txid != txid) continue;
        if (s.state == SlotState::PREPARED && !s.written) return false;
        if (s.state == SlotState::LIVE) ++locked;
      }
    return locked == expected_locks;
  }

  // As the state machine finishes a transaction's slots on one group.
  uint32_t finish_slots(FakeGroup& g, uint64_t txid, TxDecision d) {
    uint32_t n = 0;
    for (auto& [k, s] : g.slots) {
      if (s.txid != txid) continue;
      bool fresh = s.state == SlotState::PREPARED;
      if (d == TxDecision::COMMIT) {
        s.state = fresh ? SlotState::LIVE : s.redirect.null() ? SlotState::DELETED : SlotState::REDIRECT;
      } else if (fresh) {
        s.state = SlotState::DELETED;
      } else {
        s.redirect = Location{};
      }
      s.txid = 0;
      s.tx_primary = 0;
      ++s.applied;
      ++n;
    }
    return n;
  }

  size_t steps_ = 0;

 public:
  size_t expected_locks = 0;
};

// A file P -> A -> B -> C -> D -> S; the transaction replaces A..D (on groups 1, 2, 1, 3) with
// the new content cut into 4-byte pieces on group 1, the primary.
struct Scenario {
  Scenario() {
    fake.seed(at(1, 1), "P:", at(1, 2), 3);
    fake.seed(at(1, 2), "aaaa", at(2, 3), 5);
    fake.seed(at(2, 3), "bbbb", at(1, 4), 7);
    fake.seed(at(1, 4), "cccc", at(3, 5), 9);
    fake.seed(at(3, 5), "dddd", at(2, 6), 11);
    fake.seed(at(2, 6), ":S", Location{}, 13);
    fake.head = at(1, 1);
    fake.old_content = "P:aaaabbbbccccdddd:S";
    fake.new_content = "P:" + kContent + ":S";
    fake.expected_locks = 4;
  }

  TxPlan plan() const {
    TxPlan p;
    p.txid = kTxid;
    p.ino = 42;
    for (Location l : {at(1, 2), at(2, 3), at(1, 4), at(3, 5)}) {
      SlotMeta m;
      m.loc = l;
      m.state = SlotState::LIVE;
      m.applied_index = fake.groups.at(l.group).slots.at(l.slot).applied;
      m.next = fake.groups.at(l.group).slots.at(l.slot).next;
      p.old.push_back(m);
    }
    p.content = kContent;
    p.piece_bytes = 4;
    return p;
  }

  Result<std::vector<Location>> run(TxPlan p) {
    asio::io_context io;
    std::optional<Result<std::vector<Location>>> out;
    Transaction tx(fake, std::move(p), [this](uint64_t txid) {
      EXPECT_EQ(txid, kTxid);
      fake.note("after_prepare");
    });
    asio::co_spawn(io, tx.run(), [&](std::exception_ptr e, Result<std::vector<Location>> r) {
      if (e) std::rethrow_exception(e);
      out = std::move(r);
    });
    io.run();
    EXPECT_TRUE(out.has_value());
    return out ? std::move(*out) : Result<std::vector<Location>>(make_error(Code::INTERNAL, "did not finish"));
  }
  Result<std::vector<Location>> run() { return run(plan()); }

  // No reader ever saw a mix, and the coordinator kept to the protocol.
  void expect_clean() {
    EXPECT_TRUE(fake.bad_views.empty()) << "a reader saw: " << fake.bad_views.front();
    EXPECT_TRUE(fake.violations.empty()) << fake.violations.front();
  }

  static constexpr uint64_t kTxid = 0x5eed;
  inline static const std::string kContent = "0123456789abcde";  // 4 pieces: 4 + 4 + 4 + 3 bytes
  inline static const std::vector<std::string> kPrepare = {
      "reserve g1 x4", "write g1 s100", "write g1 s101", "write g1 s102", "write g1 s103",
      "lock g1 s2",    "lock g2 s3",    "lock g1 s4",    "lock g3 s5",    "after_prepare"};
  FakeGroups fake;
};

using Calls = std::vector<std::string>;

// The calls of the prepare phase (and the hook), then these.
Calls prepared_then(Calls rest) {
  Calls all = Scenario::kPrepare;
  all.insert(all.end(), rest.begin(), rest.end());
  return all;
}

TEST(Transaction, commitRunsEveryStepInOrder) {
  Scenario s;
  auto r = s.run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, (std::vector<Location>{at(1, 100), at(1, 101), at(1, 102), at(1, 103)}));
  EXPECT_EQ(s.fake.calls,
            prepared_then({"decide g1 COMMIT", "finish g2 commit", "finish g3 commit", "forget g1"}));
  EXPECT_EQ(s.fake.read(), s.fake.new_content);
  // The pieces and their links as written; the old slices' fates as locked.
  auto& g1 = s.fake.groups[1].slots;
  EXPECT_EQ(g1[100].bytes + g1[101].bytes + g1[102].bytes + g1[103].bytes, Scenario::kContent);
  EXPECT_EQ(g1[103].bytes, "cde");
  EXPECT_EQ(g1[100].next, at(1, 101));
  EXPECT_EQ(g1[103].next, at(2, 6)) << "the last new slice points where the last old one did";
  EXPECT_EQ(g1[2].state, SlotState::REDIRECT);
  EXPECT_EQ(g1[2].redirect, at(1, 100));
  EXPECT_EQ(g1[4].state, SlotState::DELETED);
  EXPECT_EQ(s.fake.groups[2].slots[3].state, SlotState::DELETED);
  EXPECT_EQ(s.fake.groups[3].slots[5].state, SlotState::DELETED);
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  EXPECT_EQ(s.fake.decision(1, Scenario::kTxid), TxDecision::NONE) << "forgotten once every group finished";
  s.expect_clean();
}

TEST(Transaction, oneGroupAndEmptyContent) {
  Scenario s;
  // Everything on the primary: no TX_FINISH at all; no bytes left: one empty piece.
  TxPlan p = s.plan();
  p.old.resize(1);
  p.content.clear();
  s.fake.new_content = "P:bbbbccccdddd:S";
  s.fake.expected_locks = 1;
  auto r = s.run(p);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(s.fake.calls, (Calls{"reserve g1 x1", "write g1 s100", "lock g1 s2", "after_prepare", "decide g1 COMMIT",
                                 "forget g1"}));
  EXPECT_EQ(s.fake.read(), s.fake.new_content);
  s.expect_clean();
}

TEST(Transaction, failedWriteAborts) {
  Scenario s;
  s.fake.fail("write g1 s101", Code::IO_ERROR);
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::IO_ERROR);
  EXPECT_EQ(r.error().message, "injected failure of write g1 s101") << "the step's own error";
  EXPECT_EQ(s.fake.calls, (Calls{"reserve g1 x4", "write g1 s100", "write g1 s101", "decide g1 ABORT",
                                 "finish g2 abort", "finish g3 abort"}));
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  EXPECT_EQ(s.fake.pending_slots(), 0u) << "the abort freed the new slots";
  EXPECT_EQ(s.fake.decision(1, Scenario::kTxid), TxDecision::ABORT);
  s.expect_clean();
}

TEST(Transaction, conflictingLockAborts) {
  Scenario s;
  TxPlan p = s.plan();
  ++s.fake.groups[2].slots[3].applied;  // B changed since the walk
  auto r = s.run(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::CONFLICT);
  EXPECT_EQ(r.error().message, "s3 changed since the walk");
  Calls want(Scenario::kPrepare.begin(), Scenario::kPrepare.begin() + 7);
  for (const char* c : {"decide g1 ABORT", "finish g2 abort", "finish g3 abort"}) want.push_back(c);
  EXPECT_EQ(s.fake.calls, want);
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  EXPECT_EQ(s.fake.pending_slots(), 0u) << "A is unlocked, the new slots freed";
  EXPECT_TRUE(s.fake.groups[1].slots[2].redirect.null());
  s.expect_clean();
}

TEST(Transaction, lockWhoseAnswerWasLostIsReleasedByTheAbort) {
  Scenario s;
  s.fake.fail("lock g3 s5", Code::TIMEOUT, /*applied=*/true);
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::TIMEOUT);
  EXPECT_EQ(s.fake.calls.back(), "finish g3 abort");
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  s.expect_clean();
}

TEST(Transaction, failedReserveReturnsItsErrorAndLocksNothing) {
  Scenario s;
  // As before the coordinator was split out: nothing is locked yet, so nothing is aborted.
  s.fake.fail("reserve g1 x4", Code::UNAVAILABLE);
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::UNAVAILABLE);
  EXPECT_EQ(r.error().message, "injected failure of reserve g1 x4");
  EXPECT_EQ(s.fake.calls, (Calls{"reserve g1 x4"}));
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  s.expect_clean();
}

TEST(Transaction, shortReserveIsAnInternalErrorAndRecoveryFreesTheSlots) {
  Scenario s;
  s.fake.short_reserve = true;
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::INTERNAL);
  EXPECT_EQ(r.error().message, "reserve returned the wrong count");
  EXPECT_EQ(s.fake.calls, (Calls{"reserve g1 x4"}));
  EXPECT_EQ(s.fake.pending_slots(), 3u);
  s.fake.recover();
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  s.expect_clean();
}

TEST(Transaction, lostCommitAnswerThenAskingAgainFindsTheCommit) {
  Scenario s;
  s.fake.fail("decide g1 COMMIT", Code::UNAVAILABLE, /*applied=*/true);
  auto r = s.run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(s.fake.calls, prepared_then({"decide g1 COMMIT", "decide g1 ABORT", "finish g2 commit",
                                         "finish g3 commit", "forget g1"}));
  EXPECT_EQ(s.fake.read(), s.fake.new_content);
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  s.expect_clean();
}

TEST(Transaction, commitThatNeverArrivedIsAbortedWhenAskingAgain) {
  Scenario s;
  s.fake.fail("decide g1 COMMIT", Code::TIMEOUT);
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::CONFLICT);
  EXPECT_EQ(r.error().message, "transaction 0000000000005eed was aborted (it timed out)");
  EXPECT_EQ(s.fake.calls, prepared_then({"decide g1 COMMIT", "decide g1 ABORT", "decide g1 ABORT",
                                         "finish g2 abort", "finish g3 abort"}));
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  s.expect_clean();
}

TEST(Transaction, primaryDecidedAbortFirst) {
  Scenario s;
  // A participant's timeout recovery got to the primary before the coordinator's commit.
  s.fake.groups[1].decisions[Scenario::kTxid] = TxDecision::ABORT;
  auto r = s.run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::CONFLICT);
  EXPECT_NE(r.error().message.find("was aborted"), std::string::npos);
  EXPECT_EQ(s.fake.calls, prepared_then({"decide g1 COMMIT", "decide g1 ABORT", "finish g2 abort",
                                         "finish g3 abort"}));
  EXPECT_EQ(s.fake.read(), s.fake.old_content);
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  s.expect_clean();
}

TEST(Transaction, noAnswerToEitherDecisionIsUnavailable) {
  for (bool committed : {false, true}) {
    SCOPED_TRACE(committed ? "the commit arrived, its answer was lost" : "the commit never arrived");
    Scenario s;
    s.fake.fail("decide g1 COMMIT", Code::TIMEOUT, committed);
    s.fake.fail("decide g1 ABORT", Code::UNAVAILABLE);
    auto r = s.run();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), Code::UNAVAILABLE);
    EXPECT_EQ(r.error().message,
              "group 1 did not answer the commit of transaction 0000000000005eed (injected failure of decide g1 "
              "COMMIT); the edit is rolled back unless it committed before the failure");
    EXPECT_EQ(s.fake.calls, prepared_then({"decide g1 COMMIT", "decide g1 ABORT"}))
        << "nothing more: the outcome is unknown here";
    // The participants' recovery settles it either way.
    s.fake.recover();
    EXPECT_EQ(s.fake.pending_slots(), 0u);
    EXPECT_EQ(s.fake.read(), committed ? s.fake.new_content : s.fake.old_content);
    s.expect_clean();
  }
}

TEST(Transaction, groupThatCannotBeToldStillCommitsButKeepsTheDecision) {
  Scenario s;
  s.fake.fail("finish g2 commit", Code::UNAVAILABLE);
  auto r = s.run();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(s.fake.calls, prepared_then({"decide g1 COMMIT", "finish g2 commit", "finish g3 commit"}))
      << "no TX_FORGET: group 2 still needs the decision";
  EXPECT_EQ(s.fake.read(), s.fake.new_content);
  EXPECT_EQ(s.fake.decision(1, Scenario::kTxid), TxDecision::COMMIT);
  EXPECT_EQ(s.fake.groups[2].slots[3].txid, Scenario::kTxid) << "B is still locked";
  s.fake.recover();
  EXPECT_EQ(s.fake.groups[2].slots[3].state, SlotState::DELETED) << "group 2 learns the commit from the primary";
  EXPECT_EQ(s.fake.pending_slots(), 0u);
  EXPECT_EQ(s.fake.read(), s.fake.new_content);
  s.expect_clean();
}

TEST(Transaction, coordinatorCrashAfterEveryStepIsSettledByRecovery) {
  // The steps of a commit, without the hook: 13 (k = 13 is no crash at all). A crash at step k:
  // the k-th step and every one after it never arrive (or, lost, the k-th arrives and only its
  // answer is lost).
  const size_t steps = Scenario::kPrepare.size() - 1 + 4;
  for (size_t k = 0; k <= steps; ++k) {
    for (bool lost : {false, true}) {
      SCOPED_TRACE(fmt::format("crash at step {}{}", k, lost ? " (its answer lost)" : ""));
      Scenario s;
      s.fake.crash_at = k;
      s.fake.crash_lost = lost;
      auto r = s.run();
      // What the coordinator reports agrees with what the primary recorded (the recorded
      // decision may be forgotten already, after a TX_FORGET).
      bool committed = s.fake.groups[1].committed.count(Scenario::kTxid) > 0;
      const size_t decide_step = 9;  // reserve, 4 writes, 4 locks, then TX_DECIDE(commit)
      EXPECT_EQ(committed, k > decide_step || (k == decide_step && lost)) << "committed by that step alone";
      if (r.ok()) {
        EXPECT_TRUE(committed);
      } else if (r.error().message.find("did not answer the commit") == std::string::npos) {
        EXPECT_FALSE(committed) << r.error().to_string();
      }
      // Whatever is left — slots prepared or locked, with a decision recorded or none — the
      // participants' timeout recovery finishes: the file is entirely old or entirely new.
      s.fake.recover();
      EXPECT_EQ(s.fake.pending_slots(), 0u);
      EXPECT_EQ(s.fake.read(), committed ? s.fake.new_content : s.fake.old_content);
      s.expect_clean();
    }
  }
}

}  // namespace
