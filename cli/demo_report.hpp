// The closing report of `tracewatch demo`: the stored state of every trace
// the demo created, read back with plain commands, and the checks that
// compare it with what the workers and the watchdogs did.

#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "demo_progress.hpp"
#include "demo_settings.hpp"
#include "tracewatch/error.hpp"
#include "tracewatch/registry.hpp"

namespace tracewatch::cli {

// One trace as stored in Redis.
struct trace_observation {
  bool exists = false;  // the trace hash exists
  std::string state;
  std::string error;
  bool in_index = false;
};

// The stored state after the run.
struct demo_observations {
  // Every id in the tally's outcome lists.
  std::unordered_map<std::string, trace_observation> traces;
  // The distinct ids in the index, and those among them whose state is
  // COMPLETED or ERRORED, with that state.
  std::uint64_t index_entries = 0;
  std::vector<std::pair<std::string, std::string>> finished_in_index;
};

// Reads the state, the error field and the index membership of every id in
// the tally, and walks the whole index, with pipelined HMGET, SISMEMBER or
// ZSCORE, and SSCAN or ZSCAN requests. Returns the first Redis error.
asio::awaitable<result<demo_observations>> async_observe(redis::client& client, registry& reg,
                                                         const demo_tally& tally);

// One line of the report.
struct demo_check {
  std::string title;
  bool passed = false;
  std::string detail;  // the numbers behind the verdict, and examples when it failed
};

// Compares the tally with Redis:
//   1. every abandoned trace was reaped: ERRORED, error=orphaned, out of the index;
//   2. no completed trace was marked ERRORED: every trace whose complete()
//      applied is still COMPLETED;
//   3. no finished trace is left in the index;
//   4. the counts add up: every created trace has one outcome, the index is
//      empty, and the watchdogs reported exactly the orphans Redis shows.
std::vector<demo_check> evaluate_checks(const demo_tally& tally, const demo_observations& seen);

// The facts about the run that the report prints beside the checks.
struct demo_run_summary {
  std::string redis;   // "private redis-server (…)" or the URL with the password masked
  std::string prefix;  // the key prefix the run used
  std::string layout;
  std::chrono::duration<double> elapsed{0};
  std::vector<std::pair<std::string, std::uint64_t>> sweeps_by_watchdog;
};

// Prints the counts and one PASS or FAIL line per check. Returns true when
// every check passed.
bool print_report(std::FILE* out, const demo_settings& settings, const demo_run_summary& run,
                  const demo_tally& tally, const std::vector<demo_check>& checks);

// The same report as one JSON object; "passed" is true when every check passed.
boost::json::object report_json(const demo_settings& settings, const demo_run_summary& run,
                                const demo_tally& tally, const std::vector<demo_check>& checks);

}  // namespace tracewatch::cli
