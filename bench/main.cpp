// tracewatch-bench: runs the benchmark suites and prints a summary of each
// figure beside its anchor.
//
//   tracewatch-bench                 every suite
//   tracewatch-bench ids sweep       only the named suites
//   tracewatch-bench --quick         smaller workloads, for a smoke run
//   tracewatch-bench --sweep-traces N   active traces in the sweep suites

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <regex>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "bench.hpp"

namespace tracewatch::bench {

namespace {
std::vector<summary_row>& rows() {
  static std::vector<summary_row> r;
  return r;
}
}  // namespace

void add_summary(summary_row row) { rows().push_back(std::move(row)); }
const std::vector<summary_row>& summary() { return rows(); }

std::vector<suite>& suites() {
  static std::vector<suite> s;
  return s;
}

suite_registration::suite_registration(suite s) { suites().push_back(std::move(s)); }

std::string capture_output(const std::string& command) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return out;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe.get())) out.append(buf.data(), n);
  return out;
}

double run_redis_benchmark_rps(const std::string& command) {
  const std::string out = capture_output(command);
  // The -q output ends with "…: 123456.78 requests per second, p50=…".
  static const std::regex rps(R"(([0-9]+(\.[0-9]+)?) requests per second)");
  std::string last;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), rps); it != std::sregex_iterator();
       ++it) {
    last = (*it)[1];
  }
  if (last.empty()) {
    fmt::print("  redis-benchmark: no result in its output: {}\n", out);
    return 0;
  }
  return std::stod(last);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace tracewatch::bench

int main(int argc, char** argv) {
  using namespace tracewatch::bench;

  // Suite order: the order of the summary table.
  const std::vector<std::string> order = {"ids", "connection", "creates", "sweep", "memory"};
  std::sort(suites().begin(), suites().end(), [&](const suite& a, const suite& b) {
    auto rank = [&](const std::string& name) {
      return std::find(order.begin(), order.end(), name) - order.begin();
    };
    return rank(a.name) < rank(b.name);
  });

  options opts;
  std::vector<std::string> selected;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quick") {
      opts.quick = true;
      opts.sweep_traces = 100'000;
      opts.creates = 50'000;
    } else if (arg == "--sweep-traces" && i + 1 < argc) {
      opts.sweep_traces = std::stoull(argv[++i]);
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("usage: tracewatch-bench [--quick] [--sweep-traces N] [SUITE…]\nsuites:\n");
      for (const auto& s : suites()) fmt::print("  {:<12} {}\n", s.name, s.description);
      return 0;
    } else if (arg.rfind("--", 0) == 0) {
      fmt::print(stderr, "tracewatch-bench: unknown option '{}'; see --help\n", arg);
      return 2;
    } else {
      selected.push_back(arg);
    }
  }
  for (const auto& name : selected) {
    if (std::none_of(suites().begin(), suites().end(),
                     [&](const suite& s) { return s.name == name; })) {
      fmt::print(stderr, "tracewatch-bench: unknown suite '{}'; see --help\n", name);
      return 2;
    }
  }

  int status = 0;
  for (const auto& s : suites()) {
    if (!selected.empty() &&
        std::find(selected.begin(), selected.end(), s.name) == selected.end()) {
      continue;
    }
    fmt::print("\n=== {}: {}\n", s.name, s.description);
    std::fflush(stdout);
    if (s.run(opts) != 0) status = 1;
  }

  fmt::print("\n=== summary\n");
  fmt::print("{:<44} {:>18} {:>30} {:>16} {:>14} {}\n", "work", "tracewatch", "anchor", "ratio",
             "target", "met");
  for (const auto& r : summary()) {
    fmt::print("{:<44} {:>18} {:>30} {:>16} {:>14} {}\n", r.work, r.ours, r.anchor, r.ratio,
               r.target, r.met ? (*r.met ? "yes" : "NO") : "-");
  }
  return status;
}
