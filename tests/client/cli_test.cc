// The `mydfs` command-line program, run as a real process (fork/exec) against nothing, a silent
// listener, or a fake tracker: an RpcServer in this process that answers CLUSTER_STATUS with a
// canned document and records ADD_GROUP requests.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../integration/harness.h"
#include "../support/temp_dir.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"

namespace mydfs {
namespace {

using namespace std::chrono_literals;

// gtest without gmock: substring checks that print both strings when they fail.
#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "missing: " << (needle) << "\nin:\n" << (haystack)
#define EXPECT_LACKS(haystack, needle)                             \
  EXPECT_EQ(std::string(haystack).find(needle), std::string::npos) \
      << "unexpected: " << (needle) << "\nin:\n" << (haystack)

struct Run {
  int code = -1;  // exit status, or -signal
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs the mydfs binary with args; env_tracker sets MYDFS_TRACKER (unset when nullopt). Killed
// after 30 s so a hung client fails the test instead of the suite. With interrupt_when, the
// program gets one SIGINT (as from Ctrl-C) once interrupt_when(its standard output so far) is true.
Run run_cli(const std::vector<std::string>& args, std::optional<std::string> env_tracker = std::nullopt,
            std::function<bool(const std::string&)> interrupt_when = nullptr) {
  static const std::string bin = testing::binary("MYDFS_CLI_BIN");
  testing::TempDir dir;
  std::string out_path = dir / "stdout", err_path = dir / "stderr";
  pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) _exit(126);
    dup2(o, 1);
    dup2(e, 2);
    if (env_tracker) setenv("MYDFS_TRACKER", env_tracker->c_str(), 1);
    else unsetenv("MYDFS_TRACKER");
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  Run r;
  int st = 0;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  bool interrupted = false;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    if (interrupt_when && !interrupted && interrupt_when(slurp(out_path))) {
      ::kill(pid, SIGINT);
      interrupted = true;
    }
    std::this_thread::sleep_for(10ms);
  }
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::string addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// The status document of the tracker's CLUSTER_STATUS, as the tracker shapes it.
const char* kStatusJson = R"json({
  "groups": [
    {"id": 1, "usable": true, "leader": "127.0.0.1:7100", "free_slots": 250, "capacity_slots": 256, "free_bytes": 1048576000, "capacity_bytes": 1073741824, "promised": 3,
     "members": [
       {"address": "127.0.0.1:7100", "node_id": 1, "role": "leader", "term": 2, "up": true, "heard": true,
        "seconds_since_heartbeat": 0.4, "free_slots": 250, "free_bytes": 1048576000, "used_bytes": 25165824, "live_bytes": 18874368, "capacity_slots": 256, "high_water": 7,
        "in_flight": 2, "qps": 12.5, "http": "127.0.0.1:8100"},
       {"address": "127.0.0.1:7101", "node_id": 2, "role": "follower", "term": 2, "up": false, "heard": true,
        "seconds_since_heartbeat": 3.1, "free_slots": 250, "free_bytes": 1048576000, "used_bytes": 25165824, "live_bytes": 18874368, "capacity_slots": 256, "high_water": 7,
        "in_flight": 0, "qps": 0.0, "http": "127.0.0.1:8101"}]},
    {"id": 12, "usable": false, "leader": "", "free_slots": 0, "capacity_slots": 0, "free_bytes": 0, "capacity_bytes": 0, "promised": 0,
     "members": [
       {"address": "10.0.0.7:7102", "node_id": 0, "role": "", "term": 0, "up": false, "heard": false,
        "seconds_since_heartbeat": 0, "free_slots": 0, "capacity_slots": 0, "high_water": 0,
        "in_flight": 0, "qps": 0.0, "http": ""}]}],
  "inodes": 12, "files": 9, "edit_log_bytes": 1234, "applied_index": 55, "image_index": 40,
  "events": [
    {"seconds_ago": 3.2, "text": "member 127.0.0.1:7101 of group 1 is down (no heartbeat for 3.1 s)"},
    {"seconds_ago": 400, "text": "group 12 added"}]
})json";

