#include "client/client.h"

#include <cerrno>
#include <cstring>
#include <future>

#include "common/async.h"
#include "common/checksum.h"
#include "common/parse.h"
#include "proto/messages.h"

namespace mydfs::client {

namespace asio = boost::asio;
using namespace mydfs::proto;
using proto::kPayloadCapacity;

bool retryable(Code c) {
  return c == Code::CONFLICT || c == Code::STALE || c == Code::DELETED || c == Code::REDIRECT || c == Code::NOT_FOUND;
}

bool refused(Code c) {
  switch (c) {
    case Code::NOT_LEADER: case Code::NOT_FOUND: case Code::REDIRECT: case Code::DELETED: case Code::STALE:
    case Code::NO_SPACE: case Code::CONFLICT: case Code::BAD_REQUEST: case Code::CHECKSUM_MISMATCH:
    case Code::TOO_LARGE:
      return true;
    default:
      return false;
  }
}

Timespec now_timespec() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return Timespec{now.tv_sec, static_cast<uint32_t>(now.tv_nsec)};
}

uint64_t blocks_of(const proto::SlotMeta& m) {
  if (m.valid_len == 0 || m.payload_checksum == xxh64_zeros(m.valid_len)) return 0;
  return (uint64_t{m.valid_len} + 4095) / 4096 * 4096;
}

uint64_t blocks_of(std::span<const std::byte> bytes) {
  return all_zero(bytes) ? 0 : (bytes.size() + 4095) / 4096 * 4096;
}

Error fs_context(Error e, std::string_view what) {
  return e.code == Code::FS_ERROR ? fs_error(e.sys_errno, what) : std::move(e);
}

Result<std::pair<std::string, std::string>> split_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  if (p.empty() || p == "/" || slash == std::string::npos)
    return make_error(Code::BAD_REQUEST, fmt::format("'{}' is not an absolute path to an entry", path));
  return std::make_pair(slash == 0 ? std::string("/") : p.substr(0, slash), p.substr(slash + 1));
}

Client::Client(ClientOptions opt) : opt_(std::move(opt)) {
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] { io_.run(); });
}

Client::~Client() {
  wait_frees();
  std::promise<void> closed;
  asio::post(io_, [this, &closed] {
    if (tracker_) tracker_->close();
    for (auto& [a, c] : storage_) c->close();
    closed.set_value();
  });
  closed.get_future().wait();
  work_.reset();
  io_.stop();
  thread_.join();
}

template <typename T>
Result<T> Client::run(asio::awaitable<Result<T>> a) {
  return asio::co_spawn(io_, std::move(a), asio::use_future).get();
}
// The types run() returns only in edits.cc.
template Result<Client::CompactResult> Client::run(asio::awaitable<Result<Client::CompactResult>>);

std::shared_ptr<RpcClient> Client::connect(const std::string& address) {
  auto hp = parse_host_port(address);
  proto::ClientOptions co;
  co.call_timeout = opt_.call_timeout;
  co.connect_timeout = opt_.connect_timeout;
  return std::make_shared<RpcClient>(io_.get_executor(), hp.ok() ? hp->host : address, hp.ok() ? hp->port : 0, co);
}

namespace {
// The namespace's errno becomes an FS_ERROR here, so above this line a reply is a success.
Result<NsReply> fold_errno(Result<NsReply> r) {
  if (r.ok() && r->err != 0) return fs_error(r->err);
  return r;
}
}  // namespace

asio::awaitable<Result<NsReply>> Client::ns_read_async(NsReadReq req) {
  if (!tracker_) tracker_ = connect(opt_.tracker);
  co_return fold_errno(co_await tracker_->call(req));
}

asio::awaitable<Result<NsReply>> Client::ns_write_async(NsOp op) {
  if (!tracker_) tracker_ = connect(opt_.tracker);
  NsWriteReq req{std::move(op)};
  co_return fold_errno(co_await tracker_->call(req));
}

asio::awaitable<Result<std::string>> Client::leader_of(uint32_t group, bool refresh) {
  if (!refresh) {
    if (auto it = leaders_.find(group); it != leaders_.end() && !it->second.empty()) co_return it->second;
  }
  if (!tracker_) tracker_ = connect(opt_.tracker);
  auto st = co_await tracker_->call(ClusterStatusReq{});
  if (!st.ok()) co_return st.take_error();
  MYDFS_CO_ASSIGN(auto leaders, usable_group_leaders(*st));
  for (auto& [g, addr] : leaders) leaders_[g] = addr;
  for (auto& [g, list] : group_members(*st)) members_[g] = std::move(list);
  auto it = leaders_.find(group);
  if (it == leaders_.end() || it->second.empty()) {
    // The tracker knows no leader yet (an election, or its heartbeats lag): ask a member.
    std::string any = next_member(group, "");
    if (!any.empty()) co_return any;
    co_return make_error(Code::UNAVAILABLE, fmt::format("group {} has no reachable leader", group));
  }
  co_return it->second;
}

