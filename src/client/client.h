// The client library: paths to inodes through the tracker, files as chains of slices on the
// storage groups (DESIGN §7). Uploads allocate runs from the tracker, reserve slots on each group,
// write the slices in parallel (their next pointers are known from the reservation) and publish
// the head with a compare-and-set commit; reads walk the chain one round trip per change of
// group and fetch the slices in parallel, checking every byte against its checksum.
//
// Blocking API over an internal io_context thread (the CLI and tests use it; the FUSE layer will
// use the coroutine API underneath).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "proto/fs_types.h"
#include "proto/rpc.h"
#include "proto/tracker_messages.h"

namespace mydfs::client {

struct ClientOptions {
  std::string tracker = "127.0.0.1:7000";
  uint32_t slices_in_flight = 8;                 // parallel slice transfers per file
  std::chrono::milliseconds call_timeout{10000};
  std::chrono::milliseconds connect_timeout{2000};
};

// A file-system error from the tracker: code FS_ERROR and the errno in Error::hint ("2" = ENOENT).
Error fs_error(int err, std::string what);
// The errno of an error (EIO for transport errors).
int error_errno(const Error& e);

struct SliceInfo {
  proto::SlotMeta meta;
  uint64_t offset = 0;  // of the slice's first byte in the file
};

// Where the bytes of an upload come from: read(offset, out) fills out (may be short at the end).
using Source = std::function<Result<size_t>(uint64_t offset, std::span<std::byte> out)>;
// Where the bytes of a download go.
using Sink = std::function<Status(uint64_t offset, std::span<const std::byte> data)>;
// Progress: bytes done, bytes in all.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

class Client {
 public:
  explicit Client(ClientOptions opt);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Namespace, by path ("/a/b"; symlinks are not followed).
  Result<Attr> stat(const std::string& path);
  Result<Attr> lookup(uint64_t parent, const std::string& name);
  Result<std::vector<DirEntry>> list(uint64_t dir);
  Result<Attr> mkdir(const std::string& path, uint32_t mode, bool parents);
  Status remove(const std::string& path, bool recursive);
  Status rename(const std::string& from, const std::string& to);
  Result<proto::NsReply> ns_write(NsOp op);

  // Data. put replaces the file's whole content (creating the file if needed); the new chain
  // becomes visible at the commit, all at once, or not at all.
  Result<Attr> put(const std::string& path, uint64_t size, const Source& src, const Progress& progress = {});
  Status get(const Attr& file, const Sink& sink, const Progress& progress = {});
  // The file's chain: every slice with its location, state, valid_len and offset.
  Result<std::vector<SliceInfo>> chain(const Attr& file);

 private:
  template <typename T>
  Result<T> run(boost::asio::awaitable<Result<T>> a);
  boost::asio::awaitable<Result<proto::NsReply>> ns_read_async(proto::NsReadReq req);
  boost::asio::awaitable<Result<proto::NsReply>> ns_write_async(NsOp op);
  boost::asio::awaitable<Result<std::string>> leader_of(uint32_t group, bool refresh);
  boost::asio::awaitable<Result<std::shared_ptr<proto::RpcClient>>> storage_for(uint32_t group);
  boost::asio::awaitable<Result<Attr>> resolve_async(std::string path);
  boost::asio::awaitable<Result<Attr>> put_async(std::string path, uint64_t size, const Source& src, const Progress& progress);
  boost::asio::awaitable<Result<std::vector<SliceInfo>>> chain_async(Attr file);
  boost::asio::awaitable<Status> get_async(Attr file, const Sink& sink, const Progress& progress);
  std::shared_ptr<proto::RpcClient> connect(const std::string& address);

  ClientOptions opt_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  // Touched only on io_ (the coroutines' executor).
  std::shared_ptr<proto::RpcClient> tracker_;
  std::map<std::string, std::shared_ptr<proto::RpcClient>> storage_;  // by address
  std::map<uint32_t, std::string> leaders_;                            // group -> leader address
};

// Splits "/a/b/c" into its parent path "/a/b" and name "c"; BAD_REQUEST for "/" or "".
Result<std::pair<std::string, std::string>> split_path(const std::string& path);

}  // namespace mydfs::client
