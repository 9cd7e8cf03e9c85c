// mydfs: the command-line client. `mydfs [--tracker HOST:PORT] COMMAND ...`
//
// Each command is one function cmd_X(const Globals&, const XArgs&) -> exit code; main() only
// declares the command tree with CLI11, parses, and dispatches to the chosen command.
//
// Exit codes, as coreutils tools use them: 0 success; 1 the operation failed (tracker unreachable,
// an error reply); 2 bad usage (unknown command, missing or invalid arguments), found before
// anything is sent.
#include <netdb.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/files.h"
#include "fuse/mount.h"
#include "cli/status.h"
#include "common/parse.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"

using namespace mydfs;
using namespace std::chrono_literals;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kDefaultTracker = "127.0.0.1:7000";  // tools/dev-cluster's tracker
constexpr auto kConnectTimeout = 2s;
constexpr auto kCallTimeout = 5s;

// Options that every command sees.
struct Globals {
  std::string tracker = kDefaultTracker;  // --tracker, else $MYDFS_TRACKER, else the default
};

// ---- Reporting -------------------------------------------------------------------------------

// `mydfs: add-group: MESSAGE` plus where to read more; for arguments refused before any call.
// cmd is the command's own name (as in every other message), path the words that select it.
int usage_error(std::string_view cmd, std::string_view path, std::string_view msg) {
  fmt::print(stderr, "mydfs: {}: {}\nTry 'mydfs {} --help' for more information.\n", cmd, msg, path);
  return kExitUsage;
}

// A failure to reach the server at all (rather than an error reply).
bool unreachable(const Error& e) { return e.code == Code::UNAVAILABLE || e.code == Code::TIMEOUT; }

// Why the tracker could not be reached. The RPC layer's messages name the address again
// ("cannot connect to ADDR: why", "METHOD to ADDR timed out after N ms"); the line that shows
// this already names the tracker, so keep only the why.
std::string unreachable_why(const Error& e) {
  std::string why = e.message.empty() ? std::string(code_name(e.code)) : e.message;
  constexpr std::string_view kPrefix = "cannot connect to ";
  bool connecting = why.starts_with(kPrefix);
  if (e.code == Code::TIMEOUT) {
    why = connecting ? fmt::format("no connection within {} s", kConnectTimeout.count())
                     : fmt::format("no reply within {} s", kCallTimeout.count());
  } else if (connecting) {
    auto colon = why.find(": ", kPrefix.size());
    if (colon != std::string::npos) why = why.substr(colon + 2);
  }
  return why;
}

// A call that failed. Transport failures name the tracker; error replies name the command.
int call_failed(const Globals& g, std::string_view cmd, const Error& e) {
  if (unreachable(e)) {
    fmt::print(stderr, "mydfs: cannot reach tracker {}: {}\n", g.tracker, unreachable_why(e));
  } else {
    fmt::print(stderr, "mydfs: {}: {}\n", cmd, e.message.empty() ? std::string(code_name(e.code)) : e.message);
  }
  return kExitFailed;
}

// ---- The tracker connection ------------------------------------------------------------------

// The tracker address as a numeric "ADDRESS:PORT", a host name resolved once (IPv4 preferred).
// BAD_REQUEST when malformed (parse_host_port's message), UNAVAILABLE when the name does not resolve.
Result<std::string> resolve_address(const std::string& tracker) {
  auto hp = parse_host_port(tracker);
  if (!hp.ok()) return hp.take_error();
  std::string host = hp->host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  // The RPC client takes numeric addresses only; resolve names here. IPv4 first: daemons listen
  // on IPv4 addresses by default, and "localhost" often lists ::1 first.
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) {
    if (res) ::freeaddrinfo(res);
    return make_error(Code::UNAVAILABLE,
                      fmt::format("cannot resolve '{}': {}", host, rc ? gai_strerror(rc) : "no address"));
  }
  const addrinfo* pick = res;
  for (const addrinfo* r = res; r; r = r->ai_next) {
    if (r->ai_family == AF_INET) {
      pick = r;
      break;
    }
  }
  char buf[NI_MAXHOST];
  rc = ::getnameinfo(pick->ai_addr, pick->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST);
  ::freeaddrinfo(res);
  if (rc != 0) return make_error(Code::UNAVAILABLE, gai_strerror(rc));
  return fmt::format("{}:{}", buf, hp->port);
}

