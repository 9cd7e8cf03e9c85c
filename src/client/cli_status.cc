#include "client/cli_status.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "storage/slot_format.h"

namespace mydfs::cli {

using json = nlohmann::ordered_json;  // the tracker's key order, as the CLI parsed it

namespace {

// Lenient field access: a missing field or one of the wrong type reads as the default.
uint64_t get_u64(const json& o, const char* key) {
  if (!o.is_object()) return 0;
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  if (it->is_number_float()) {
    double d = it->get<double>();
    return d > 0 && std::isfinite(d) ? static_cast<uint64_t>(d) : 0;
  }
  return 0;
}

double get_f64(const json& o, const char* key, double def = 0) {
  if (!o.is_object()) return def;
  auto it = o.find(key);
  return it != o.end() && it->is_number() ? it->get<double>() : def;
}

bool get_bool(const json& o, const char* key, bool def = false) {
  if (!o.is_object()) return def;
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() ? it->get<bool>() : def;
}

std::string get_str(const json& o, const char* key) {
  if (!o.is_object()) return {};
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& get_array(const json& o, const char* key) {
  static const json empty = json::array();
  if (!o.is_object()) return empty;
  auto it = o.find(key);
  return it != o.end() && it->is_array() ? *it : empty;
}

std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

// Slots as GiB: every slot is one 4 MiB slice on disk.
double slots_gib(uint64_t slots) {
  return static_cast<double>(slots) * static_cast<double>(storage::kSlotSize) / double(1ull << 30);
}

std::string space(uint64_t free, uint64_t capacity) {
  return fmt::format("{}/{} slots ({:.2f}/{:.2f} GiB)", free, capacity, slots_gib(free), slots_gib(capacity));
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string human_age(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<uint64_t>(seconds);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string render_status(const json& status, size_t max_events) {
  const json& groups = get_array(status, "groups");
  std::string out;

  // One width for every address column (member rows and group leaders) so blocks line up.
  size_t addr_w = 7;  // "ADDRESS"
  size_t id_w = 1;
  uint64_t total_free = 0, total_cap = 0;
  size_t usable = 0, members = 0, up = 0;
  for (const json& g : groups) {
    addr_w = std::max(addr_w, or_dash(get_str(g, "leader")).size());
    id_w = std::max(id_w, fmt::format("{}", get_u64(g, "id")).size());
    total_free += get_u64(g, "free_slots");
    total_cap += get_u64(g, "capacity_slots");
    usable += get_bool(g, "usable");
    for (const json& m : get_array(g, "members")) {
      addr_w = std::max(addr_w, get_str(m, "address").size());
      ++members;
      up += get_bool(m, "up");
    }
  }

  out += fmt::format("cluster: {} group(s), {} usable; {} member(s), {} up; free {}\n", groups.size(),
                     usable, members, up, space(total_free, total_cap));
  if (groups.empty()) out += "no storage groups yet (add one: mydfs admin add-group ID ADDRESS...)\n";

  for (const json& g : groups) {
    out += fmt::format("\ngroup {:<{}}  {:<10}  leader {:<{}}  free {}  promised {}\n", get_u64(g, "id"), id_w,
                       get_bool(g, "usable") ? "usable" : "NOT USABLE", or_dash(get_str(g, "leader")), addr_w,
                       space(get_u64(g, "free_slots"), get_u64(g, "capacity_slots")), get_u64(g, "promised"));
    out += fmt::format("  {:<{}}  {:>4}  {:<9}  {:<5}  {:>9}  {:>6}  {:>9}  {:>7}\n", "ADDRESS", addr_w, "NODE",
                       "ROLE", "STATE", "HEARTBEAT", "FREE", "IN-FLIGHT", "QPS");
    for (const json& m : get_array(g, "members")) {
      // A member never heard from has no node id, role or load yet: show dashes, not zeros.
      bool heard = get_bool(m, "heard", true);
      uint64_t node = get_u64(m, "node_id");
      std::string node_s = heard && node ? fmt::format("{}", node) : "-";
      std::string role = heard ? or_dash(get_str(m, "role")) : "-";
      std::string hb = heard ? human_age(get_f64(m, "seconds_since_heartbeat", -1)) : "never";
      std::string free = heard ? fmt::format("{}", get_u64(m, "free_slots")) : "-";
      std::string in_flight = heard ? fmt::format("{}", get_u64(m, "in_flight")) : "-";
      std::string qps = heard ? fmt::format("{:.1f}", get_f64(m, "qps")) : "-";
      out += fmt::format("  {:<{}}  {:>4}  {:<9}  {:<5}  {:>9}  {:>6}  {:>9}  {:>7}\n",
                         or_dash(get_str(m, "address")), addr_w, node_s, role,
                         get_bool(m, "up") ? "up" : "DOWN", hb, free, in_flight, qps);
    }
  }

  out += fmt::format("\nnamespace: {} inode(s), {} file(s)\n", get_u64(status, "inodes"), get_u64(status, "files"));
  out += fmt::format("edit log:  {}, applied index {}, image index {}\n",
                     human_bytes(get_u64(status, "edit_log_bytes")), get_u64(status, "applied_index"),
                     get_u64(status, "image_index"));

  // The most recent events, printed oldest first so the newest is the last line (like tail).
  std::vector<const json*> events;
  for (const json& e : get_array(status, "events")) events.push_back(&e);
  std::stable_sort(events.begin(), events.end(), [](const json* a, const json* b) {
    return get_f64(*a, "seconds_ago") > get_f64(*b, "seconds_ago");
  });
  size_t shown = std::min(max_events, events.size());
  if (events.empty()) {
    out += "\nno recent events\n";
  } else {
    out += shown < events.size() ? fmt::format("\nrecent events (last {} of {}):\n", shown, events.size())
                                 : std::string("\nrecent events:\n");
    for (size_t i = events.size() - shown; i < events.size(); ++i)
      out += fmt::format("  {:>7} ago  {}\n", human_age(get_f64(*events[i], "seconds_ago", -1)),
                         get_str(*events[i], "text"));
  }
  return out;
}

}  // namespace mydfs::cli
