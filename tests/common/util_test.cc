#include <gtest/gtest.h>

#include "common/parse.h"
#include "common/metrics.h"

namespace mydfs {
namespace {

TEST(ParseHostPort, validAndInvalid) {
  auto a = parse_host_port("127.0.0.1:7100");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7100);
  auto b = parse_host_port(":80");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "127.0.0.1");
  EXPECT_FALSE(parse_host_port("localhost").ok());
  EXPECT_FALSE(parse_host_port("h:99999").ok());
  EXPECT_FALSE(parse_host_port("h:").ok());
  EXPECT_FALSE(parse_host_port("h:12a").ok());
}

TEST(ParseSize, unitsAndErrors) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("64MiB"), 64ull << 20);
  EXPECT_EQ(*parse_size("2G"), 2ull << 30);
  EXPECT_FALSE(parse_size("").ok());
  EXPECT_FALSE(parse_size("12parsecs").ok());
  EXPECT_FALSE(parse_size("MiB").ok());
  EXPECT_FALSE(parse_size("99999999999999999999T").ok());
}

TEST(Metrics, prometheusText) {
  Metrics m;
  m.counter("mydfs_x_total", "method=\"read\"", "X things")->inc(3);
  m.gauge("mydfs_y", "", "Y level")->set(-2);
  m.histogram("mydfs_lat_seconds", "method=\"read\"", "Latency")->observe_ns(2'000'000);
  m.gauge_fn("mydfs_z", "Z", [] { return 1.5; });
  std::string t = m.prometheus();
  EXPECT_NE(t.find("# TYPE mydfs_x_total counter\nmydfs_x_total{method=\"read\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE mydfs_y gauge\nmydfs_y -2\n"), std::string::npos);
  EXPECT_NE(t.find("mydfs_lat_seconds_bucket{method=\"read\",le=\"0.001\"} 0\n"), std::string::npos);
  EXPECT_NE(t.find("mydfs_lat_seconds_bucket{method=\"read\",le=\"0.0025\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("mydfs_lat_seconds_bucket{method=\"read\",le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("mydfs_lat_seconds_count{method=\"read\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("mydfs_z 1.5\n"), std::string::npos);
  EXPECT_EQ(m.value("mydfs_x_total", "method=\"read\""), 3);
  EXPECT_THROW(m.gauge("mydfs_x_total", "", "clash"), std::logic_error);
}

}  // namespace
}  // namespace mydfs