// The tracker named by g.tracker as a numeric "ADDRESS:PORT" (resolving a host name once). On
// failure prints why and returns "" with *exit_code set: 2 for a malformed address, 1 for an
// unknown host.
std::string resolve_tracker(const Globals& g, int* exit_code) {
  auto addr = resolve_address(g.tracker);
  if (addr.ok()) return *addr;
  if (addr.code() == Code::BAD_REQUEST) {
    fmt::print(stderr, "mydfs: --tracker: {}\n", addr.error().message);
    *exit_code = kExitUsage;
  } else {
    fmt::print(stderr, "mydfs: cannot reach tracker {}: {}\n", g.tracker, addr.error().message);
    *exit_code = kExitFailed;
  }
  return "";
}

// A client of the tracker at a numeric "ADDRESS:PORT" (from resolve_address).
std::unique_ptr<proto::SyncClient> tracker_client(const std::string& addr) {
  auto hp = parse_host_port(addr);
  proto::ClientOptions opt;
  opt.connect_timeout = kConnectTimeout;
  opt.call_timeout = kCallTimeout;
  return std::make_unique<proto::SyncClient>(hp->host, hp->port, opt);
}

// Connects to the tracker named by g.tracker; null (and *exit_code) as resolve_tracker says.
std::unique_ptr<proto::SyncClient> open_tracker(const Globals& g, int* exit_code) {
  std::string addr = resolve_tracker(g, exit_code);
  if (addr.empty()) return nullptr;
  return tracker_client(addr);
}

// ---- admin status ----------------------------------------------------------------------------

struct StatusArgs {
  bool json = false;
};

int cmd_admin_status(const Globals& g, const StatusArgs& a) {
  int code = kExitOk;
  auto tracker = open_tracker(g, &code);
  if (!tracker) return code;
  auto resp = tracker->call(proto::ClusterStatusReq{});
  if (!resp.ok()) return call_failed(g, "status", resp.error());
  // ordered_json keeps the tracker's key order for --json.
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(resp->json);
  } catch (const nlohmann::json::exception& e) {
    fmt::print(stderr, "mydfs: status: tracker sent malformed JSON: {}\n", e.what());
    return kExitFailed;
  }
  if (a.json) {
    fmt::print("{}\n", doc.dump(2));
    return kExitOk;
  }
  if (!doc.is_object()) {
    fmt::print(stderr, "mydfs: status: tracker sent JSON that is not an object\n");
    return kExitFailed;
  }
  fmt::print("{}", cli::render_status(doc));
  return kExitOk;
}

// ---- admin top -------------------------------------------------------------------------------

struct TopArgs {
  std::string interval = "1";    // seconds between frames; validated here, not by CLI11
  std::string iterations = "0";  // frames to show; 0: until Ctrl-C or SIGTERM
};

// Set by SIGINT and SIGTERM while `admin top` runs; the loop stops at its next check.
volatile std::sig_atomic_t g_top_stop = 0;
void top_on_signal(int) { g_top_stop = 1; }

// While `admin top` runs: the signal handlers and, on a terminal, the hidden cursor. Both are
// restored when it ends, however it ends.
class TopSession {
 public:
  explicit TopSession(bool tty) : tty_(tty) {
    g_top_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = top_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    if (tty_) {
      std::fputs("\x1b[?25l", stdout);
      std::fflush(stdout);
    }
  }
  ~TopSession() {
    if (tty_) {
      std::fputs("\x1b[?25h", stdout);
      std::fflush(stdout);
    }
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  TopSession(const TopSession&) = delete;
  TopSession& operator=(const TopSession&) = delete;

 private:
  bool tty_;
  struct sigaction old_int_ {}, old_term_ {};
};

// The local time as "2026-05-01 15:04:05".
std::string local_time_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf, n);
}

