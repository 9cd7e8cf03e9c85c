// A fresh directory under /tmp, removed (with everything in it) when the object goes away.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace mydfs::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mydfs-test-XXXXXX";
    char* p = mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace mydfs::testing
