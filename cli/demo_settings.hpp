// The settings of `tracewatch demo` and the pure decisions behind them: flag
// checks, the derived watchdog timing, which traces a simulated crash
// abandons, and the key prefix of a run against a shared Redis.

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "tracewatch/error.hpp"
#include "tracewatch/watchdog.hpp"

namespace tracewatch::cli {

// The demo's flags, in their command-line units.
struct demo_settings {
  double duration_s = 20;       // --duration-s: seconds of ingress
  double rate = 200;            // --rate: traces created per second
  std::uint32_t workers = 32;   // --workers: concurrent worker coroutines
  double crash_share = 0.05;    // --crash-share: share of traces a worker abandons
  double max_stage_ms = 40;     // --max-stage-ms: maximum pause in one pipeline stage
  double threshold_s = 3;       // --threshold-s: age at which an unfinished trace is orphaned
  double interval_s = 1;        // --interval-s: seconds between sweeps
  double lease_s = 2;           // --lease-s: leader lease
  std::uint32_t watchdogs = 2;  // --watchdogs: 1, or 2 to show that only the leader sweeps
  double drain_timeout_s = 0;   // --drain-timeout-s: 0 means drain_timeout() picks it
  bool keep = false;            // --keep: leave the keys of a run against --redis in place
  bool json = false;            // --json: print the final report as JSON
};

// Checks every flag. Returns errc::invalid_argument naming the flag, its
// value and the accepted range. Two rules join flags: --duration-s times
// --rate may not exceed 10 million traces, because the demo keeps every id
// until the report, and the threshold must exceed the three stage pauses of
// a healthy trace, or the watchdog would reap traces still being worked on.
result<void> validate(const demo_settings& settings);

// The watchdog options the settings name (sweep threshold, interval, lease).
// REQUIRES: validate(settings).
watchdog_options make_watchdog_options(const demo_settings& settings);

// How long the drain phase waits for the abandoned traces to be reaped:
// --drain-timeout-s when set, else twice the expected maximum wait (the
// threshold, one sweep interval with its 10% jitter, and one lease in case
// the leader changes), and at least 10 s.
std::chrono::milliseconds drain_timeout(const demo_settings& settings);

// The stage of the pipeline after which a simulated crash drops a trace.
enum class crash_point : std::uint8_t {
  after_received,   // the trace stays RECEIVED
  after_inference,  // the trace stays INFERENCE
  after_egress,     // the trace stays EGRESS
};

// Decides the fate of one trace from two uniform numbers in [0, 1). The
// worker abandons the trace when `crash_draw` is below `crash_share`, and
// `point_draw` picks the stage, each with the same chance. Returns empty
// when the trace is to be completed.
std::optional<crash_point> plan_crash(double crash_share, double crash_draw,
                                      double point_draw) noexcept;

// Returns "twdemo-" and 12 random lowercase hex digits: a key prefix that no
// other run and no other application uses, so a run against a shared Redis
// touches only its own keys and can delete them by pattern afterwards.
std::string make_demo_prefix(std::mt19937_64& random);

}  // namespace tracewatch::cli