// One status fetch for `admin top`: true with *doc set, or false with *error set to the line the
// frame shows instead ("" when interrupted by a signal: the reply is awaited in short steps so
// that Ctrl-C is not held up by a silent tracker). After a transport failure the client is
// dropped, so the next fetch resolves the name and connects afresh.
bool top_fetch(const Globals& g, std::unique_ptr<proto::SyncClient>& tracker, nlohmann::ordered_json* doc,
               std::string* error) {
  if (!tracker) {
    auto addr = resolve_address(g.tracker);
    if (!addr.ok()) {
      *error = fmt::format("cannot reach tracker {}: {}", g.tracker, addr.error().message);
      return false;
    }
    tracker = tracker_client(*addr);
  }
  // What SyncClient::call does, but with a wait that watches for signals.
  auto fut = boost::asio::co_spawn(tracker->io(), tracker->client().call(proto::ClusterStatusReq{}),
                                   boost::asio::use_future);
  while (fut.wait_for(50ms) != std::future_status::ready) {
    if (g_top_stop) {
      error->clear();
      return false;
    }
  }
  Result<proto::ClusterStatusResp> resp = fut.get();
  if (!resp.ok()) {
    const Error& e = resp.error();
    if (unreachable(e)) {
      *error = fmt::format("cannot reach tracker {}: {}", g.tracker, unreachable_why(e));
      tracker.reset();
    } else {
      *error = fmt::format("tracker error: {}", e.message.empty() ? std::string(code_name(e.code)) : e.message);
    }
    return false;
  }
  try {
    *doc = nlohmann::ordered_json::parse(resp->json);
  } catch (const nlohmann::json::exception& e) {
    *error = fmt::format("tracker sent malformed JSON: {}", e.what());
    return false;
  }
  if (!doc->is_object()) {
    *error = "tracker sent JSON that is not an object";
    return false;
  }
  return true;
}

int cmd_admin_top(const Globals& g, const TopArgs& a) {
  constexpr std::string_view kCmd = "top", kPath = "admin top";
  double interval = 0;
  const char* ib = a.interval.data();
  const char* ie = ib + a.interval.size();
  auto [iend, iec] = std::from_chars(ib, ie, interval);
  if (iec != std::errc() || iend != ie || !(interval > 0 && interval <= 3600))
    return usage_error(kCmd, kPath,
                       fmt::format("invalid interval '{}': expected seconds, more than 0 and at most 3600", a.interval));
  uint64_t iterations = 0;
  const char* nb = a.iterations.data();
  const char* ne = nb + a.iterations.size();
  auto [nend, nec] = std::from_chars(nb, ne, iterations);
  if (nec != std::errc() || nend != ne)
    return usage_error(kCmd, kPath,
                       fmt::format("invalid iterations '{}': expected a count (0: until interrupted)", a.iterations));
  if (auto hp = parse_host_port(g.tracker); !hp.ok()) {
    fmt::print(stderr, "mydfs: --tracker: {}\n", hp.error().message);
    return kExitUsage;
  }

  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  TopSession session(tty);
  const auto step =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(interval));
  std::unique_ptr<proto::SyncClient> tracker;
  cli::TopView view;
  view.tracker = g.tracker;
  bool last_ok = true;  // of the last completed try
  std::string last_error;
  for (uint64_t n = 1;; ++n) {
    auto started = std::chrono::steady_clock::now();
    nlohmann::ordered_json doc;
    view.error.clear();
    bool ok = top_fetch(g, tracker, &doc, &view.error);
    if (!ok && view.error.empty()) break;  // interrupted while waiting for the reply
    last_ok = ok;
    last_error = view.error;
    view.time = local_time_text();
    view.width = 0;
    if (tty) {
      winsize ws{};
      if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) view.width = ws.ws_col;
    }
    std::string frame = cli::render_top(doc, view);
    if (tty) frame.insert(0, "\x1b[H\x1b[2J");  // home, clear: each frame replaces the last
    else if (n > 1) frame.insert(0, "\n");       // frames one after another, a blank line apart
    std::fwrite(frame.data(), 1, frame.size(), stdout);
    std::fflush(stdout);
    if (iterations != 0 && n >= iterations) break;
    auto next = started + step;
    for (auto now = std::chrono::steady_clock::now(); !g_top_stop && now < next; now = std::chrono::steady_clock::now())
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(50ms, next - now));
    if (g_top_stop) break;
  }
  if (!last_ok) {
    fmt::print(stderr, "mydfs: {}\n", last_error);
    return kExitFailed;
  }
  return kExitOk;
}

// ---- admin add-group -------------------------------------------------------------------------

struct AddGroupArgs {
  std::string id;                      // validated here, not by CLI11, for one clear message
  std::vector<std::string> addresses;  // HOST:PORT of each member's RPC listener
};

