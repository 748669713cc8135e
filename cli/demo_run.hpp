// One run of `tracewatch demo` against a ready Redis: the pipeline, the
// watchdogs, the live status, the drain, the report and the clean-up, all on
// one io_context.
//
// Phases:
//   1. ingress: traces are created at --rate for --duration-s while workers
//      complete most of them and abandon --crash-share of them;
//   2. drain:   ingress stops, the workers finish what is queued, and the
//      run waits until the watchdogs have reaped every abandoned trace (or
//      the drain timeout passes);
//   3. stop:    the watchdogs stop and release the lease;
//   4. report:  Redis is read back and every check printed with PASS or FAIL;
//   5. clean-up: on a shared Redis the run's keys are deleted (unless --keep).
// A first SIGINT or SIGTERM skips to the stop and the clean-up and no report
// is printed; a second one cancels whatever is still waiting.

#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "demo_pipeline.hpp"
#include "demo_progress.hpp"
#include "demo_settings.hpp"
#include "tracewatch/log_format.hpp"
#include "tracewatch/log_rate_limiter.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/supervisor.hpp"
#include "tracewatch/watchdog.hpp"

namespace tracewatch::cli {

// The Redis server of a run and the rules for writing to it.
struct demo_target {
  redis::config config;
  std::string description;  // for the report: "private redis-server (…)" or the masked URL
  std::string intro;        // one line printed before the run starts
  bool shared = false;      // a Redis the user named with --redis: delete the run's keys after
};

// The filter for library log records that the run passes on to stderr. The
// watchdogs' routine records (trace_orphaned, sweep_done) feed the status
// line instead and are passed on only at debug level.
struct demo_log_options {
  log_encoding encoding = log_encoding::logfmt;
  log_level min_level = log_level::info;
};

class demo_run {
 public:
  // Exit code of a run ended by a signal: 128 plus the signal number, as
  // shells report a process killed by it.
  static constexpr int kExitSignalBase = 128;

  // `signals` must be open on `io` for the signals that end the run, and it
  // must outlive the run. A signal that arrived before async_run() starts
  // is still delivered. The caller owns the set so that the signals stay
  // handled until its private Redis is stopped.
  demo_run(asio::io_context& io, asio::signal_set& signals, demo_settings settings,
           registry_options registry, demo_target target, demo_log_options log_options);
  ~demo_run();
  demo_run(const demo_run&) = delete;
  demo_run& operator=(const demo_run&) = delete;

  // Runs every phase and returns the exit code: 0 when every check passed,
  // 1 when a check failed or Redis could not be reached, 128 + the signal
  // number when a signal ended the run. Call once, on `io`.
  asio::awaitable<int> async_run();

 private:
  struct watchdog_instance;

  logger make_logger(std::string instance);
  void route(const std::string& instance, const log_record& record);
  void wait_for_signal();
  void on_signal(int number);
  // Waits until `done()` returns true or `deadline` passes, or with
  // `until_signal` also until a signal arrives. Returns done().
  template <class Done>
  asio::awaitable<bool> async_wait_until(Done done, std::chrono::steady_clock::time_point deadline,
                                         bool until_signal);
  asio::awaitable<void> async_show_progress();
  asio::awaitable<void> async_stop_watchdogs();
  asio::awaitable<int> async_report();
  asio::awaitable<void> async_delete_keys();
  std::string leader_name() const;
  std::vector<std::pair<std::string, std::uint64_t>> sweeps_by_watchdog() const;

  asio::io_context& io_;
  demo_settings settings_;
  registry_options registry_options_;
  demo_target target_;
  demo_log_options log_options_;
  std::FILE* info_out_;  // intro and status lines: stdout, or stderr under --json
  progress_display progress_;
  asio::signal_set& signals_;
  log_rate_limiter limiter_;
  asio::steady_timer wake_;
  asio::steady_timer progress_timer_;

  demo_tally tally_;
  demo_phase phase_ = demo_phase::starting;
  std::chrono::steady_clock::time_point started_;
  int signal_ = 0;       // the first signal received, 0 if none
  bool forced_ = false;  // a second signal arrived

  redis::connection conn_;
  registry registry_;
  demo_pipeline pipeline_;
  std::vector<std::unique_ptr<watchdog_instance>> watchdogs_;
};

}  // namespace tracewatch::cli