// The text `mydfs admin status` prints for kStatusJson.
const char* kStatusText =
    "cluster: 2 group(s), 1 usable; 3 member(s), 1 up; free 1000.0 MiB of 1.0 GiB, 250 slots\n"
    "\n"
    "group 1   usable      leader 127.0.0.1:7100  free 1000.0 MiB of 1.0 GiB, 250 slots  promised 3\n"
    "  ADDRESS         NODE  ROLE       STATE  HEARTBEAT        USED        FREE  WASTE  IN-FLIGHT      QPS\n"
    "  127.0.0.1:7100     1  leader     up          0.4s    24.0 MiB  1000.0 MiB    25%          2     12.5\n"
    "  127.0.0.1:7101     2  follower   DOWN        3.1s    24.0 MiB  1000.0 MiB    25%          0      0.0\n"
    "\n"
    "group 12  NOT USABLE  leader -               free 0 B of 0 B, 0 slots  promised 0\n"
    "  ADDRESS         NODE  ROLE       STATE  HEARTBEAT        USED        FREE  WASTE  IN-FLIGHT      QPS\n"
    "  10.0.0.7:7102      -  -          DOWN       never           -           -      -          -        -\n"
    "\n"
    "namespace: 12 inode(s), 9 file(s)\n"
    "edit log:  1.2 KiB, applied index 55, image index 40\n"
    "\n"
    "recent events:\n"
    "    6m40s ago  group 12 added\n"
    "     3.2s ago  member 127.0.0.1:7101 of group 1 is down (no heartbeat for 3.1 s)\n";

// An RpcServer on its own thread standing in for the tracker.
class FakeTracker {
 public:
  FakeTracker() : server_(io_, proto::ServerOptions{}, &metrics_, "fake-tracker") {
    server_.route<proto::ClusterStatusReq>(
        [this](proto::ClusterStatusReq, proto::Inbound&, proto::Outbound&)
            -> proto::awaitable<Result<proto::ClusterStatusResp>> {
          std::lock_guard lk(mu_);
          ++status_calls_;
          co_return proto::ClusterStatusResp{status_json_};
        });
    // Group 7 exists already; everything else is accepted and recorded.
    server_.route<proto::AddGroupReq>(
        [this](proto::AddGroupReq req, proto::Inbound&, proto::Outbound&)
            -> proto::awaitable<Result<proto::AddGroupResp>> {
          std::lock_guard lk(mu_);
          add_requests_.push_back(req);
          if (req.id == 7) co_return make_error(Code::CONFLICT, "group 7 already exists");
          co_return proto::AddGroupResp{};
        });
    auto st = server_.listen("127.0.0.1", 0);
    if (!st.ok()) throw std::runtime_error(st.error().to_string());
    server_.start();
    thread_ = std::thread([this] {
      auto work = boost::asio::make_work_guard(io_);
      io_.run();
    });
  }
  ~FakeTracker() {
    boost::asio::post(io_, [this] { server_.stop(); });
    io_.stop();
    thread_.join();
  }

  std::string address() const { return addr(server_.port()); }
  void set_status(std::string json) {
    std::lock_guard lk(mu_);
    status_json_ = std::move(json);
  }
  int status_calls() {
    std::lock_guard lk(mu_);
    return status_calls_;
  }
  std::vector<proto::AddGroupReq> add_requests() {
    std::lock_guard lk(mu_);
    return add_requests_;
  }

 private:
  boost::asio::io_context io_;
  Metrics metrics_;
  proto::RpcServer server_;
  std::thread thread_;
  std::mutex mu_;
  std::string status_json_ = kStatusJson;
  int status_calls_ = 0;
  std::vector<proto::AddGroupReq> add_requests_;
};

// ---- Usage ----------------------------------------------------------------------------------