int cmd_admin_add_group(const Globals& g, const AddGroupArgs& a) {
  constexpr std::string_view kCmd = "add-group", kPath = "admin add-group";
  proto::AddGroupReq req;
  auto [end, ec] = std::from_chars(a.id.data(), a.id.data() + a.id.size(), req.id);
  if (ec != std::errc() || end != a.id.data() + a.id.size() || req.id == 0)
    return usage_error(kCmd, kPath,
                       fmt::format("invalid group id '{}': expected an integer from 1 to {}", a.id, UINT32_MAX));
  std::set<std::string> seen;
  for (const auto& s : a.addresses) {
    auto hp = parse_host_port(s);
    if (!hp.ok()) return usage_error(kCmd, kPath, hp.error().message);
    if (hp->port == 0) return usage_error(kCmd, kPath, fmt::format("bad port in '{}': must be 1 to 65535", s));
    // Sent as HOST:PORT even when given as ":PORT", so it matches what members report.
    auto addr = fmt::format("{}:{}", hp->host, hp->port);
    if (!seen.insert(addr).second) return usage_error(kCmd, kPath, fmt::format("address '{}' given twice", addr));
    req.addresses.push_back(std::move(addr));
  }
  int code = kExitOk;
  auto tracker = open_tracker(g, &code);
  if (!tracker) return code;
  uint32_t id = req.id;
  size_t n = req.addresses.size();
  auto resp = tracker->call(std::move(req));
  if (!resp.ok()) return call_failed(g, kCmd, resp.error());
  fmt::print("added group {} with {} member(s)\n", id, n);
  return kExitOk;
}

// ---- admin replace-member --------------------------------------------------------------------

struct ReplaceMemberArgs {
  std::string group, old_member, new_member;  // "ID", "ID=HOST:PORT", "ID=HOST:PORT"
};

// "ID=HOST:PORT" -> (id, "HOST:PORT")
Result<std::pair<uint64_t, std::string>> parse_member(const std::string& s) {
  auto eq = s.find('=');
  uint64_t id = 0;
  if (eq == std::string::npos || std::from_chars(s.data(), s.data() + eq, id).ptr != s.data() + eq || id == 0)
    return make_error(Code::BAD_REQUEST, fmt::format("invalid member '{}': expected ID=HOST:PORT", s));
  auto hp = parse_host_port(s.substr(eq + 1));
  if (!hp.ok()) return hp.take_error();
  if (hp->port == 0) return make_error(Code::BAD_REQUEST, fmt::format("bad port in '{}': must be 1 to 65535", s));
  return std::pair{id, fmt::format("{}:{}", hp->host, hp->port)};
}

// One membership change on the group's leader, following NOT_LEADER hints.
Result<uint64_t> member_change(const std::vector<std::string>& members, std::string leader,
                               const proto::MemberChangeReq& req) {
  Error last = make_error(Code::UNAVAILABLE, "no member of the group answered");
  std::vector<std::string> tries;
  if (!leader.empty()) tries.push_back(leader);
  for (int round = 0; round < 20; ++round) {
    for (const auto& m : members) tries.push_back(m);
    for (size_t k = 0; k < tries.size(); ++k) {
      auto hp = parse_host_port(tries[k]);
      if (!hp.ok()) continue;
      proto::ClientOptions co;
      co.connect_timeout = std::chrono::milliseconds(500);
      co.call_timeout = std::chrono::milliseconds(60000);  // an added member may take a while to catch up
      proto::SyncClient c(hp->host, hp->port, co);
      auto r = c.call(req);
      if (r.ok()) return r->index;
      last = r.error();
      if (r.code() == Code::NOT_LEADER && !r.error().hint.empty()) {
        tries.insert(tries.begin() + static_cast<long>(k) + 1, r.error().hint);
        continue;
      }
      if (r.code() == Code::BAD_REQUEST || r.code() == Code::NOT_FOUND) return last;
    }
    tries.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // an election, or a change still committing
  }
  return last;
}

