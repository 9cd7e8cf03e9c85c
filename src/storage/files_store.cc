// files backend: DIR/superblock (position 0: the superblock and the first header table) and one
// file per other position, DIR/slots/<8 hex digits>, created on first write: a slot's payload, or
// a header table. Files are sparse and as long as their last written byte.
#include <fcntl.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/file_io.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

namespace {

namespace fs = std::filesystem;

class FilesStore final : public SliceStore {
 public:
  explicit FilesStore(const StoreOptions& opt) : SliceStore(opt) {}

 protected:
  bool raw_exists() const override {
    std::error_code ec;
    return fs::exists(fs::path(opt_.path) / "superblock", ec);
  }

  Status raw_open(bool create, uint32_t capacity) override {
    std::error_code ec;
    fs::path dir(opt_.path);
    (void)capacity;
    if (create) {
      // Built as DIR.creating, renamed into place by raw_commit_create().
      if (!dir.parent_path().empty() && !fs::is_directory(dir.parent_path(), ec))
        return make_error(Code::BAD_REQUEST, fmt::format("data directory '{}' does not exist", dir.parent_path().string()));
      fs::path tmp = tmp_path();
      fs::remove_all(tmp, ec);
      fs::create_directories(tmp / "slots", ec);
      if (ec) return make_error(Code::IO_ERROR, fmt::format("cannot create '{}': {}", tmp.string(), ec.message()));
      MYDFS_ASSIGN(files_[0], File::open((tmp / "superblock").string(), O_RDWR | O_CREAT));
      MYDFS_TRY(sync_dir((tmp / "slots").string()));
      return sync_dir(tmp.string());
    }
    if (!fs::is_directory(dir / "slots", ec))
      return make_error(Code::BAD_REQUEST, fmt::format("'{}' is not a files-backend store", opt_.path));
    MYDFS_ASSIGN(files_[0], File::open((dir / "superblock").string(), O_RDWR));
    return ok_status();
  }

  Status raw_commit_create() override {
    if (::rename(tmp_path().c_str(), opt_.path.c_str()) != 0)
      return make_error(Code::IO_ERROR, fmt::format("cannot rename '{}': {}", tmp_path(), std::strerror(errno)));
    auto parent = fs::path(opt_.path).parent_path().string();
    return sync_dir(parent.empty() ? "." : parent);
  }

  Status raw_check(uint32_t) const override { return ok_status(); }
  Status raw_grow(uint32_t) override { return ok_status(); }
  Status raw_table(uint32_t) override { return ok_status(); }

  uint64_t raw_data_end(uint32_t slot, uint64_t limit) override {
    std::error_code ec;
    if (!fs::exists(slot_path(slot), ec)) return 0;
    auto f = file_for(slot, false);
    return f.ok() ? (*f)->data_end(0, limit) : limit;
  }

  // A whole file's worth is given back by truncating it (a slot file then takes no block).
  Status raw_punch(uint32_t slot, uint64_t off, uint64_t len) override {
    std::error_code ec;
    std::shared_ptr<File> f;
    {
      std::lock_guard g(mu_);
      if (auto it = files_.find(slot); it != files_.end()) f = it->second;
    }
    if (!f) {
      if (!fs::exists(slot_path(slot), ec)) return ok_status();
      MYDFS_ASSIGN(f, file_for(slot, false));
    }
    MYDFS_ASSIGN(uint64_t size, f->size());
    Status st;
    if (off >= size) return ok_status();
    if (off + len >= size) st = f->truncate(off);
    else st = f->punch(off, len);
    if (st.ok()) {
      std::lock_guard g(mu_);
      dirty_.insert(slot);
    }
    return st;
  }

