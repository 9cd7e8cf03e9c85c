// run_posix_model with two local directories: they must agree for every seed, the same seed must
// leave the same tree behind, and the checker must notice when the two sides do differ.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "posix_model.h"
#include "support/temp_dir.h"

namespace {

using mydfs::testing::ModelOptions;
using mydfs::testing::run_posix_model;
using mydfs::testing::TempDir;

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

ModelOptions with_seed(uint64_t seed) {
  ModelOptions o;
  o.seed = seed;
  return o;
}

class PosixModelSeed : public ::testing::TestWithParam<uint64_t> {};

TEST_P(PosixModelSeed, LocalDirectoriesAgree) {
  TempDir subject, reference;
  EXPECT_EQ(run_posix_model(subject.path(), reference.path(), with_seed(GetParam())), "");
}

INSTANTIATE_TEST_SUITE_P(Seeds, PosixModelSeed, ::testing::Range<uint64_t>(1, 6));

// Files big enough to cross 4 MiB boundaries, and the mtime check.
TEST(PosixModel, LargeFilesAndTimes) {
  TempDir subject, reference;
  ModelOptions o = with_seed(11);
  o.steps = 100;
  o.max_files = 3;
  o.max_size = 9 << 20;
  o.check_times = true;
  EXPECT_EQ(run_posix_model(subject.path(), reference.path(), o), "");
}

// Two runs with one seed leave identical trees (compared by a run of zero steps), and the run
// leaves files behind at all.
TEST(PosixModel, SameSeedSameTree) {
  TempDir a1, a2, b1, b2;
  ASSERT_EQ(run_posix_model(a1.path(), a2.path(), with_seed(7)), "");
  ASSERT_EQ(run_posix_model(b1.path(), b2.path(), with_seed(7)), "");
  ModelOptions compare_only = with_seed(7);
  compare_only.steps = 0;
  EXPECT_EQ(run_posix_model(a1.path(), b1.path(), compare_only), "");
  int regular = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(a1.path())) regular += e.is_regular_file();
  EXPECT_GT(regular, 0);
}

TEST(PosixModel, ReportsDifferentContent) {
  TempDir subject, reference;
  write_file(subject / "mismatch.bin", "hello");  // same size, different bytes
  write_file(reference / "mismatch.bin", "world");
  std::string r = run_posix_model(subject.path(), reference.path(), with_seed(1));
  EXPECT_NE(r.find("mismatch.bin"), std::string::npos) << r;
  EXPECT_NE(r.find("seed 1"), std::string::npos) << r;
}

// One directory as both sides: the trees always look alike, but the calls do not (the reference
// finds what the subject just created), so the per-call comparison has to catch it.
TEST(PosixModel, ReportsDifferentResults) {
  TempDir both;
  std::string r = run_posix_model(both.path(), both.path(), with_seed(3));
  EXPECT_NE(r.find("results differ"), std::string::npos) << r;
  EXPECT_NE(r.find("last operations"), std::string::npos) << r;
}

}  // namespace
