// Pieces every daemon shares: the data-directory lock and the process figures of /status and
// /metrics.
#pragma once
#include <functional>
#include <string>

#include <boost/asio/signal_set.hpp>

#include "common/metrics.h"
#include "common/result.h"

namespace mydfs {

// Creates dir if needed and takes an exclusive lock on dir/LOCK for the life of the process.
Status lock_data_dir(const std::string& dir);

// SIGTERM and SIGINT log "signal N: stopping" and call stop (on the signal set's executor).
void on_stop_signals(boost::asio::signal_set& signals, std::function<void()> stop);

// Registers process gauges (RSS, CPU seconds, threads, open files, uptime) on m.
void register_process_metrics(Metrics& m);

}  // namespace mydfs
