// A model-based POSIX exerciser: random operations run on two directory trees at once, the file
// system under test and a local reference directory, and the two must agree on every result and
// every byte. It knows nothing of mydfs, so the FUSE-mount tests can point it at a mount.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace mydfs::testing {

struct ModelOptions {
  uint64_t seed = 1;          // the whole run follows from it: the same seed replays the same operations
  int steps = 300;            // operations to run
  int max_files = 6;          // file names at the top level; each subdirectory gets half as many
  size_t max_size = 3 << 20;  // writes and truncates keep files about this size at most
  bool check_times = false;   // also require every successful write to move mtime forward on both sides
};

// Runs opt.steps random operations on `subject` and `reference` (both directories, expected to start
// out with identical contents, normally empty) and compares the two trees after every step. Returns
// an empty string on success, or a report of the first difference: the seed, the step, the
// operations of the last 20 steps and what differed. Every file descriptor it opened is closed
// before it returns.
std::string run_posix_model(const std::filesystem::path& subject, const std::filesystem::path& reference,
                            const ModelOptions& opt);

}  // namespace mydfs::testing
