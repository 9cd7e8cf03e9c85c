// volume backend: one sparse file, position i at byte i * 4 MiB (position 0 = superblock and the
// first header table). The file is as long as the last header table, or the last payload block
// written, whichever ends later; unwritten ranges are holes and read as zeros.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include "common/file_io.h"
#include "storage/slice_store.h"

namespace mydfs::storage {

namespace {

class VolumeStore final : public SliceStore {
 public:
  explicit VolumeStore(const StoreOptions& opt) : SliceStore(opt) {}

 protected:
  bool raw_exists() const override {
    std::error_code ec;
    return std::filesystem::exists(opt_.path, ec);
  }

  Status raw_open(bool create, uint32_t capacity) override {
    auto parent = std::filesystem::path(opt_.path).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
      return make_error(Code::BAD_REQUEST, fmt::format("data directory '{}' does not exist", parent.string()));
    if (!create) {
      MYDFS_ASSIGN(file_, File::open(opt_.path, O_RDWR));
      return ok_status();
    }
    (void)capacity;
    MYDFS_ASSIGN(file_, File::open(tmp_path(), O_RDWR | O_CREAT | O_TRUNC));
    return raw_table(0);
  }

  Status raw_commit_create() override {
    if (::rename(tmp_path().c_str(), opt_.path.c_str()) != 0)
      return make_error(Code::IO_ERROR, fmt::format("cannot rename '{}': {}", tmp_path(), std::strerror(errno)));
    auto parent = std::filesystem::path(opt_.path).parent_path().string();
    return sync_dir(parent.empty() ? "." : parent);
  }

  // Every header table below the high-water mark was made when its first slot was handed out.
  Status raw_check(uint32_t high_water) const override {
    MYDFS_ASSIGN(uint64_t size, file_->size());
    uint64_t want = table_end(table_of(high_water > 1 ? high_water - 1 : 0));
    if (size < want)
      return make_error(Code::CORRUPT, fmt::format("'{}' is {} bytes but its superblock says {} positions are in use "
                                                   "({} bytes at least): the volume was truncated",
                                                   opt_.path, size, high_water, want));
    return ok_status();
  }

  Status raw_grow(uint32_t) override { return ok_status(); }  // sparse: nothing to make

  Status raw_table(uint32_t table) override {
    MYDFS_ASSIGN(uint64_t size, file_->size());
    if (size >= table_end(table)) return ok_status();
    return file_->truncate(table_end(table));
  }

  uint64_t raw_data_end(uint32_t slot, uint64_t limit) override {
    uint64_t base = uint64_t{slot} * kSlotSize;
    return file_->data_end(base, base + limit) - base;
  }

  Status raw_punch(uint32_t slot, uint64_t off, uint64_t len) override {
    return file_->punch(uint64_t{slot} * kSlotSize + off, len);
  }

  Status raw_read(uint32_t slot, uint64_t off, std::span<std::byte> out) const override {
    MYDFS_ASSIGN(size_t n, file_->pread_some(uint64_t{slot} * kSlotSize + off, out));
    if (n < out.size()) std::memset(out.data() + n, 0, out.size() - n);
    return ok_status();
  }

  Status raw_write(uint32_t slot, uint64_t off, std::span<const std::byte> in) override {
    return file_->pwrite_all(uint64_t{slot} * kSlotSize + off, in);
  }

  Status raw_sync() override { return file_->datasync(); }

  PayloadFile raw_fd(uint32_t slot) override { return {file_->fd(), uint64_t{slot} * kSlotSize, nullptr}; }

 private:
  std::string tmp_path() const { return opt_.path + ".creating"; }
  static uint64_t table_end(uint32_t table) { return uint64_t{table} * kSlotSize + kTableEnd; }
  std::unique_ptr<File> file_;
};

}  // namespace

std::unique_ptr<SliceStore> make_volume_store(const StoreOptions& opt) {
  return std::make_unique<VolumeStore>(opt);
}

}  // namespace mydfs::storage
