// volume backend: one pre-sized file, slot i at byte i * 4 MiB (slot 0 = superblock).
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
    MYDFS_ASSIGN(file_, File::open(tmp_path(), O_RDWR | O_CREAT | O_TRUNC));
    return file_->allocate((uint64_t{capacity} + 1) * kSlotSize);
  }

  Status raw_commit_create() override {
    if (::rename(tmp_path().c_str(), opt_.path.c_str()) != 0)
      return make_error(Code::IO_ERROR, fmt::format("cannot rename '{}': {}", tmp_path(), std::strerror(errno)));
    auto parent = std::filesystem::path(opt_.path).parent_path().string();
    return sync_dir(parent.empty() ? "." : parent);
  }

  Status raw_check(uint32_t capacity) const override {
    MYDFS_ASSIGN(uint64_t size, file_->size());
    uint64_t want = (uint64_t{capacity} + 1) * kSlotSize;
    if (size < want)
      return make_error(Code::CORRUPT, fmt::format("'{}' is {} bytes but its superblock says {} slots ({} bytes): "
                                                   "the volume was truncated", opt_.path, size, capacity, want));
    return ok_status();
  }

  Status raw_grow(uint32_t capacity) override {
    return file_->allocate((uint64_t{capacity} + 1) * kSlotSize);
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
  std::unique_ptr<File> file_;
};

}  // namespace

std::unique_ptr<SliceStore> make_volume_store(const StoreOptions& opt) {
  return std::make_unique<VolumeStore>(opt);
}

}  // namespace mydfs::storage
