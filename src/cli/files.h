// File commands of the `mydfs` CLI: put, get, cat, ls, stat, mkdir, rm, mv, chain, append, write-at,
// splice, truncate. Each returns
// an exit code (0 ok, 1 failed) and reports errors the way coreutils does:
//   mydfs: cannot stat '/x': No such file or directory
#pragma once
#include <string>

namespace mydfs::cli {

int cmd_put(const std::string& tracker, const std::string& local, const std::string& path);
int cmd_get(const std::string& tracker, const std::string& path, const std::string& local);
int cmd_cat(const std::string& tracker, const std::string& path);
int cmd_ls(const std::string& tracker, const std::string& path, bool long_format);
int cmd_stat(const std::string& tracker, const std::string& path);
int cmd_mkdir(const std::string& tracker, const std::string& path, bool parents);
int cmd_rm(const std::string& tracker, const std::string& path, bool recursive);
int cmd_mv(const std::string& tracker, const std::string& from, const std::string& to);
int cmd_chain(const std::string& tracker, const std::string& path);
int cmd_append(const std::string& tracker, const std::string& path, const std::string& local);
int cmd_write_at(const std::string& tracker, const std::string& path, const std::string& offset, const std::string& local);
int cmd_splice(const std::string& tracker, const std::string& path, const std::string& offset, const std::string& del_len,
               const std::string& local);
int cmd_truncate(const std::string& tracker, const std::string& path, const std::string& size);
// Merges PATH's small adjacent slices (Client::compact); prints how many slices it had and has.
// A directory with recursive: every regular file under it, with progress on a terminal.
int cmd_compact(const std::string& tracker, const std::string& path, bool recursive);

}  // namespace mydfs::cli
