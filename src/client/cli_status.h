// Text rendering of the tracker's CLUSTER_STATUS document for `mydfs admin status`.
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

// 1234 -> "1.2 KiB"; below 1 KiB plain bytes ("512 B").
std::string human_bytes(uint64_t bytes);

// Seconds as a short age: "0.4s", "59.9s", "5m03s", "2h07m", "3d04h".
std::string human_age(double seconds);

}  // namespace mydfs::cli