int cmd_admin_replace_member(const Globals& g, const ReplaceMemberArgs& a) {
  constexpr std::string_view kCmd = "replace-member", kPath = "admin replace-member";
  uint32_t group = 0;
  auto [end, ec] = std::from_chars(a.group.data(), a.group.data() + a.group.size(), group);
  if (ec != std::errc() || end != a.group.data() + a.group.size() || group == 0)
    return usage_error(kCmd, kPath, fmt::format("invalid group id '{}'", a.group));
  auto old_m = parse_member(a.old_member);
  if (!old_m.ok()) return usage_error(kCmd, kPath, old_m.error().message);
  auto new_m = parse_member(a.new_member);
  if (!new_m.ok()) return usage_error(kCmd, kPath, new_m.error().message);
  if (old_m->first == new_m->first) return usage_error(kCmd, kPath, "the new member needs an id of its own");
  int code = kExitOk;
  auto tracker = open_tracker(g, &code);
  if (!tracker) return code;
  auto st = tracker->call(proto::ClusterStatusReq{});
  if (!st.ok()) return call_failed(g, kCmd, st.error());
  auto all = proto::group_members(*st);
  auto mit = all.find(group);
  if (mit == all.end()) return call_failed(g, kCmd, make_error(Code::NOT_FOUND, fmt::format("no group {}", group)));
  std::vector<std::string> members = mit->second;
  if (std::find(members.begin(), members.end(), old_m->second) == members.end() &&
      std::find(members.begin(), members.end(), new_m->second) == members.end())
    return call_failed(g, kCmd, make_error(Code::NOT_FOUND, fmt::format("{} is not a member of group {}",
                                                                         old_m->second, group)));
  std::string leader;
  if (auto l = proto::usable_group_leaders(*st); l.ok() && l->count(group)) leader = l->at(group);
  members.push_back(new_m->second);

  // 1. Remove the old member (the group then needs a majority of the others), 2. add the new one
  // (it is rebuilt from the others), 3. tell the tracker. Each step is skipped if already done, so
  // the command can be run again after a failure.
  proto::MemberChangeReq rm{group, false, old_m->first, ""};
  auto r1 = member_change(members, leader, rm);
  if (!r1.ok() && r1.error().message.find("is not a member") == std::string::npos)
    return call_failed(g, kCmd, r1.error());
  fmt::print("removed member {} from group {}\n", old_m->first, group);
  proto::MemberChangeReq add{group, true, new_m->first, new_m->second};
  auto r2 = member_change(members, leader, add);
  if (!r2.ok() && r2.error().message.find("is a member already") == std::string::npos)
    return call_failed(g, kCmd, r2.error());
  fmt::print("added member {} at {} to group {}\n", new_m->first, new_m->second, group);
  proto::ReplaceMemberReq tr{group, old_m->second, new_m->second};
  auto r3 = tracker->call(tr);
  if (!r3.ok() && r3.code() != Code::NOT_FOUND) return call_failed(g, kCmd, r3.error());
  fmt::print("the tracker now lists {} in place of {}\n", new_m->second, old_m->second);
  return kExitOk;
}

// ---- Command line ----------------------------------------------------------------------------

// The most specific (sub)command the parser reached, for error messages and help.
const CLI::App* deepest(const CLI::App& app) {
  const CLI::App* a = &app;
  while (!a->get_subcommands().empty()) a = a->get_subcommands().front();
  return a;
}

// A parse error: the message, then the help of the command it happened in, on stderr.
int parse_failed(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* at = deepest(app);
  std::string msg = e.what();
  // Where a command was expected, CLI11 says "A subcommand is required" or "The following
  // argument was not expected: frob"; name the actual problem instead.
  if (!at->get_subcommands({}).empty() &&
      (dynamic_cast<const CLI::ExtrasError*>(&e) || dynamic_cast<const CLI::RequiredError*>(&e))) {
    auto extras = app.remaining(true);  // fallthrough hands a subcommand's extras to its parents
    if (!extras.empty() && !extras.front().starts_with("-")) msg = fmt::format("unknown command '{}'", extras.front());
    else if (extras.empty() && dynamic_cast<const CLI::RequiredError*>(&e)) msg = "missing command";
  }
  // Lower-case the first word like other coreutils messages, but not a name such as "ID".
  if (msg.size() > 1 && std::islower(static_cast<unsigned char>(msg[1])))
    msg[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(msg[0])));
  std::string where = at->get_parent() ? at->get_name() + ": " : "";
  fmt::print(stderr, "mydfs: {}{}\n\n{}", where, msg, app.help());
  return kExitUsage;
}

// Every command's arguments, filled in by the parse, and the command it chose.
struct Commands {
  Globals g;
  std::function<int()> chosen;  // set by the chosen subcommand's callback
  StatusArgs status;
  TopArgs top;
  AddGroupArgs add;
  ReplaceMemberArgs rep;
  struct FileArgs {  // the file commands' positional arguments, in order, and their one flag
    std::string a, b, c, d;
    bool flag = false;
  } files;
  struct MountArgs {
    std::string tracker, dir, options;
    bool foreground = false;
  } ma;
  std::string umount_dir;
};