  Status raw_read(uint32_t slot, uint64_t off, std::span<std::byte> out) const override {
    std::shared_ptr<File> f;
    {
      std::lock_guard g(mu_);
      if (auto it = files_.find(slot); it != files_.end()) f = it->second;
    }
    if (!f) {
      auto path = slot_path(slot);
      std::error_code ec;
      if (!fs::exists(path, ec)) {
        std::memset(out.data(), 0, out.size());
        return ok_status();
      }
      auto opened = const_cast<FilesStore*>(this)->file_for(slot, false);
      if (!opened.ok()) return opened.take_error();
      f = *opened;
    }
    MYDFS_ASSIGN(size_t n, f->pread_some(off, out));
    if (n < out.size()) std::memset(out.data() + n, 0, out.size() - n);
    return ok_status();
  }

  Status raw_write(uint32_t slot, uint64_t off, std::span<const std::byte> in) override {
    MYDFS_ASSIGN(std::shared_ptr<File> f, file_for(slot, true));
    MYDFS_TRY(f->pwrite_all(off, in));
    std::lock_guard g(mu_);
    dirty_.insert(slot);
    return ok_status();
  }

  Status raw_sync() override {
    // One sync at a time: a second caller must not return while the first is still syncing the
    // slots it took (they include the caller's writes).
    std::lock_guard one(sync_mu_);
    std::unordered_set<uint32_t> dirty;
    bool new_files;
    {
      std::lock_guard g(mu_);
      dirty.swap(dirty_);
      new_files = created_;
      created_ = false;
    }
    for (uint32_t s : dirty) {
      // Closed meanwhile (idle files are closed): syncing another descriptor of the same file
      // writes back its data all the same.
      auto f = file_for(s, false);
      Status st = f.ok() ? (*f)->datasync() : Status(f.take_error());
      if (!st.ok()) {
        std::lock_guard g(mu_);
        dirty_.insert(dirty.begin(), dirty.end());
        return st;
      }
    }
    if (new_files) MYDFS_TRY(sync_dir((fs::path(opt_.path) / "slots").string()));
    return ok_status();
  }

  PayloadFile raw_fd(uint32_t slot) override {
    auto f = file_for(slot, false);
    if (!f.ok()) return {};
    return {(*f)->fd(), 0, *f};
  }

 private:
  std::string tmp_path() const { return opt_.path + ".creating"; }
  std::string slot_path(uint32_t slot) const {
    return (fs::path(opt_.path) / "slots" / fmt::format("{:08x}", slot)).string();
  }

  // Opens (and with create, creates) the slot's file. At most kMaxOpen slot files stay open: the
  // one opened longest ago is closed first (its users hold it until they are done). A node holds
  // far more slots than a process may have descriptors.
  static constexpr size_t kMaxOpen = 2048;
  Result<std::shared_ptr<File>> file_for(uint32_t slot, bool create) {
    std::lock_guard g(mu_);
    if (!files_.count(slot)) {
      auto path = slot_path(slot);
      std::error_code ec;
      bool existed = fs::exists(path, ec);
      if (!existed && !create) return make_error(Code::NOT_FOUND, "slot file does not exist");
      MYDFS_ASSIGN(auto opened, File::open(path, O_RDWR | O_CREAT));
      files_[slot] = std::move(opened);
      if (!existed) created_ = true;
      opened_order_.push_back(slot);
      while (opened_order_.size() > kMaxOpen) {
        uint32_t old = opened_order_.front();
        opened_order_.pop_front();
        if (old != slot && old != 0) files_.erase(old);
      }
    }
    return files_[slot];
  }

  mutable std::mutex mu_;                      // guards files_ (the vector, not the files), dirty_, created_

  std::mutex sync_mu_;  // serializes raw_sync
  std::unordered_map<uint32_t, std::shared_ptr<File>> files_;  // open files by position; [0] = superblock
  std::deque<uint32_t> opened_order_;          // open slot files, oldest first
  std::unordered_set<uint32_t> dirty_;         // slots written since the last sync
  bool created_ = false;                       // a slot file was created since the last sync
};

}  // namespace

std::unique_ptr<SliceStore> make_files_store(const StoreOptions& opt) {
  return std::make_unique<FilesStore>(opt);
}

}  // namespace mydfs::storage