std::string Client::next_member(uint32_t group, const std::string& failed) {
  auto it = members_.find(group);
  if (it == members_.end() || it->second.empty()) return "";
  const auto& list = it->second;
  auto pos = std::find(list.begin(), list.end(), failed);
  if (pos == list.end()) return list.front();
  ++pos;
  return pos == list.end() ? list.front() : *pos;
}

asio::awaitable<Result<std::shared_ptr<GroupChannel>>> Client::storage_for(uint32_t group) {
  co_return std::make_shared<GroupChannel>(this, group);
}

asio::awaitable<Result<Attr>> Client::resolve_async(std::string path) {
  if (path.empty() || path[0] != '/')
    co_return make_error(Code::BAD_REQUEST, fmt::format("'{}' is not an absolute path", path));
  uint64_t ino = kRootIno;
  Attr attr;
  NsReadReq get{NsReadOp::GETATTR, kRootIno, "", 0, 0};
  MYDFS_CO_ASSIGN(NsReply root, co_await ns_read_async(get));
  attr = root.attr;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string name = path.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty() || name == ".") continue;
    NsReadReq req{NsReadOp::LOOKUP, ino, name, 0, 0};
    MYDFS_CO_ASSIGN(NsReply r, co_await ns_read_async(req));
    attr = r.attr;
    ino = attr.ino;
  }
  co_return attr;
}

Result<Attr> Client::stat(const std::string& path) { return run(resolve_async(path)); }

Result<Attr> Client::lookup(uint64_t parent, const std::string& name) {
  return run([this, parent, name]() -> asio::awaitable<Result<Attr>> {
    NsReadReq req{NsReadOp::LOOKUP, parent, name, 0, 0};
    MYDFS_CO_ASSIGN(NsReply r, co_await ns_read_async(req));
    co_return r.attr;
  }());
}

Result<std::vector<DirEntry>> Client::list(uint64_t dir) {
  return run([this, dir]() -> asio::awaitable<Result<std::vector<DirEntry>>> {
    std::vector<DirEntry> all;
    uint64_t cookie = 0;
    for (bool eof = false; !eof;) {
      NsReadReq req{NsReadOp::READDIR, dir, "", cookie, 1024};
      MYDFS_CO_ASSIGN(NsReply r, co_await ns_read_async(req));
      eof = r.eof;
      for (auto& e : r.entries) {
        cookie = e.cookie;
        if (e.name != "." && e.name != "..") all.push_back(e);
      }
      if (r.entries.empty()) break;
    }
    co_return all;
  }());
}

Result<NsReply> Client::ns_write(NsOp op) { return run(ns_write_async(std::move(op))); }

void Client::release(std::vector<Location> heads) {
  if (heads.empty()) return;
  asio::post(io_, [this, heads = std::move(heads)]() mutable { free_later(std::move(heads)); });
}

void Client::free_later(std::vector<Location> heads) {
  frees_.insert(frees_.end(), heads.begin(), heads.end());
  if (freeing_ || frees_.empty()) return;
  freeing_ = true;
  asio::co_spawn(io_, drain_frees(), asio::detached);
}

asio::awaitable<void> Client::drain_frees() {
  // Up to 16 chains at a time: their DELETEs share the groups' commits.
  auto ex = co_await asio::this_coro::executor;
  auto worker = [this]() -> asio::awaitable<void> {
    while (!frees_.empty()) {
      Location head = frees_.front();
      frees_.pop_front();
      std::vector<Location> one{head};
      co_await free_chains(one);
    }
  };
  // Chains released while the last workers finished are taken by another round, not left queued
  // with nobody freeing them (wait_frees() would wait for them forever).
  while (!frees_.empty()) co_await run_workers(ex, 16, worker);
  freeing_ = false;
}

void Client::wait_frees() {
  (void)run([this]() -> asio::awaitable<Result<bool>> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (freeing_ || !frees_.empty()) {
      t.expires_after(std::chrono::milliseconds(5));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return true;
  }());
}

