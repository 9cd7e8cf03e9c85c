// Checksummed records, the unit of every append-only log file in mydfs (the storage node's
// write-ahead log, the Raft log). docs/ON-DISK.md §9.2:
//   u32 body_len | u32 type | u64 xxHash64(body_len, type, body) | body
// A reader cuts a torn tail (an invalid record with nothing valid after it in the last file) and
// refuses a damaged record that has valid records after it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mydfs {

constexpr size_t kRecordHeader = 16;

// What a reader accepts: types 1..max_type and bodies of min_body..max_body bytes.
struct RecordRules {
  uint32_t max_type = 1;
  size_t min_body = 0;
  size_t max_body = 8u << 20;
};

std::string encode_record(uint32_t type, std::string_view body);
// The record at off: its total size, or 0 if there is no complete valid record there.
size_t parse_record(std::string_view data, size_t off, const RecordRules& rules, uint32_t& type,
                    std::string_view& body);
// Any valid record starting anywhere in [from, end)? Tells damage in the middle (acknowledged
// records follow it) from a torn tail (nothing valid after it).
bool valid_record_after(std::string_view data, size_t from, const RecordRules& rules);

}  // namespace mydfs
