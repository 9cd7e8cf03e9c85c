// TrackerConfig::validate() (the checks behind mydfs-tracker's flags) and a TrackerDaemon opened
// in-process on ephemeral ports.
#include <functional>

#include <gtest/gtest.h>

#include "tracker/daemon.h"
#include "../support/temp_dir.h"

namespace mydfs::tracker {
namespace {

TrackerConfig base() {
  TrackerConfig c;
  c.data = "/tmp/unused";  // validate() does not look at the directory
  return c;
}

TEST(TrackerConfig, defaults_areValid) {
  auto v = base().validate();
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->listen.host, "127.0.0.1");
  EXPECT_EQ(v->listen.port, 7000);
  EXPECT_EQ(v->http.port, 8000);
  EXPECT_TRUE(v->groups.empty());
}

TEST(TrackerConfig, groups_areParsed) {
  auto c = base();
  c.groups = {"1=127.0.0.1:7101,127.0.0.1:7102", "4294967295=h:1"};
  auto v = c.validate();
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_EQ(v->groups.size(), 2u);
  EXPECT_EQ(v->groups[0].first, 1u);
  EXPECT_EQ(v->groups[0].second, (std::vector<std::string>{"127.0.0.1:7101", "127.0.0.1:7102"}));
  EXPECT_EQ(v->groups[1].first, 4294967295u);
  EXPECT_EQ(v->groups[1].second, (std::vector<std::string>{"h:1"}));
}

TEST(TrackerConfig, badOptions_oneLineMessage) {
  const std::string numbers =
      "--heartbeat-ms >= 10, --missed-heartbeats >= 1, --default-run 1..64, --read-threads >= 1 and "
      "--checkpoint-ops >= 1 are required";
  struct Case {
    std::function<void(TrackerConfig&)> set;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](auto& c) { c.listen = "nonsense"; }, "bad address 'nonsense': expected HOST:PORT"},
      {[](auto& c) { c.http = "127.0.0.1:x"; }, "bad port in '127.0.0.1:x'"},
      {[](auto& c) { c.heartbeat_ms = 9; }, numbers},
      {[](auto& c) { c.missed_heartbeats = 0; }, numbers},
      {[](auto& c) { c.default_run = 0; }, numbers},
      {[](auto& c) { c.default_run = 65; }, numbers},
      {[](auto& c) { c.read_threads = 0; }, numbers},
      {[](auto& c) { c.checkpoint_ops = 0; }, numbers},
      {[](auto& c) { c.stats_interval = -0.5; }, "--stats-interval must be 0..86400 seconds"},
      {[](auto& c) { c.groups = {"127.0.0.1:7101"}; },
       "bad --group '127.0.0.1:7101': expected ID=HOST:PORT[,HOST:PORT...]"},
      {[](auto& c) { c.groups = {"=127.0.0.1:7101"}; },
       "bad --group '=127.0.0.1:7101': expected ID=HOST:PORT[,HOST:PORT...]"},
      {[](auto& c) { c.groups = {"g1=127.0.0.1:7101"}; },
       "bad --group 'g1=127.0.0.1:7101': expected ID=HOST:PORT[,HOST:PORT...]"},
      {[](auto& c) { c.groups = {"12345678901=h:1"}; }, "bad --group '12345678901=h:1': group id too large"},
      {[](auto& c) { c.groups = {"0=h:1"}; }, "bad --group '0=h:1': id must be 1..4294967295"},
      {[](auto& c) { c.groups = {"1=h:1", "4294967296=h:2"}; }, "bad --group '4294967296=h:2': id must be 1..4294967295"},
  };
  for (const auto& k : cases) {
    auto c = base();
    k.set(c);
    auto v = c.validate();
    ASSERT_FALSE(v.ok()) << k.message;
    EXPECT_EQ(v.error().message, k.message);
    EXPECT_EQ(v.error().message.find('\n'), std::string::npos);
  }
}

TEST(TrackerDaemon, opensOnEphemeralPorts_bootstrapsGroups_stopsCleanly) {
  mydfs::testing::TempDir dir;
  TrackerConfig c;
  c.data = dir / "data";
  c.listen = "127.0.0.1:0";
  c.http = "127.0.0.1:0";
  c.read_threads = 1;
  c.groups = {"3=127.0.0.1:7999"};
  TrackerDaemon d(c);
  auto s = d.open();
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_NE(d.rpc_port(), 0);
  EXPECT_NE(d.http_port(), 0);
  auto j = d.status_json();
  EXPECT_EQ(j["daemon"], "tracker");
  EXPECT_TRUE(j.contains("tracker")) << j.dump();
  EXPECT_NE(j.dump().find("127.0.0.1:7999"), std::string::npos) << j.dump();
  d.stop();
  d.run();  // returns at once: stop() came first
}

}  // namespace
}  // namespace mydfs::tracker