Result<Attr> Client::mkdir(const std::string& path, uint32_t mode, bool parents) {
  return run([this, path, mode, parents]() -> asio::awaitable<Result<Attr>> {
    MYDFS_CO_ASSIGN(auto pn, split_path(path));
    auto parent = co_await resolve_async(pn.first);
    if (!parent.ok() && parents && to_errno(parent.error()) == ENOENT && pn.first != "/") {
      // Make the missing parents first, top down.
      std::string sofar;
      size_t pos = 1;
      while (pos <= pn.first.size()) {
        size_t end = pn.first.find('/', pos);
        if (end == std::string::npos) end = pn.first.size();
        sofar += "/" + pn.first.substr(pos, end - pos);
        pos = end + 1;
        auto at = co_await resolve_async(sofar);
        if (at.ok()) continue;
        MYDFS_CO_ASSIGN(auto sp, split_path(sofar));
        MYDFS_CO_ASSIGN(Attr up, co_await resolve_async(sp.first));
        auto r = co_await ns_write_async(NsOp::mkdir(up.ino, sp.second, mode));
        if (!r.ok() && to_errno(r.error()) != EEXIST) co_return r.take_error();
      }
      parent = co_await resolve_async(pn.first);
    }
    if (!parent.ok()) co_return parent.take_error();
    auto r = co_await ns_write_async(NsOp::mkdir(parent->ino, pn.second, mode));
    if (!r.ok() && to_errno(r.error()) == EEXIST && parents) {
      auto existing = co_await resolve_async(path);
      if (existing.ok() && existing->type == FileType::DIR) co_return existing;
    }
    if (!r.ok()) co_return r.take_error();
    co_return r->attr;
  }());
}

Status Client::remove(const std::string& path, bool recursive) {
  MYDFS_ASSIGN(Attr a, stat(path));
  MYDFS_ASSIGN(auto pn, split_path(path));
  MYDFS_ASSIGN(Attr parent, stat(pn.first));
  if (a.type == FileType::DIR) {
    if (recursive) {
      MYDFS_ASSIGN(auto entries, list(a.ino));
      for (auto& e : entries) MYDFS_TRY(remove((path.back() == '/' ? path : path + "/") + e.name, true));
    }
  }
  NsOp op = a.type == FileType::DIR ? NsOp::rmdir(parent.ino, pn.second) : NsOp::unlink(parent.ino, pn.second);
  MYDFS_ASSIGN(NsReply r, ns_write(op));
  release(r.released);
  return ok_status();
}

