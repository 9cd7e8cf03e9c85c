// The tracker's live dashboard as users see it: a real cluster (one Raft group of three), the page
// the tracker serves at / rendered by a real headless Chromium, and what it shows read back from
// the rendered DOM (member rows are <tr data-node data-up data-role data-qps data-bytes>). The
// daemons are stopped by PID when the test ends, also when it fails; every Chromium run is bounded
// by `timeout`. A screenshot is kept in $MYDFS_ARTIFACT_DIR (default ./test-artifacts).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "cluster.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using mydfs::testing::Cluster;
using mydfs::testing::ClusterOptions;
namespace fs = std::filesystem;

// One member row of the rendered page.
struct Row {
  bool up = false;
  std::string role;
  double qps = 0;
  double bytes = 0;
};

struct Page {
  std::string dom;
  std::map<uint32_t, Row> rows;  // by node id
  int polls = 0;                 // body[data-polls]: successful polls of /status
  double qps() const {
    double s = 0;
    for (const auto& [id, r] : rows) s += r.qps;
    return s;
  }
  double bytes() const {
    double s = 0;
    for (const auto& [id, r] : rows) s += r.bytes;
    return s;
  }
  std::string describe() const {
    std::string s = fmt::format("{} polls;", polls);
    for (const auto& [id, r] : rows)
      s += fmt::format(" node {}: up={} role={} qps={} bytes={};", id, r.up, r.role, r.qps, r.bytes);
    return s;
  }
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The Chromium binary: $MYDFS_CHROMIUM or `chromium` on the PATH; "" if neither is there.
std::string find_chromium() {
  const char* env = std::getenv("MYDFS_CHROMIUM");
  std::string name = env && *env ? env : "chromium";
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    fs::path cand = fs::path(dirs.substr(start, end - start)) / name;
    if (end > start && ::access(cand.c_str(), X_OK) == 0) return cand.string();
    start = end + 1;
  }
  return "";
}

std::string attr(const std::string& tag, const std::string& name) {
  std::smatch m;
  std::regex re("\\b" + name + "=\"([^\"]*)\"");
  return std::regex_search(tag, m, re) ? m[1].str() : "";
}

Page parse(std::string dom) {
  Page p;
  static const std::regex tr_re("<tr\\b[^>]*\\bdata-node=\"[^\"]*\"[^>]*>");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), tr_re); it != std::sregex_iterator(); ++it) {
    std::string tag = it->str();
    std::string node = attr(tag, "data-node");
    if (node.empty() || node.find_first_not_of("0123456789") != std::string::npos) continue;
    Row r;
    r.up = attr(tag, "data-up") == "true";
    r.role = attr(tag, "data-role");
    r.qps = std::atof(attr(tag, "data-qps").c_str());
    r.bytes = std::atof(attr(tag, "data-bytes").c_str());
    p.rows[static_cast<uint32_t>(std::stoul(node))] = r;
  }
  std::smatch m;
  if (std::regex_search(dom, m, std::regex("<body\\b[^>]*\\bdata-polls=\"([0-9]+)\""))) p.polls = std::stoi(m[1].str());
  p.dom = std::move(dom);
  return p;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    // Never skipped: a machine that runs the tests has Chromium (tools/test installs it).
    ASSERT_FALSE(chromium_.empty()) << "Chromium not found: install the Debian package `chromium` (tools/test does) "
                                       "or point MYDFS_CHROMIUM at the binary";
    ClusterOptions o;
    o.groups = 1;
    o.replicas = 3;
    o.capacity = "1GiB";
    o.storage_args = {"--backend", "files"};
    c_ = std::make_unique<Cluster>(fs::path(dir_.path()), o);
    url_ = fmt::format("http://127.0.0.1:{}/", c_->tracker_http_port());
  }
  void TearDown() override {
    if (HasFailure()) {
      std::ifstream f(dir_ / "chromium.log");
      std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      if (log.size() > 4000) log = log.substr(log.size() - 4000);
      fmt::print("chromium log (tail):\n{}\n", log);
    }
    c_.reset();
  }

  // Chromium with exactly the flags the dashboard is meant to work under, its own profile, its
  // output to chromium.log; `extra` adds the action (--dump-dom, --screenshot=...).
  std::string chromium_cmd(int budget_ms, const std::string& extra) const {
    return fmt::format(
        "timeout -k 5 60 {} --headless --no-sandbox --disable-gpu --disable-background-networking "
        "--user-data-dir={} --virtual-time-budget={} {} {} 2>>{}",
        shell_quote(chromium_), shell_quote(dir_ / "chromium-profile"), budget_ms, extra, shell_quote(url_),
        shell_quote(dir_ / "chromium.log"));
  }

  // Loads the page, lets it poll /status a few times (virtual time), returns the rendered DOM.
  Page sample(int budget_ms = 2500) const {
    std::string dom;
    int rc = mydfs::testing::run_shell(chromium_cmd(budget_ms, "--dump-dom"), &dom);
    EXPECT_EQ(rc, 0) << "chromium --dump-dom failed (124: timed out)";
    return parse(std::move(dom));
  }

  // Samples until pred holds or timeout; returns the last sample.
  template <class Pred>
  Page sample_until(Pred pred, std::chrono::milliseconds timeout) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    Page p = sample();
    while (!pred(p) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(200ms);
      p = sample();
    }
    return p;
  }

  mydfs::testing::TempDir dir_;
  std::unique_ptr<Cluster> c_;
  std::string chromium_, url_;
};

