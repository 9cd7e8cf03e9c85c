#include "cli/status.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "proto/messages.h"

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

bool has_number(const json& o, const char* key) {
  if (!o.is_object()) return false;
  auto it = o.find(key);
  return it != o.end() && it->is_number();
}

std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

// s with control characters (a terminal would act on them: escape sequences in a file name)
// replaced by '?'.
std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

// v with `decimals` decimals; "-" when unknown (NaN: a field the tracker left out).
std::string figure(double v, int decimals) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string("-");
}

// Rows as columns padded to their widest cell, two spaces apart, each line after indent;
// right[i] right-aligns column i. A left-aligned last column is not padded (it holds names of any
// length), and lines carry no trailing blanks.
std::string format_table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right,
                         std::string_view indent) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line(indent);
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) line += "  ";
      if (i < right.size() && right[i]) line += fmt::format("{:>{}}", r[i], w[i]);
      else if (i + 1 == r.size()) line += r[i];
      else line += fmt::format("{:<{}}", r[i], w[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

// Every line of text cut to width columns (UTF-8 characters); width 0 keeps them whole.
std::string cut_lines(const std::string& text, size_t width) {
  if (width == 0) return text;
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl;
    size_t cols = 0, i = start;
    for (; i < end; ++i) {
      if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continues a character
      if (cols == width) break;
      ++cols;
    }
    out.append(text, start, i - start);
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
  }
  return out;
}

// Free bytes of capacity, and the free slots (every slice needs one, however small).
std::string space(uint64_t free, uint64_t capacity, uint64_t free_slots) {
  return fmt::format("{} of {}, {} slots", human_bytes(free), human_bytes(capacity), free_slots);
}

// The share of used space that holds no file's bytes (4 KiB rounding, headers, deleted slices
// not yet given back to the disk).
std::string waste(uint64_t used, uint64_t live) {
  if (used == 0) return "-";
  return fmt::format("{:.0f}%", 100.0 * static_cast<double>(used > live ? used - live : 0) / static_cast<double>(used));
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
  uint64_t total_free = 0, total_cap = 0, total_slots = 0;
  size_t usable = 0, members = 0, up = 0;
  for (const json& g : groups) {
    addr_w = std::max(addr_w, or_dash(get_str(g, "leader")).size());
    id_w = std::max(id_w, fmt::format("{}", get_u64(g, "id")).size());
    total_free += get_u64(g, "free_bytes");
    total_cap += get_u64(g, "capacity_bytes");
    total_slots += get_u64(g, "free_slots");
    usable += get_bool(g, "usable");
    for (const json& m : get_array(g, "members")) {
      addr_w = std::max(addr_w, get_str(m, "address").size());
      ++members;
      up += get_bool(m, "up");
    }
  }

  out += fmt::format("cluster: {} group(s), {} usable; {} member(s), {} up; free {}\n", groups.size(),
                     usable, members, up, space(total_free, total_cap, total_slots));
  if (groups.empty()) out += "no storage groups yet (add one: mydfs admin add-group ID ADDRESS...)\n";

  for (const json& g : groups) {
    out += fmt::format("\ngroup {:<{}}  {:<10}  leader {:<{}}  free {}  promised {}\n", get_u64(g, "id"), id_w,
                       get_bool(g, "usable") ? "usable" : "NOT USABLE", or_dash(get_str(g, "leader")), addr_w,
                       space(get_u64(g, "free_bytes"), get_u64(g, "capacity_bytes"), get_u64(g, "free_slots")),
                       get_u64(g, "promised"));
    out += fmt::format("  {:<{}}  {:>4}  {:<9}  {:<5}  {:>9}  {:>10}  {:>10}  {:>5}  {:>9}  {:>7}\n", "ADDRESS", addr_w,
                       "NODE", "ROLE", "STATE", "HEARTBEAT", "USED", "FREE", "WASTE", "IN-FLIGHT", "QPS");
    for (const json& m : get_array(g, "members")) {
      // A member never heard from has no node id, role or load yet: show dashes, not zeros.
      bool heard = get_bool(m, "heard", true);
      uint64_t node = get_u64(m, "node_id");
      std::string node_s = heard && node ? fmt::format("{}", node) : "-";
      std::string role = heard ? or_dash(get_str(m, "role")) : "-";
      std::string hb = heard ? human_age(get_f64(m, "seconds_since_heartbeat", -1)) : "never";
      std::string used = heard ? human_bytes(get_u64(m, "used_bytes")) : "-";
      std::string free = heard ? human_bytes(get_u64(m, "free_bytes")) : "-";
      std::string lost = heard ? waste(get_u64(m, "used_bytes"), get_u64(m, "live_bytes")) : "-";
      std::string in_flight = heard ? fmt::format("{}", get_u64(m, "in_flight")) : "-";
      std::string qps = heard ? fmt::format("{:.1f}", get_f64(m, "qps")) : "-";
      out += fmt::format("  {:<{}}  {:>4}  {:<9}  {:<5}  {:>9}  {:>10}  {:>10}  {:>5}  {:>9}  {:>7}\n",
                         or_dash(get_str(m, "address")), addr_w, node_s, role,
                         get_bool(m, "up") ? "up" : "DOWN", hb, used, free, lost, in_flight, qps);
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

std::string render_top(const json& status, const TopView& view) {
  std::string out = fmt::format("tracker {} at {}", printable(view.tracker), view.time);
  if (!view.error.empty()) {
    out += fmt::format("\n\n{}\n", printable(view.error));
    return cut_lines(out, view.width);
  }
  const json& groups = get_array(status, "groups");

  // Header: the tracker's member counts, or counted here when it leaves them out.
  uint64_t up = 0, down = 0;
  for (const json& g : groups)
    for (const json& m : get_array(g, "members")) ++(get_bool(m, "up") ? up : down);
  if (has_number(status, "members_up")) up = get_u64(status, "members_up");
  if (has_number(status, "members_down")) down = get_u64(status, "members_down");
  static const json no_object = json::object();
  auto tracker_it = status.find("tracker");  // end() when status is not an object
  const json& tracker = tracker_it != status.end() ? *tracker_it : no_object;
  out += fmt::format(": {} inodes, {} files; members {} up, {} down; tracker {} qps\n", get_u64(status, "inodes"),
                     get_u64(status, "files"), up, down, figure(get_f64(tracker, "qps", kUnknown), 1));

  // Members, group by group.
  out += '\n';
  if (groups.empty()) {
    out += "no storage groups yet (add one: mydfs admin add-group ID ADDRESS...)\n";
  } else {
    std::vector<std::vector<std::string>> rows{{"GROUP", "NODE", "ADDRESS", "ROLE", "STATE", "QPS", "QPS 1m",
                                                "IN FLIGHT", "IN MB/s", "OUT MB/s", "POOL %", "USED", "FREE", "FREE %", "WASTE"}};
    for (const json& g : groups) {
      std::string gid = fmt::format("{}", get_u64(g, "id"));
      for (const json& m : get_array(g, "members")) {
        // Never heard from: no node id, role or space yet. Down: its load figures are stale.
        bool heard = get_bool(m, "heard", true);
        bool live = heard && get_bool(m, "up");
        uint64_t node = get_u64(m, "node_id");
        auto rate = [&](const char* key, double scale, int decimals) {
          return live ? figure(get_f64(m, key, kUnknown) * scale, decimals) : std::string("-");
        };
        uint64_t free = get_u64(m, "free_bytes"), used = get_u64(m, "used_bytes");
        bool known = heard && has_number(m, "free_bytes");
        rows.push_back({gid, heard && node ? fmt::format("{}", node) : "-", or_dash(printable(get_str(m, "address"))),
                        heard ? or_dash(printable(get_str(m, "role"))) : "-", get_bool(m, "up") ? "up" : "DOWN",
                        rate("qps", 1, 1), rate("qps_1m", 1, 1),
                        live && has_number(m, "in_flight") ? fmt::format("{}", get_u64(m, "in_flight")) : "-",
                        rate("bytes_in_per_s", 1e-6, 1), rate("bytes_out_per_s", 1e-6, 1),
                        rate("pool_utilization", 100, 0), known ? human_bytes(used) : "-",
                        known ? human_bytes(free) : "-",
                        known && free + used ? figure(100.0 * static_cast<double>(free) / static_cast<double>(free + used), 0)
                                             : std::string("-"),
                        known ? waste(used, get_u64(m, "live_bytes")) : "-"});
      }
    }
    out += format_table(rows, {true, true, false, false, false, true, true, true, true, true, true, true, true, true, true},
                        "");
  }

  // The hottest slices (the tracker sends them hottest first; sorted again to be sure).
  std::vector<const json*> hot;
  for (const json& h : get_array(status, "hot_slices")) hot.push_back(&h);
  std::stable_sort(hot.begin(), hot.end(),
                   [](const json* a, const json* b) { return get_u64(*a, "reads") > get_u64(*b, "reads"); });
  if (hot.size() > view.hot_slices) hot.resize(view.hot_slices);
  if (hot.empty()) {
    out += "\nhot slices: none read yet\n";
  } else {
    out += "\nhot slices (reads since their node started):\n";
    std::vector<std::vector<std::string>> rows{{"SLICE", "NODE", "READS", "FILE"}};
    for (const json* h : hot) {
      std::string path = printable(get_str(*h, "path"));
      rows.push_back({fmt::format("{}:{}@{}", get_u64(*h, "group"), get_u64(*h, "slot"), get_u64(*h, "gen")),
                      or_dash(printable(get_str(*h, "address"))), fmt::format("{}", get_u64(*h, "reads")),
                      path.empty() ? fmt::format("inode {}", get_u64(*h, "file_id")) : path});
    }
    out += format_table(rows, {false, false, true, false}, "  ");
  }

  // The newest events, newest last as in `admin status`.
  std::vector<const json*> events;
  for (const json& e : get_array(status, "events")) events.push_back(&e);
  std::stable_sort(events.begin(), events.end(), [](const json* a, const json* b) {
    return get_f64(*a, "seconds_ago") > get_f64(*b, "seconds_ago");
  });
  if (events.empty()) {
    out += "\nno recent events\n";
  } else {
    out += "\nrecent events:\n";
    for (size_t i = events.size() - std::min(view.events, events.size()); i < events.size(); ++i)
      out += fmt::format("  {:>7} ago  {}\n", human_age(get_f64(*events[i], "seconds_ago", -1)),
                         printable(get_str(*events[i], "text")));
  }
  return cut_lines(out, view.width);
}

}  // namespace mydfs::cli
