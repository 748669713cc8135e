// The counters of `tracewatch demo` and their display: one status line
// redrawn in place on a terminal, or a plain line every few seconds when the
// output goes to a file or a pipe.

#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tracewatch::cli {

// The outcome of every trace the demo created, and what the watchdogs
// reported. Touched only on the demo's one io_context thread.
struct demo_tally {
  std::uint64_t created = 0;
  std::uint64_t create_failed = 0;  // create requests that failed: no trace exists

  // Each created trace ends in exactly one of these lists.
  std::vector<std::string> completed;  // complete() applied: the trace is COMPLETED
  std::vector<std::string> late;       // complete() not applied: the watchdog failed it first
  std::vector<std::string> abandoned;  // dropped by a simulated worker crash
  std::vector<std::string> lost;       // dropped because a Redis request failed

  // The trace_orphaned events of every watchdog, and the abandoned traces
  // that no such event has named yet.
  std::unordered_set<std::string> reaped;
  std::unordered_set<std::string> awaiting_reap;

  std::uint64_t sweeps = 0;
  std::chrono::duration<double, std::milli> last_sweep{0};

  void on_abandoned(const std::string& id);
  void on_reaped(const std::string& id);

  // Traces created and not yet in one of the outcome lists.
  std::uint64_t in_flight() const noexcept {
    return created - completed.size() - late.size() - abandoned.size() - lost.size();
  }
};

enum class demo_phase : std::uint8_t { starting, ingress, drain, stopping, done };

std::string_view to_string(demo_phase phase) noexcept;

// One status line, without a line feed, such as
//   " 12.3s ingress  created 2460  in flight 14  completed 2330  abandoned 116
//    reaped 98  sweeps 11 (last 0.4 ms)  leader wd-1"      (one line)
// and on an 80-column terminal
//   " 12.3s ingress  completed 2330  abandoned 116  reaped 98  leader wd-1"
// `leader` names the watchdog that has the lease, or "none". When the line
// is longer than `max_width` characters, the least telling parts are left
// out: the last sweep's duration, then the in-flight count, the sweep count
// and the created count. Past that the line is cut at `max_width`.
std::string format_status(std::chrono::duration<double> elapsed, demo_phase phase,
                          const demo_tally& tally, std::string_view leader,
                          std::size_t max_width = std::string::npos);

// Writes status lines to `out`. On a terminal the line is redrawn in place
// and cut to the terminal's width so that it never wraps. Elsewhere the
// caller writes one plain line every kPlainInterval.
class progress_display {
 public:
  static constexpr std::chrono::seconds kPlainInterval{2};
  static constexpr std::chrono::milliseconds kTerminalInterval{200};

  explicit progress_display(std::FILE* out);

  bool is_terminal() const noexcept { return terminal_; }
  // How often show() should be called.
  std::chrono::milliseconds interval() const noexcept;
  // The maximum line length that show() draws without wrapping: the
  // terminal's width less a margin, or std::string::npos off a terminal.
  std::size_t max_width() const;

  // Draws `line`: in place on a terminal, as a new line otherwise. REQUIRES:
  // `line` fits max_width().
  void show(const std::string& line);
  // Erases the status line on a terminal, so that another line (a log
  // record, the report) starts at column 0. Does nothing otherwise.
  void clear();
  // Leaves the last status line on screen and moves to the next line.
  void finish();

 private:
  std::FILE* out_;
  bool terminal_;
  bool drawn_ = false;
};

}  // namespace tracewatch::cli
