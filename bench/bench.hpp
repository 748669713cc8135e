// The benchmark program's shared parts: suites that register themselves,
// a summary table of results beside their anchors, and small helpers.
//
// Every suite measures tracewatch and its anchor in the same run on the same
// machine, so the ratio does not depend on how fast the machine is.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace tracewatch::bench {

struct options {
  bool quick = false;                     // smaller workloads, for a smoke run
  std::uint64_t sweep_traces = 1'000'000;  // active traces in the sweep suites
  std::uint64_t creates = 200'000;         // creates per side in the create suite
};

// One line of the final summary.
struct summary_row {
  std::string work;    // what was measured
  std::string ours;    // tracewatch's figure, with its unit
  std::string anchor;  // the anchor's figure and what it is
  std::string ratio;   // how tracewatch compares, in the direction of the target
  std::string target;  // the target, in the same terms
  std::optional<bool> met;  // empty when there is no target
};

void add_summary(summary_row row);
const std::vector<summary_row>& summary();

struct suite {
  std::string name;
  std::string description;
  std::function<int(const options&)> run;  // returns 0, or 1 when the suite could not run
};

struct suite_registration {
  explicit suite_registration(suite s);
};
std::vector<suite>& suites();

// Runs a shell command and returns its standard output; empty on failure.
std::string capture_output(const std::string& command);

// Runs a redis-benchmark command line given with -q and returns its
// requests per second; prints its output and returns 0 when it has no result.
double run_redis_benchmark_rps(const std::string& command);

// Seconds since `start` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace tracewatch::bench