// admin status, top: what the tracker knows of the cluster.
void add_admin_views(CLI::App& admin, Commands& c) {
  CLI::App* status_cmd =
      admin.add_subcommand("status", "Show groups, members, space, namespace counts and recent events");
  status_cmd->add_flag("--json", c.status.json, "Print the tracker's status document as JSON");
  status_cmd->callback([&c] { c.chosen = [&c] { return cmd_admin_status(c.g, c.status); }; });

  CLI::App* top_cmd = admin.add_subcommand(
      "top", "Show the cluster's load, refreshed every second until Ctrl-C: each member's requests, traffic, "
             "disk pool and free space, the hottest slices and the newest events");
  top_cmd->add_option("--interval", c.top.interval, "Seconds between refreshes (fractions allowed), at most 3600")
      ->type_name("SECONDS")
      ->capture_default_str();
  top_cmd->add_option("--iterations", c.top.iterations, "Refresh N times, then exit (0: until Ctrl-C)")
      ->type_name("N")
      ->capture_default_str();
  top_cmd->footer(
      "Columns (load figures are '-' for a member that is down, or when the tracker does not report them):\n"
      "  GROUP, NODE, ADDRESS  storage group id, member node id, member RPC address\n"
      "  ROLE                  Raft role: leader, follower or candidate\n"
      "  STATE                 up, or DOWN when the tracker misses the member's heartbeats\n"
      "  QPS, QPS 1m           requests per second over the last second, over the last minute\n"
      "  IN FLIGHT             requests being served now\n"
      "  IN MB/s, OUT MB/s     bytes received, sent per second (1 MB = 1000000 bytes)\n"
      "  POOL %                busy share of the member's disk worker pool over the last second\n"
      "  FREE GiB, FREE %      free space (4 MiB slots) and its share of the member's capacity\n"
      "Below the members: the 5 most-read slices (GROUP:SLOT@GEN, node, reads since the node started,\n"
      "file path or inode) and the 3 newest events. On a terminal the screen is redrawn in place;\n"
      "otherwise frames follow one another, a blank line apart. Exit status 1 if the last refresh\n"
      "could not reach the tracker.");
  top_cmd->callback([&c] { c.chosen = [&c] { return cmd_admin_top(c.g, c.top); }; });

}

// admin add-group, replace-member: changes of the cluster's layout.
void add_admin_changes(CLI::App& admin, Commands& c) {
  CLI::App* add_cmd = admin.add_subcommand("add-group", "Register a storage group with the tracker");
  add_cmd->add_option("ID", c.add.id, "Group id (1 to 4294967295, unique in the cluster)")
      ->type_name("")
      ->required();
  add_cmd->add_option("ADDRESS", c.add.addresses, "RPC address of each member")
      ->type_name("HOST:PORT")
      ->required()
      ->expected(1, -1);
  add_cmd->callback([&c] { c.chosen = [&c] { return cmd_admin_add_group(c.g, c.add); }; });

  CLI::App* rep_cmd = admin.add_subcommand(
      "replace-member",
      "Replace a member of a storage group by a new node: start the new node with --join first; the "
      "old member is removed from the group, the new one added (it copies the group's data) and the "
      "tracker told");
  rep_cmd->add_option("GROUP", c.rep.group, "Group id")->type_name("")->required();
  rep_cmd->add_option("OLD", c.rep.old_member, "The member to replace")->type_name("ID=HOST:PORT")->required();
  rep_cmd->add_option("NEW", c.rep.new_member, "The new node (a new id)")->type_name("ID=HOST:PORT")->required();
  rep_cmd->callback([&c] { c.chosen = [&c] { return cmd_admin_replace_member(c.g, c.rep); }; });

}