TEST(CliTest, help_listsAdminAndTracker) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "admin");
  EXPECT_CONTAINS(r.out, "--tracker");
  EXPECT_CONTAINS(r.out, "MYDFS_TRACKER");
  EXPECT_EQ(r.err, "");
}

TEST(CliTest, help_eachSubcommand) {
  auto admin = run_cli({"admin", "--help"});
  EXPECT_EQ(admin.code, 0);
  EXPECT_CONTAINS(admin.out, "status");
  EXPECT_CONTAINS(admin.out, "add-group");
  auto status = run_cli({"admin", "status", "--help"});
  EXPECT_EQ(status.code, 0);
  EXPECT_CONTAINS(status.out, "--json");
  auto top = run_cli({"admin", "top", "--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_CONTAINS(top.out, "--interval");
  EXPECT_CONTAINS(top.out, "--iterations");
  for (auto column : {"QPS 1m", "IN FLIGHT", "IN MB/s", "OUT MB/s", "POOL %", "FREE GiB"})
    EXPECT_CONTAINS(top.out, column);
  auto add = run_cli({"admin", "add-group", "--help"});
  EXPECT_EQ(add.code, 0);
  EXPECT_CONTAINS(add.out, "ID");
  EXPECT_CONTAINS(add.out, "ADDRESS");
}

TEST(CliTest, unknownCommand_usageOnStderrExit2) {
  auto r = run_cli({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_CONTAINS(r.err, "mydfs: unknown command 'frobnicate'");
  EXPECT_CONTAINS(r.err, "Usage:");

  auto sub = run_cli({"admin", "frobnicate"});
  EXPECT_EQ(sub.code, 2);
  EXPECT_CONTAINS(sub.err, "mydfs: admin: unknown command 'frobnicate'");
  EXPECT_CONTAINS(sub.err, "add-group");
}

TEST(CliTest, noCommand_usageExit2) {
  auto r = run_cli({});
  EXPECT_EQ(r.code, 2);
  EXPECT_CONTAINS(r.err, "Usage:");
  EXPECT_EQ(run_cli({"admin"}).code, 2);
}

TEST(CliTest, addGroup_missingAddress_exit2) {
  auto r = run_cli({"admin", "add-group", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_CONTAINS(r.err, "ADDRESS");
}

// ---- add-group ------------------------------------------------------------------------------

TEST(CliTest, addGroup_badArguments_refusedBeforeAnyCall) {
  FakeTracker t;
  auto zero = run_cli({"--tracker", t.address(), "admin", "add-group", "0", "x"});
  EXPECT_EQ(zero.code, 2);
  EXPECT_CONTAINS(zero.err, "mydfs: add-group: invalid group id '0'");
  EXPECT_CONTAINS(zero.err, "mydfs admin add-group --help");

  for (auto id : {"-1", "abc", "4294967296", "1x"}) {
    auto r = run_cli({"--tracker", t.address(), "admin", "add-group", id, "127.0.0.1:7100"});
    EXPECT_EQ(r.code, 2) << id;
    EXPECT_CONTAINS(r.err, "invalid group id") << id << ": " << r.err;
  }
  auto bad_addr = run_cli({"--tracker", t.address(), "admin", "add-group", "1", "127.0.0.1:7100", "x"});
  EXPECT_EQ(bad_addr.code, 2);
  EXPECT_CONTAINS(bad_addr.err, "mydfs: add-group: bad address 'x': expected HOST:PORT");
  auto bad_port = run_cli({"--tracker", t.address(), "admin", "add-group", "1", "h:99999"});
  EXPECT_EQ(bad_port.code, 2);
  EXPECT_CONTAINS(bad_port.err, "bad port in 'h:99999'");
  auto port0 = run_cli({"--tracker", t.address(), "admin", "add-group", "1", "h:0"});
  EXPECT_EQ(port0.code, 2);
  auto twice = run_cli({"--tracker", t.address(), "admin", "add-group", "1", ":7100", "127.0.0.1:7100"});
  EXPECT_EQ(twice.code, 2);
  EXPECT_CONTAINS(twice.err, "address '127.0.0.1:7100' given twice");

  EXPECT_TRUE(t.add_requests().empty());
}

TEST(CliTest, addGroup_sendsNormalizedAddresses) {
  FakeTracker t;
  auto r = run_cli({"--tracker", t.address(), "admin", "add-group", "3", ":7101", "10.1.2.3:7102", "node-c:7103"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "added group 3 with 3 member(s)\n");
  EXPECT_EQ(r.err, "");
  auto reqs = t.add_requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].id, 3u);
  EXPECT_EQ(reqs[0].addresses, (std::vector<std::string>{"127.0.0.1:7101", "10.1.2.3:7102", "node-c:7103"}));
}

TEST(CliTest, addGroup_errorReply_exit1WithMessage) {
  FakeTracker t;
  auto r = run_cli({"--tracker", t.address(), "admin", "add-group", "7", "127.0.0.1:7100"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "mydfs: add-group: group 7 already exists\n");
}

// ---- status ---------------------------------------------------------------------------------

TEST(CliTest, status_nothingListening_cannotReachTracker) {
  uint16_t port = testing::free_port();
  auto r = run_cli({"--tracker", addr(port), "admin", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_CONTAINS(r.err, "mydfs: cannot reach tracker " + addr(port) + ": ");
  EXPECT_CONTAINS(r.err, "refused");
}

// A tracker that accepts the connection (the kernel does, from the backlog) but never answers:
// the call gives up after its 5 s deadline and says so.
TEST(CliTest, status_silentTracker_timesOut) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 8), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli({"--tracker", addr(ntohs(a.sin_port)), "admin", "status"});
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(s);
  EXPECT_EQ(r.code, 1);
  EXPECT_CONTAINS(r.err, "mydfs: cannot reach tracker " + addr(ntohs(a.sin_port)));
  EXPECT_CONTAINS(r.err, ": no reply within 5 s\n");
  EXPECT_GE(took, 4500ms);
  EXPECT_LT(took, 15s);
}

TEST(CliTest, status_table) {
  FakeTracker t;
  auto r = run_cli({"--tracker", t.address(), "admin", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, kStatusText);
  EXPECT_EQ(r.err, "");
}

TEST(CliTest, status_json_isTheDocumentPrettyPrinted) {
  FakeTracker t;
  auto r = run_cli({"--tracker", t.address(), "admin", "status", "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  // Same document, keys in the tracker's order, two-space indentation.
  EXPECT_EQ(r.out, nlohmann::ordered_json::parse(kStatusJson).dump(2) + "\n");
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(kStatusJson));
  EXPECT_EQ(r.out.rfind("{\n  \"groups\": [\n", 0), 0u);
}

TEST(CliTest, status_emptyClusterAndMissingFields) {
  FakeTracker t;
  t.set_status(R"({"groups": [], "events": []})");
  auto r = run_cli({"--tracker", t.address(), "admin", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "cluster: 0 group(s)");
  EXPECT_CONTAINS(r.out, "no storage groups yet");
  EXPECT_CONTAINS(r.out, "namespace: 0 inode(s), 0 file(s)");
  EXPECT_CONTAINS(r.out, "no recent events");
}

TEST(CliTest, status_onlyTheLastEvents) {
  FakeTracker t;
  nlohmann::json doc = {{"groups", nlohmann::json::array()}, {"events", nlohmann::json::array()}};
  for (int i = 0; i < 25; ++i)
    doc["events"].push_back({{"seconds_ago", 100 - i}, {"text", "event " + std::to_string(i)}});
  t.set_status(doc.dump());
  auto r = run_cli({"--tracker", t.address(), "admin", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "recent events (last 10 of 25):");
  EXPECT_CONTAINS(r.out, "event 24\n");
  EXPECT_CONTAINS(r.out, "event 15\n");
  EXPECT_LACKS(r.out, "event 14\n");
  EXPECT_LT(r.out.find("event 15"), r.out.find("event 24"));  // newest last
}

TEST(CliTest, status_malformedJson_exit1) {
  FakeTracker t;
  t.set_status("{not json");
  auto r = run_cli({"--tracker", t.address(), "admin", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_CONTAINS(r.err, "mydfs: status: tracker sent malformed JSON");
}

// ---- top ------------------------------------------------------------------------------------

// Two groups of three members, one of them down, with the load figures the tracker reports.
const char* kTopStatusJson = R"json({
  "daemon": "tracker", "uptime_seconds": 300.0,
  "tracker": {"qps": 4.5, "qps_1m": 2.0, "in_flight": 1},
  "inodes": 12, "files": 9, "members_up": 5, "members_down": 1,
  "groups": [
    {"id": 1, "usable": true, "leader": "127.0.0.1:7100", "free_slots": 250, "capacity_slots": 256, "free_bytes": 1048576000, "capacity_bytes": 1073741824, "promised": 0,
     "members": [
       {"address": "127.0.0.1:7100", "node_id": 1, "role": "leader", "up": true, "heard": true,
        "free_slots": 250, "free_bytes": 1048576000, "used_bytes": 25165824, "live_bytes": 18874368, "capacity_slots": 256, "in_flight": 2, "qps": 12.5, "qps_1m": 3.1,
        "bytes_in_per_s": 2500000.0, "bytes_out_per_s": 500000.0, "pool_utilization": 0.25},
       {"address": "127.0.0.1:7101", "node_id": 2, "role": "follower", "up": true, "heard": true,
        "free_slots": 128, "free_bytes": 536870912, "used_bytes": 536870912, "live_bytes": 402653184, "capacity_slots": 256, "in_flight": 0, "qps": 7.0, "qps_1m": 6.5,
        "bytes_in_per_s": 2500000.0, "bytes_out_per_s": 0.0, "pool_utilization": 0.5},
       {"address": "127.0.0.1:7102", "node_id": 3, "role": "follower", "up": false, "heard": true,
        "free_slots": 250, "free_bytes": 1048576000, "used_bytes": 25165824, "live_bytes": 18874368, "capacity_slots": 256, "in_flight": 4, "qps": 9.9, "qps_1m": 8.8,
        "bytes_in_per_s": 1000000.0, "bytes_out_per_s": 1000000.0, "pool_utilization": 0.1}]},
    {"id": 2, "usable": true, "leader": "127.0.0.1:7200", "free_slots": 256, "capacity_slots": 256, "free_bytes": 1073741824, "capacity_bytes": 1073741824, "promised": 0,
     "members": [
       {"address": "127.0.0.1:7200", "node_id": 4, "role": "leader", "up": true, "heard": true,
        "free_slots": 256, "free_bytes": 1073741824, "used_bytes": 0, "live_bytes": 0, "capacity_slots": 256, "in_flight": 1, "qps": 20.0, "qps_1m": 18.2,
        "bytes_in_per_s": 0.0, "bytes_out_per_s": 4194304.0, "pool_utilization": 0.75},
       {"address": "127.0.0.1:7201", "node_id": 5, "role": "follower", "up": true, "heard": true,
        "free_slots": 256, "free_bytes": 1073741824, "used_bytes": 0, "live_bytes": 0, "capacity_slots": 256, "in_flight": 0, "qps": 1.5, "qps_1m": 1.4,
        "bytes_in_per_s": 0.0, "bytes_out_per_s": 0.0, "pool_utilization": 0.0},
       {"address": "127.0.0.1:7202", "node_id": 6, "role": "follower", "up": true, "heard": true,
        "free_slots": 256, "free_bytes": 1073741824, "used_bytes": 0, "live_bytes": 0, "capacity_slots": 256, "in_flight": 0, "qps": 0.5, "qps_1m": 0.6,
        "bytes_in_per_s": 0.0, "bytes_out_per_s": 0.0, "pool_utilization": 0.0}]}],
  "hot_slices": [
    {"group": 2, "node_id": 4, "address": "127.0.0.1:7200", "slot": 9, "gen": 1, "file_id": 12,
     "path": "/big.iso", "reads": 90, "reads_all_time": 90, "cached": true},
    {"group": 1, "node_id": 1, "address": "127.0.0.1:7100", "slot": 5, "gen": 2, "file_id": 7,
     "path": "/dir/file.bin", "reads": 40, "reads_all_time": 140, "cached": true},
    {"group": 1, "node_id": 1, "address": "127.0.0.1:7100", "slot": 6, "gen": 1, "file_id": 8,
     "path": "", "reads": 30, "reads_all_time": 30, "cached": false},
    {"group": 2, "node_id": 4, "address": "127.0.0.1:7200", "slot": 10, "gen": 1, "file_id": 12,
     "path": "/big.iso", "reads": 20, "reads_all_time": 20, "cached": false},
    {"group": 2, "node_id": 4, "address": "127.0.0.1:7200", "slot": 11, "gen": 1, "file_id": 12,
     "path": "/big.iso", "reads": 10, "reads_all_time": 10, "cached": false},
    {"group": 1, "node_id": 1, "address": "127.0.0.1:7100", "slot": 77, "gen": 3, "file_id": 9,
     "path": "/cold.txt", "reads": 1, "reads_all_time": 1, "cached": false}],
  "events": [
    {"seconds_ago": 400, "text": "group 2 added"},
    {"seconds_ago": 60, "text": "group 1 leader is now node 1 at 127.0.0.1:7100 (term 2)"},
    {"seconds_ago": 5, "text": "group 2 leader is now node 4 at 127.0.0.1:7200 (term 1)"},
    {"seconds_ago": 3.2, "text": "member 127.0.0.1:7102 of group 1 is down (no heartbeat for 3.0 s)"}]
})json";

// The frames in `admin top` output: each starts with its header line "tracker ADDR at TIME".
std::vector<std::string> top_frames(const std::string& out, const std::string& tracker) {
  std::vector<std::string> frames;
  const std::string head = "tracker " + tracker + " at ";
  for (size_t at = out.find(head); at != std::string::npos;) {
    size_t next = out.find(head, at + 1);
    frames.push_back(out.substr(at, next == std::string::npos ? std::string::npos : next - at));
    at = next;
  }
  return frames;
}

// The whitespace-separated words of the first line of text that contains needle.
std::vector<std::string> words_of_line(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  if (at == std::string::npos) return {};
  size_t begin = text.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  size_t end = text.find('\n', at);
  std::istringstream line(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
  std::vector<std::string> words;
  for (std::string w; line >> w;) words.push_back(w);
  return words;
}

using Words = std::vector<std::string>;

TEST(CliTest, top_iterations_framesWithEveryMember) {
  FakeTracker t;
  t.set_status(kTopStatusJson);
  auto r = run_cli({"--tracker", t.address(), "admin", "top", "--iterations", "2", "--interval", "0.2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(t.status_calls(), 2);
  // Not a terminal: no escape codes, frames one after another with a blank line between.
  EXPECT_LACKS(r.out, "\x1b");
  EXPECT_EQ(r.out.rfind("tracker " + t.address() + " at ", 0), 0u);
  auto frames = top_frames(r.out, t.address());
  ASSERT_EQ(frames.size(), 2u) << r.out;
  EXPECT_TRUE(frames[0].ends_with("s)\n\n")) << frames[0];
  EXPECT_TRUE(frames[1].ends_with("s)\n")) << frames[1];
  for (const auto& f : frames) {
    EXPECT_CONTAINS(f, ": 12 inodes, 9 files; members 5 up, 1 down; tracker 4.5 qps\n");
    EXPECT_CONTAINS(f, "GROUP  NODE  ADDRESS");
    // GROUP NODE ADDRESS ROLE STATE QPS QPS-1m IN-FLIGHT IN-MB/s OUT-MB/s POOL-% FREE-GiB FREE-%
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7100"),
              (Words{"1", "1", "127.0.0.1:7100", "leader", "up", "12.5", "3.1", "2", "2.5", "0.5", "25", "24.0", "MiB", "1000.0", "MiB", "98", "25%"}));
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7101"),
              (Words{"1", "2", "127.0.0.1:7101", "follower", "up", "7.0", "6.5", "0", "2.5", "0.0", "50", "512.0", "MiB", "512.0", "MiB", "50", "25%"}));
    // Down: its load figures are stale, so none are shown; its space is the last reported.
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7102"),
              (Words{"1", "3", "127.0.0.1:7102", "follower", "DOWN", "-", "-", "-", "-", "-", "-", "24.0", "MiB", "1000.0", "MiB", "98", "25%"}));
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7200"),
              (Words{"2", "4", "127.0.0.1:7200", "leader", "up", "20.0", "18.2", "1", "0.0", "4.2", "75", "0", "B", "1.0", "GiB", "100", "-"}));
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7201"),
              (Words{"2", "5", "127.0.0.1:7201", "follower", "up", "1.5", "1.4", "0", "0.0", "0.0", "0", "0", "B", "1.0", "GiB", "100", "-"}));
    EXPECT_EQ(words_of_line(f, "127.0.0.1:7202"),
              (Words{"2", "6", "127.0.0.1:7202", "follower", "up", "0.5", "0.6", "0", "0.0", "0.0", "0", "0", "B", "1.0", "GiB", "100", "-"}));
    // The 5 most-read slices, hottest first; a slice of a file with no name shows its inode.
    EXPECT_EQ(words_of_line(f, "2:9@1"), (Words{"2:9@1", "127.0.0.1:7200", "90", "/big.iso"}));
    EXPECT_EQ(words_of_line(f, "1:6@1"), (Words{"1:6@1", "127.0.0.1:7100", "30", "inode", "8"}));
    EXPECT_LT(f.find("2:9@1"), f.find("1:5@2"));
    EXPECT_LT(f.find("1:5@2"), f.find("2:11@1"));
    EXPECT_LACKS(f, "1:77@3");
    // The 3 newest events, newest last.
    EXPECT_LACKS(f, "group 2 added");
    EXPECT_CONTAINS(f, "group 1 leader is now node 1");
    EXPECT_LT(f.find("group 2 leader is now node 4"), f.find("member 127.0.0.1:7102 of group 1 is down"));
  }
}

// A tracker that does not report the newer figures (kStatusJson has no qps_1m, traffic, pool
// or tracker load): they show as "-", and the rest as usual.
TEST(CliTest, top_olderTracker_missingFiguresAsDashes) {
  FakeTracker t;
  auto r = run_cli({"--tracker", t.address(), "admin", "top", "--iterations", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.out, ": 12 inodes, 9 files; members 1 up, 2 down; tracker - qps\n");
  EXPECT_EQ(words_of_line(r.out, "127.0.0.1:7100"),
            (Words{"1", "1", "127.0.0.1:7100", "leader", "up", "12.5", "-", "2", "-", "-", "-", "24.0", "MiB", "1000.0", "MiB", "98", "25%"}));
  // Never heard from: nothing known but its address.
  EXPECT_EQ(words_of_line(r.out, "10.0.0.7:7102"),
            (Words{"12", "-", "10.0.0.7:7102", "-", "DOWN", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"}));
  EXPECT_CONTAINS(r.out, "hot slices: none read yet\n");
  EXPECT_EQ(top_frames(r.out, t.address()).size(), 1u);
}

TEST(CliTest, top_nothingListening_cannotReachTrackerExit1) {
  uint16_t port = testing::free_port();
  auto r = run_cli({"--tracker", addr(port), "admin", "top", "--iterations", "2", "--interval", "0.2"});
  EXPECT_EQ(r.code, 1);
  // Every try is a frame that says so; the last failure is also the error message.
  auto frames = top_frames(r.out, addr(port));
  ASSERT_EQ(frames.size(), 2u) << r.out;
  for (const auto& f : frames) {
    EXPECT_CONTAINS(f, "cannot reach tracker " + addr(port) + ": ");
    EXPECT_CONTAINS(f, "refused");
  }
  EXPECT_CONTAINS(r.err, "mydfs: cannot reach tracker " + addr(port) + ": ");
}

// Without --iterations it runs until Ctrl-C, which ends it after a whole frame, exit status 0.
TEST(CliTest, top_untilInterrupted_endsCleanly) {
  FakeTracker t;
  t.set_status(kTopStatusJson);
  auto r = run_cli({"--tracker", t.address(), "admin", "top", "--interval", "0.1"}, std::nullopt,
                   [&](const std::string& out) { return top_frames(out, t.address()).size() >= 3; });
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto frames = top_frames(r.out, t.address());
  EXPECT_GE(frames.size(), 3u);
  for (const auto& f : frames) EXPECT_CONTAINS(f, "member 127.0.0.1:7102 of group 1 is down");
}

TEST(CliTest, top_badArguments_refusedBeforeAnyCall) {
  FakeTracker t;
  for (auto interval : {"0", "-1", "3601", "abc", "1s", "nan", "inf"}) {
    auto r = run_cli({"--tracker", t.address(), "admin", "top", std::string("--interval=") + interval});
    EXPECT_EQ(r.code, 2) << interval;
    EXPECT_EQ(r.out, "") << interval;
    EXPECT_CONTAINS(r.err, std::string("mydfs: top: invalid interval '") + interval + "'");
    EXPECT_CONTAINS(r.err, "mydfs admin top --help");
  }
  for (auto n : {"-1", "x", "1.5"}) {
    auto r = run_cli({"--tracker", t.address(), "admin", "top", std::string("--iterations=") + n});
    EXPECT_EQ(r.code, 2) << n;
    EXPECT_CONTAINS(r.err, std::string("mydfs: top: invalid iterations '") + n + "'");
  }
  auto bad_tracker = run_cli({"--tracker", "nonsense", "admin", "top", "--iterations", "1"});
  EXPECT_EQ(bad_tracker.code, 2);
  EXPECT_CONTAINS(bad_tracker.err, "mydfs: --tracker: bad address 'nonsense'");
  EXPECT_EQ(t.status_calls(), 0);
}

// ---- Choosing the tracker -------------------------------------------------------------------

TEST(CliTest, tracker_fromEnvironment_flagWins) {
  FakeTracker t;
  auto env = run_cli({"admin", "status", "--json"}, t.address());
  EXPECT_EQ(env.code, 0) << env.err;
  EXPECT_EQ(t.status_calls(), 1);

  uint16_t dead = testing::free_port();
  auto flag = run_cli({"--tracker", addr(dead), "admin", "status"}, t.address());
  EXPECT_EQ(flag.code, 1);
  EXPECT_CONTAINS(flag.err, "cannot reach tracker " + addr(dead));
  EXPECT_EQ(t.status_calls(), 1);

  // The flag is accepted after the command too.
  auto after = run_cli({"admin", "status", "--tracker", t.address()}, addr(dead));
  EXPECT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(t.status_calls(), 2);
}

TEST(CliTest, tracker_hostName_isResolved) {
  FakeTracker t;
  auto r = run_cli({"--tracker", "localhost:" + t.address().substr(t.address().rfind(':') + 1), "admin", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.status_calls(), 1);
}

TEST(CliTest, tracker_badAddress_exit2) {
  auto r = run_cli({"--tracker", "nonsense", "admin", "status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_CONTAINS(r.err, "mydfs: --tracker: bad address 'nonsense'");
}

}  // namespace
}  // namespace mydfs
