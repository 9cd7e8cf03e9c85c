// parse_mount_options: the mount's own -o options, fstab's words for mount(8), and the rest
// passed to the kernel.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fuse/mount.h"

namespace mydfs::fuse {
namespace {

using namespace std::chrono_literals;

TEST(MountOptions, ownOptions_setTheirFields) {
  MountOptions o;
  EXPECT_EQ(parse_mount_options("tracker=h:7000,entry_timeout=0.5,attr_timeout=0,write_buffer=1MiB,max_threads=4,debug", o),
            "");
  EXPECT_EQ(o.tracker, "h:7000");
  EXPECT_EQ(o.entry_timeout, 500ms);
  EXPECT_EQ(o.attr_timeout, 0ms);
  EXPECT_EQ(o.write_buffer, 1u << 20);
  EXPECT_EQ(o.max_threads, 4u);
  EXPECT_TRUE(o.debug);
  EXPECT_TRUE(o.fuse_options.empty());
}

TEST(MountOptions, fstabWordsDropped_othersToTheKernel_emptyItemsSkipped) {
  MountOptions o;
  EXPECT_EQ(parse_mount_options("defaults,,_netdev,allow_other,ro,nofail,rw,", o), "");
  EXPECT_EQ(o.fuse_options, (std::vector<std::string>{"allow_other", "ro"}));
  EXPECT_EQ(o.entry_timeout, 1000ms);  // defaults kept
  EXPECT_EQ(o.write_buffer, 64ull << 20);
}

TEST(MountOptions, badValues_namedInTheMessage) {
  MountOptions o;
  EXPECT_EQ(parse_mount_options("entry_timeout=soon", o), "entry_timeout: 'soon' is not a number of seconds");
  EXPECT_EQ(parse_mount_options("attr_timeout=-1", o), "attr_timeout: '-1' is not a number of seconds");
  EXPECT_EQ(parse_mount_options("write_buffer=1KiB", o), "write_buffer: '1KiB' is not a size of at least 64KiB");
  EXPECT_EQ(parse_mount_options("max_threads=0", o), "max_threads: '0' is not a number from 1 to 1024");
  EXPECT_EQ(parse_mount_options("max_threads=2x", o), "max_threads: '2x' is not a number from 1 to 1024");
  EXPECT_EQ(o.max_threads, 16u);  // unchanged by the refused values
  EXPECT_EQ(o.write_buffer, 64ull << 20);
}

}  // namespace
}  // namespace mydfs::fuse