// File commands (cli/files.h).
void add_file_commands(CLI::App& app, Commands& c) {
  auto& fa = c.files;
  auto file_cmd = [&app, &c, &fa](const char* name, const char* help, std::vector<std::pair<const char*, const char*>> args,
                      const char* flag, const char* flag_help, std::function<int(const std::string&)> fn) {
    CLI::App* cmd = app.add_subcommand(name, help);
    std::string* slots[] = {&fa.a, &fa.b, &fa.c, &fa.d};
    for (size_t i = 0; i < args.size(); ++i) cmd->add_option(args[i].first, *slots[i], args[i].second)->required();
    if (flag) cmd->add_flag(flag, fa.flag, flag_help);
    // The tracker is resolved to a numeric address the way the admin commands resolve it.
    cmd->callback([&chosen = c.chosen, &g = c.g, fn] {
      chosen = [&g, fn] {
        int code = kExitFailed;
        std::string tracker = resolve_tracker(g, &code);
        return tracker.empty() ? code : fn(tracker);
      };
    });
  };
  file_cmd("put", "Upload a local file (or - for standard input) to PATH, replacing its content",
           {{"LOCAL", "Local file, or - for standard input"}, {"PATH", "Absolute path in mydfs"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_put(t, fa.a, fa.b); });
  file_cmd("get", "Download PATH to a local file (or - for standard output)",
           {{"PATH", "Absolute path in mydfs"}, {"LOCAL", "Local file, or - for standard output"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_get(t, fa.a, fa.b); });
  file_cmd("cat", "Write PATH to standard output", {{"PATH", "Absolute path in mydfs"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_cat(t, fa.a); });
  file_cmd("ls", "List a directory (or show a file)", {{"PATH", "Absolute path in mydfs"}}, "-l",
           "Long format: mode, links, owner, size, mtime", [&](const std::string& t) { return cli::cmd_ls(t, fa.a, fa.flag); });
  file_cmd("stat", "Show a file's attributes", {{"PATH", "Absolute path in mydfs"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_stat(t, fa.a); });
  file_cmd("mkdir", "Create a directory", {{"PATH", "Absolute path in mydfs"}}, "-p,--parents",
           "Create missing parents; no error if it exists", [&](const std::string& t) { return cli::cmd_mkdir(t, fa.a, fa.flag); });
  file_cmd("rm", "Remove a file (or, with -r, a directory tree)", {{"PATH", "Absolute path in mydfs"}},
           "-r,--recursive", "Remove directories and their contents", [&](const std::string& t) { return cli::cmd_rm(t, fa.a, fa.flag); });
  file_cmd("mv", "Rename or move (into a directory)", {{"FROM", "Absolute path"}, {"TO", "Absolute path"}}, nullptr,
           nullptr, [&](const std::string& t) { return cli::cmd_mv(t, fa.a, fa.b); });
  file_cmd("append", "Append a local file (or - for standard input) to PATH, creating it if needed",
           {{"PATH", "Absolute path in mydfs"}, {"LOCAL", "Local file, or - for standard input"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_append(t, fa.a, fa.b); });
  file_cmd("write-at", "Overwrite PATH at OFFSET with a local file's bytes (the file grows if they reach past its end)",
           {{"PATH", "Absolute path in mydfs"}, {"OFFSET", "Byte offset (suffixes K, M, G, KiB, MiB, GiB)"},
            {"LOCAL", "Local file, or - for standard input"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_write_at(t, fa.a, fa.b, fa.c); });
  file_cmd("splice", "Replace DEL_LEN bytes of PATH at OFFSET with a local file's bytes (any length: the file grows or shrinks in the middle)",
           {{"PATH", "Absolute path in mydfs"}, {"OFFSET", "Byte offset, at most the file size"},
            {"DEL_LEN", "Bytes to remove at OFFSET (0 inserts)"}, {"LOCAL", "Local file, or - for standard input"}},
           nullptr, nullptr, [&](const std::string& t) { return cli::cmd_splice(t, fa.a, fa.b, fa.c, fa.d); });
  file_cmd("truncate", "Shrink or extend PATH to SIZE bytes (extension reads as zeros)",
           {{"PATH", "Absolute path in mydfs"}, {"SIZE", "New size in bytes (suffixes as for OFFSET)"}}, nullptr, nullptr,
           [&](const std::string& t) { return cli::cmd_truncate(t, fa.a, fa.b); });
  file_cmd("chain", "Show a file's slices: location, state, valid_len, offset, next, and its runs",
           {{"PATH", "Absolute path in mydfs"}}, nullptr, nullptr, [&](const std::string& t) { return cli::cmd_chain(t, fa.a); });
  file_cmd("compact", "Merge PATH's small adjacent slices into full ones, online (reads and edits go on; content, size and mtime stay)",
           {{"PATH", "Absolute path in mydfs"}}, "-r,--recursive", "PATH is a directory: compact every file under it",
           [&](const std::string& t) { return cli::cmd_compact(t, fa.a, fa.flag); });

}

int cmd_mount(const Commands::MountArgs& ma) {
  fuse::MountOptions mo;
  mo.tracker = ma.tracker;
  mo.mountpoint = ma.dir;
  mo.foreground = ma.foreground;
  std::string bad = fuse::parse_mount_options(ma.options, mo);
  if (!bad.empty()) {
    fmt::print(stderr, "mydfs mount: {}\n", bad);
    return kExitUsage;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(ma.dir, ec)) {
    fmt::print(stderr, "mydfs mount: {} is not a directory\n", ma.dir);
    return kExitUsage;
  }
  return fuse::mount_and_serve(mo);
}

// The mount (fuse/mount.h).
void add_mount_commands(CLI::App& app, Commands& c) {
  CLI::App* mount_cmd = app.add_subcommand(
      "mount",
      "Mount the cluster at MOUNTPOINT (FUSE). Returns once the mount is up; the file system is served "
      "in the background until `mydfs umount MOUNTPOINT`");
  mount_cmd->add_option("TRACKER", c.ma.tracker, "Tracker RPC address")->type_name("HOST:PORT")->required();
  mount_cmd->add_option("MOUNTPOINT", c.ma.dir, "An existing directory")->required();
  mount_cmd->add_option("-o", c.ma.options,
                        "Comma-separated options: entry_timeout=SECONDS, attr_timeout=SECONDS (kernel caches, "
                        "default 1), write_buffer=SIZE (unflushed bytes per open file, default 64MiB), "
                        "max_threads=N (default 16), debug; anything else goes to FUSE (ro, allow_other, ...)")
      ->type_name("OPTIONS");
  mount_cmd->add_flag("-f,--foreground", c.ma.foreground, "Serve in the foreground (stop with Ctrl-C)");
  mount_cmd->callback([&c] { c.chosen = [&c] { return cmd_mount(c.ma); }; });
  CLI::App* umount_cmd = app.add_subcommand("umount", "Unmount a mydfs mount (fusermount3 -u)");
  umount_cmd->add_option("MOUNTPOINT", c.umount_dir, "Where it is mounted")->required();
  umount_cmd->callback([&c] { c.chosen = [&c] { return fuse::unmount(c.umount_dir); }; });
}

int run(int argc, char** argv) {
  Commands c;
  CLI::App app{"mydfs: command-line client of the mydfs distributed file system", "mydfs"};
  app.add_option("--tracker", c.g.tracker, "Tracker RPC address")
      ->type_name("HOST:PORT")
      ->envname("MYDFS_TRACKER")
      ->capture_default_str();
  app.require_subcommand(1);
  app.fallthrough();  // `mydfs admin status --tracker H:P` works as well

  CLI::App* admin = app.add_subcommand("admin", "Cluster administration (storage groups, cluster status)");
  admin->require_subcommand(1);
  admin->fallthrough();
  add_admin_views(*admin, c);
  add_admin_changes(*admin, c);
  add_file_commands(app, c);
  add_mount_commands(app, c);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return parse_failed(app, e);
  }
  if (!c.chosen) {  // every branch of the tree requires a subcommand, so this is a missing callback
    fmt::print(stderr, "mydfs: no command\n\n{}", app.help());
    return kExitUsage;
  }
  return c.chosen();
}

}  // namespace

int main(int argc, char** argv) {
  // Every failure reaches the user as an Error through the command, so library logging (the RPC
  // layer's warnings) is off unless MYDFS_LOG_LEVEL asks for it; it goes to stderr either way so
  // stdout stays the command's output.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("mydfs"));
  const char* level = std::getenv("MYDFS_LOG_LEVEL");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::off);
  try {
    // mount(8) with -t fuse.mydfs runs mount.fuse3, which runs `mydfs TRACKER MOUNTPOINT -o OPTIONS`.
    if (argc >= 3 && argv[1][0] != '-' && std::string_view(argv[1]).find(':') != std::string_view::npos &&
        std::filesystem::is_directory(argv[2])) {
      std::vector<char*> args{argv[0], const_cast<char*>("mount")};
      args.insert(args.end(), argv + 1, argv + argc);
      return run(static_cast<int>(args.size()), args.data());
    }
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "mydfs: internal error: {}\n", e.what());
    return kExitFailed;
  }
}
