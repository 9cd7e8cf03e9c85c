#include "common/record.h"

#include <xxhash.h>

#include "common/codec.h"

namespace mydfs {

namespace {

uint64_t record_checksum(uint32_t len, uint32_t type, std::string_view body) {
  unsigned char h[8];
  for (int i = 0; i < 4; ++i) h[i] = static_cast<unsigned char>(len >> (8 * i));
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<unsigned char>(type >> (8 * i));
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  XXH64_update(st, h, sizeof h);
  XXH64_update(st, body.data(), body.size());
  uint64_t sum = XXH64_digest(st);
  XXH64_freeState(st);
  return sum;
}

}  // namespace

std::string encode_record(uint32_t type, std::string_view body) {
  Writer w;
  w.u32(static_cast<uint32_t>(body.size()));
  w.u32(type);
  w.u64(record_checksum(static_cast<uint32_t>(body.size()), type, body));
  w.raw(body.data(), body.size());
  return w.take();
}

size_t parse_record(std::string_view data, size_t off, const RecordRules& rules, uint32_t& type,
                    std::string_view& body) {
  if (off > data.size() || data.size() - off < kRecordHeader) return 0;
  Reader r(data.data() + off, kRecordHeader);
  uint32_t len = r.u32();
  type = r.u32();
  uint64_t sum = r.u64();
  if (type < 1 || type > rules.max_type || len < rules.min_body || len > rules.max_body ||
      data.size() - off - kRecordHeader < len)
    return 0;
  body = data.substr(off + kRecordHeader, len);
  if (record_checksum(len, type, body) != sum) return 0;
  return kRecordHeader + len;
}

bool valid_record_after(std::string_view data, size_t from, const RecordRules& rules) {
  for (size_t off = from; off + kRecordHeader <= data.size(); ++off) {
    uint32_t type;
    std::string_view body;
    if (parse_record(data, off, rules, type, body)) return true;
  }
  return false;
}

}  // namespace mydfs
