// Text rendering of the tracker's CLUSTER_STATUS document for `mydfs admin status` and the
// frames of `mydfs admin top`.
//
// The renderer is lenient on purpose: a field the tracker leaves out (older or newer tracker)
// shows as "-" or 0 instead of failing the whole command, so an operator still sees the rest.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace mydfs::cli {

// Events shown at the end of the status report (the most recent ones).
constexpr size_t kStatusEvents = 10;

// The report: a cluster summary line, one block per group (header line + member table), the
// namespace counts, edit log size and indexes, and the last max_events events. status must be
// an object; anything else renders as a report with no groups.
std::string render_status(const nlohmann::ordered_json& status, size_t max_events = kStatusEvents);

// What a frame of `mydfs admin top` shows besides the status document. Rendering is pure: the
// caller fetches the document, formats the time and measures the terminal.
struct TopView {
  std::string tracker;     // the tracker as the user named it
  std::string time;        // when the status was fetched, formatted ("2026-05-01 15:04:05")
  std::string error;       // not empty: the fetch failed; the frame shows this line instead
  size_t hot_slices = 5;   // rows of the hot slice table
  size_t events = 3;       // newest events shown
  size_t width = 0;        // lines are cut to this many columns (a terminal's width); 0: no limit
};

// One frame of `mydfs admin top`: the header line "tracker ADDR at TIME: N inodes, N files;
// members U up, D down; tracker Q qps", one row per storage member group by group (GROUP, NODE,
// ADDRESS, ROLE, STATE, QPS, QPS 1m, IN FLIGHT, IN MB/s, OUT MB/s, POOL %, FREE GiB, FREE %), the
// view.hot_slices most-read slices and the view.events newest events. A figure the tracker leaves
// out shows as "-", and so do the load figures of a member that is down (they are stale). With
// view.error set, the frame is the header "tracker ADDR at TIME" and that line. Control
// characters in names the tracker sends (paths, event texts) print as '?'. Ends with a newline.
std::string render_top(const nlohmann::ordered_json& status, const TopView& view);

// 1234 -> "1.2 KiB"; below 1 KiB plain bytes ("512 B").
std::string human_bytes(uint64_t bytes);

// Seconds as a short age: "0.4s", "59.9s", "5m03s", "2h07m", "3d04h".
std::string human_age(double seconds);

}  // namespace mydfs::cli
