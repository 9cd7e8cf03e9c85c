#pragma once
#include <string>

#include "common/result.h"

namespace mydfs {

// Sets up the process logger: level is trace|debug|info|warn|error; file "" logs to stderr.
Status setup_logging(const std::string& daemon, const std::string& level, const std::string& file);

}  // namespace mydfs