TEST_F(DashboardTest, showsEveryNodeAndItsLoad_andAKilledNodeTurnsDown) {
  // The page itself is served at /, also with a query string.
  int status = 0;
  std::string html = mydfs::testing::http_get(c_->tracker_http_port(), "/", &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(html.find("data-polls"), std::string::npos) << html.substr(0, 300);
  mydfs::testing::http_get(c_->tracker_http_port(), "/?refresh=1", &status);
  EXPECT_EQ(status, 200);

  // (a) Every storage node has a row, up, and one of them is the leader.
  auto all_up_with_leader = [&](const Page& p) {
    int leaders = 0;
    for (int i = 0; i < c_->storage_count(); ++i) {
      auto it = p.rows.find(c_->node_id(i));
      if (it == p.rows.end() || !it->second.up) return false;
      leaders += it->second.role == "leader";
    }
    return leaders == 1;
  };
  Page before = sample_until(all_up_with_leader, 10s);
  ASSERT_GE(before.polls, 1) << "the page never got /status; DOM:\n" << before.dom.substr(0, 2000);
  ASSERT_TRUE(all_up_with_leader(before)) << before.describe();
  EXPECT_NE(before.dom.find("id=\"hot-slices\""), std::string::npos);
  EXPECT_NE(before.dom.find("id=\"events\""), std::string::npos);

  // (b) Load shows: a 4 MiB file read back over and over while the page is sampled again.
  auto cl = c_->client();
  const std::string data = mydfs::testing::random_bytes(4 << 20, 7);
  ASSERT_TRUE(mydfs::testing::put_bytes(*cl, "/load.bin", data).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad_reads{0};
  std::thread load([&] {
    while (!stop) {
      auto r = mydfs::testing::get_bytes(*cl, "/load.bin");
      (r.ok() && *r == data ? reads : bad_reads)++;
    }
  });
  std::this_thread::sleep_for(1500ms);
  Page during;
  // Reading a 4 MiB file over and over moves megabytes a second out of the leader.
  auto moved = [&](const Page& p) { return p.bytes() > before.bytes() + 1e6; };
  for (int attempt = 0; attempt < 3; ++attempt) {
    during = sample();
    if (moved(during)) break;
  }
  stop = true;
  load.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_TRUE(moved(during)) << "before: " << before.describe() << "\nunder load: " << during.describe();

  // (c) A follower killed with SIGKILL turns down within seconds; the others stay up.
  int leader = c_->leader(1, 5s);
  ASSERT_GE(leader, 0);
  int victim = (leader + 1) % c_->storage_count();
  uint32_t victim_id = c_->node_id(victim);
  c_->storage(victim).kill9();
  auto victim_down = [&](const Page& p) {
    auto it = p.rows.find(victim_id);
    return it != p.rows.end() && !it->second.up;
  };
  Page after = sample_until(victim_down, 10s);
  EXPECT_TRUE(victim_down(after)) << "node " << victim_id << " was killed; " << after.describe();
  for (int i = 0; i < c_->storage_count(); ++i) {
    if (i == victim) continue;
    auto it = after.rows.find(c_->node_id(i));
    ASSERT_NE(it, after.rows.end()) << "node " << c_->node_id(i) << " has no row; " << after.describe();
    EXPECT_TRUE(it->second.up) << "node " << c_->node_id(i) << " should stay up; " << after.describe();
  }
  // The file read over and over is a hot slice on the leader, listed under its path.
  EXPECT_NE(after.dom.find("/load.bin"), std::string::npos) << "the hot-slice table should name /load.bin";
  EXPECT_NE(after.dom.find(fmt::format("127.0.0.1:{} of group 1 is down", c_->storage_port(victim))), std::string::npos)
      << "the events list should say the member is down";

  // The screenshot artifact, taken with the killed node showing.
  const char* art = std::getenv("MYDFS_ARTIFACT_DIR");
  fs::path dir = art && *art ? fs::path(art) : fs::current_path() / "test-artifacts";
  fs::create_directories(dir);
  fs::path png = dir / "dashboard.png";
  std::error_code ec;
  fs::remove(png, ec);
  int rc = mydfs::testing::run_shell(
      chromium_cmd(3000, "--window-size=1400,1000 " + shell_quote("--screenshot=" + png.string())));
  EXPECT_EQ(rc, 0) << "chromium --screenshot failed (124: timed out)";
  ASSERT_TRUE(fs::exists(png)) << png;
  EXPECT_GT(fs::file_size(png), 10u * 1024) << png;
  fmt::print("dashboard screenshot: {}\n", png.string());
}

}  // namespace