Status Client::rename(const std::string& from, const std::string& to) {
  MYDFS_ASSIGN(auto f, split_path(from));
  MYDFS_ASSIGN(auto t, split_path(to));
  MYDFS_ASSIGN(Attr fp, stat(f.first));
  MYDFS_ASSIGN(Attr tp, stat(t.first));
  // "mv a dir/" moves into the directory.
  auto target = stat(to);
  if (target.ok() && target->type == FileType::DIR) {
    tp = *target;
    t.second = f.second;
  }
  MYDFS_ASSIGN(NsReply r, ns_write(NsOp::rename(fp.ino, f.second, tp.ino, t.second)));
  release(r.released);
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Upload

Result<Attr> Client::put(const std::string& path, uint64_t size, const Source& src, const Progress& progress) {
  return run(put_async(path, size, src, progress));
}

asio::awaitable<Result<Attr>> Client::put_async(std::string path, uint64_t size, const Source& src,
                                                const Progress& progress) {
  MYDFS_CO_ASSIGN(auto pn, split_path(path));
  MYDFS_CO_ASSIGN(Attr dir, co_await resolve_async(pn.first));
  MYDFS_CO_ASSIGN(NsReply cr, co_await ns_write_async(NsOp::create(dir.ino, pn.second, 0644, false)));
  Attr file = cr.attr;
  if (file.type != FileType::REG) co_return fs_error(EISDIR, "");

  Span data{size, src};
  uint64_t blocks = 0;
  MYDFS_CO_ASSIGN(std::vector<Location> slots, co_await write_new_slices(file.ino, data, Location{}, progress, &blocks));
  // Publish: one compare-and-set on the version we created or opened.
  auto commit = NsOp::commit_file(file.ino, file.version, slots.empty() ? Location{} : slots[0], size, now_timespec(),
                                  blocks);
  auto cm = co_await ns_write_async(commit);
  if (!cm.ok() && to_errno(cm.error()) == ESTALE) {
    co_await discard(slots);
    co_return fs_error(ESTALE, "another client changed the file during the upload");
  }
  if (!cm.ok()) co_return fs_context(cm.take_error(), "commit");
  chains_.erase(file.ino);
  free_later(std::move(cm->released));
  co_return cm->attr;
}

// ---------------------------------------------------------------------------------------------
// Reads

Result<std::vector<SliceInfo>> Client::chain(const Attr& file) { return run(chain_async(file)); }

asio::awaitable<Result<std::vector<SliceInfo>>> Client::chain_async(Attr file) {
  std::vector<SliceInfo> out;
  Location at = file.head;
  uint64_t offset = 0;
  // One WALK per change of group: each returns the slices while the chain stays on its node.
  for (int hops = 0; !at.null(); ++hops) {
    if (hops > 1000000) co_return make_error(Code::CORRUPT, "the chain does not end");
    MYDFS_CO_ASSIGN(auto sc, co_await storage_for(at.group));
    WalkReq wreq{at, kMaxWalk};
    MYDFS_CO_ASSIGN(WalkResp w, co_await sc->call(wreq));
    for (const auto& m : w.slices) {
      if (m.state != SlotState::LIVE) continue;  // a 301 on the way: its target follows
      if (m.file_id != file.ino)
        co_return make_error(Code::CORRUPT, fmt::format("slice {} belongs to file {}, not {}", m.loc, m.file_id, file.ino));
      out.push_back(SliceInfo{m, offset});
      offset += m.valid_len;
    }
    if (w.end_code != Code::OK)
      co_return make_error(w.end_code, fmt::format("the chain of file {} breaks at {}", file.ino, w.end_at));
    at = w.leaves;
  }
  co_return out;
}

Result<uint64_t> Client::get(const Attr& file, const Sink& sink, const Progress& progress) {
  return run([this, file, &sink, &progress]() -> asio::awaitable<Result<uint64_t>> {
    co_return co_await get_async(file, sink, progress);
  }());
}

asio::awaitable<Result<uint64_t>> Client::get_async(Attr file, const Sink& sink, const Progress& progress) {
  // The chain map is cached per file while its head stays the same. Every slice read checks
  // that the slice is still what the map says (same applied index, length and next pointer):
  // any edit of the file changes at least one slice of the old map, so a stale map shows up as
  // a mismatch, and the read starts again from a fresh walk.
  Error walk_error = make_error(Code::CONFLICT, "the chain changed during the walk");  // the last walk's, if it failed
  for (uint32_t attempt = 0;; ++attempt) {
    auto cached = chains_.find(file.ino);
    if (cached == chains_.end() || !(cached->second.head == file.head)) {
      // Other reads and edits run on this thread while the walk waits: no iterator survives it.
      auto walked = co_await chain_async(file);
      if (!walked.ok() && !retryable(walked.code())) co_return walked.take_error();
      if (!walked.ok()) walk_error = walked.error();
      cached = walked.ok()
                   ? chains_.insert_or_assign(file.ino, CachedChain{file.head, file.version, std::move(*walked)}).first
                   : chains_.end();
    }
    Result<uint64_t> r = walk_error;
    if (cached != chains_.end()) {
      std::vector<SliceInfo> slices = cached->second.slices;
      r = co_await read_chain_once(slices, sink, progress);
    }
    if (r.ok() || !retryable(r.code()) || attempt + 1 >= opt_.edit_attempts) co_return r;
    MYDFS_CO_ASSIGN(file, co_await reread_after_change(file.ino, attempt));
  }
}

asio::awaitable<Result<Attr>> Client::reread_after_change(uint64_t ino, uint32_t attempt) {
  chains_.erase(ino);
  co_await backoff(attempt);
  co_return co_await getattr_async(ino);
}

asio::awaitable<Result<Attr>> Client::getattr_async(uint64_t ino) {
  NsReadReq req{NsReadOp::GETATTR, ino, "", 0, 0};
  MYDFS_CO_ASSIGN(NsReply r, co_await ns_read_async(req));
  co_return r.attr;
}

asio::awaitable<Result<uint64_t>> Client::read_chain_once(const std::vector<SliceInfo>& slices, const Sink& sink,
                                                          const Progress& progress) {
  uint64_t total = 0;
  for (auto& s : slices) total += s.meta.valid_len;
  std::optional<Error> failure;
  size_t next = 0;
  uint64_t done_bytes = 0;
  auto ex = co_await asio::this_coro::executor;
  auto worker = [&]() -> asio::awaitable<void> {
    while (!failure && next < slices.size()) {
      const SliceInfo& s = slices[next++];
      auto sc = co_await storage_for(s.meta.loc.group);
      if (!sc.ok()) { failure = sc.error(); co_return; }
      AlignedBuffer bulk;
      ReadReq rreq{s.meta.loc, 0, s.meta.valid_len};
      auto r = co_await (*sc)->call(rreq, {}, &bulk);
      if (!r.ok()) { failure = r.error(); co_return; }
      const SlotMeta& now = r->meta;
      if (now.applied_index != s.meta.applied_index || now.valid_len != s.meta.valid_len || !(now.next == s.meta.next)) {
        failure = make_error(Code::CONFLICT, fmt::format("slice {} changed since the chain was walked", s.meta.loc));
        co_return;
      }
      uint64_t want = r->whole ? now.payload_checksum : r->range_checksum;
      std::string again;
      std::span<const std::byte> bytes = bulk.span();
      if (bulk.size() != s.meta.valid_len || xxh64(bulk.span()) != want) {
        // Torn by an edit racing the send, or damaged: read_range tells which.
        auto retry = co_await read_range(s, 0, s.meta.valid_len);
        if (!retry.ok()) { failure = retry.error(); co_return; }
        again = std::move(*retry);
        bytes = std::as_bytes(std::span(again.data(), again.size()));
      }
      if (bytes.empty()) continue;
      Status st = sink(s.offset, bytes);
      if (!st.ok()) { failure = st.error(); co_return; }
      done_bytes += bytes.size();
      if (progress) progress(done_bytes, total);
    }
  };
  co_await run_workers(ex, opt_.slices_in_flight, worker);
  if (failure) co_return *failure;
  co_return total;
}

// ---------------------------------------------------------------------------------------------
// By inode

Result<NsReply> Client::ns_read(NsReadReq req) { return run(ns_read_async(std::move(req))); }

Status Client::sync_namespace() {
  MYDFS_TRY(ns_read(NsReadReq{NsReadOp::SYNC, 0, "", 0, 0}));
  return ok_status();
}

Result<Attr> Client::getattr(uint64_t ino) { return run(getattr_async(ino)); }

Result<std::string> Client::pread(const Attr& file, uint64_t off, uint32_t len) {
  return run(pread_async(file, off, len));
}

asio::awaitable<Result<std::string>> Client::pread_async(Attr file, uint64_t off, uint32_t len) {
  for (uint32_t attempt = 0;; ++attempt) {
    auto cached = chains_.find(file.ino);
    if (cached == chains_.end() || !(cached->second.head == file.head) || cached->second.version != file.version) {
      auto walked = co_await chain_async(file);  // no iterator survives the wait (see get_async)
      if (!walked.ok() && !retryable(walked.code())) co_return walked.take_error();
      cached = walked.ok()
                   ? chains_.insert_or_assign(file.ino, CachedChain{file.head, file.version, std::move(*walked)}).first
                   : chains_.end();
    }
    Status st = make_error(Code::CONFLICT, "the chain changed during the walk");
    std::string out;
    if (cached != chains_.end()) {
      // A copy: other reads on this thread may replace the cached map while this one waits.
      std::vector<SliceInfo> slices = cached->second.slices;
      auto it = std::upper_bound(slices.begin(), slices.end(), off,
                                 [](uint64_t o, const SliceInfo& s) { return o < s.offset + s.meta.valid_len; });
      uint64_t pos = off, end = off + len;
      st = ok_status();
      for (; it != slices.end() && pos < end; ++it) {
        uint64_t s_end = it->offset + it->meta.valid_len;
        if (s_end <= pos) continue;
        auto n = static_cast<uint32_t>(std::min(end, s_end) - pos);
        auto part = co_await read_range(*it, static_cast<uint32_t>(pos - it->offset), n);
        if (!part.ok()) {
          st = part.take_error();
          break;
        }
        if (out.empty()) out = std::move(*part);  // most reads lie within one slice: no second copy
        else out += *part;
        pos += n;
      }
      // The map ends before the range the caller knows to be in the file: it is older than the
      // file. Never a short read within the file's size (the kernel would take it for the end).
      if (st.ok() && pos < end && pos < file.size)
        st = make_error(Code::CONFLICT, fmt::format("the chain map of file {} ends at {}", file.ino, pos));
    }
    if (st.ok()) co_return out;
    if (!retryable(st.code()) || attempt + 1 >= opt_.edit_attempts) co_return st.take_error();
    MYDFS_CO_ASSIGN(file, co_await reread_after_change(file.ino, attempt));
  }
}

}  // namespace mydfs::client
