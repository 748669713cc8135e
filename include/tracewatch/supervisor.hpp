// A supervisor for the daemon's long-running tasks (the sweeper, the leader
// lease, the metrics server): it restarts a task that fails, and stops all of
// them gracefully on request or on SIGTERM/SIGINT.
//
// A task is a coroutine factory. The supervisor calls it, awaits the coroutine,
// and treats every end before a stop request as a failure: an exception, or a
// plain return. It logs the failure (component `supervisor`, event
// `task_failed`, fields task, error, restart_in_ms) and calls the factory again
// after a capped exponential backoff with jitter. A run that lasted at least
// restart_policy::healthy_after resets the backoff.
//
// Stopping is cooperative first. stop() sets stopping(), wakes every
// async_sleep() and async_wait_stop_requested(), and lets each task finish its
// current unit of work (a sweep batch) and return. Tasks that are still running
// when supervisor_options::stop_timeout has passed get a terminal cancellation:
// their pending asynchronous operation fails with asio::error::operation_aborted.
// async_wait_stopped() completes once every task has ended.
//
// Example (supervisor_test.cpp runs a variant):
//   asio::io_context io;
//   supervisor sup(io.get_executor(), log);
//   sup.spawn("sweeper", [&]() -> asio::awaitable<void> {
//     while (!sup.stopping()) {
//       co_await sweep_one_batch();                        // finishes even during a stop
//       if (!co_await sup.async_sleep(std::chrono::seconds(300))) break;
//     }
//   });
//   sup.stop_on_signals();                                 // SIGTERM or SIGINT calls stop()
//   io.run();                                              // returns once every task ended
//
// Executor: the supervisor runs its tasks and keeps its state on a strand of
// the executor it was given. stop(), cancel() and stopping() may be called
// from any thread; the awaitable members may be awaited from any coroutine.
// spawn() and stop_on_signals() may be called from any thread too, and take
// effect once the executor runs.
//
// Lifetime: the supervisor must outlive its tasks, which usually refer to it.
// Destroying it does not stop them: call stop() and await async_wait_stopped()
// first, or let io_context::run() return.

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "tracewatch/logger.hpp"

namespace tracewatch {

namespace asio = boost::asio;

class metrics_registry;

namespace detail {
struct supervisor_state;
}  // namespace detail

// The delays between restarts of a failing task.
struct restart_policy {
  std::chrono::milliseconds initial_delay{500};   // ceiling of the first delay
  std::chrono::milliseconds max_delay{30'000};     // the ceiling stops doubling here
  std::chrono::milliseconds healthy_after{60'000}; // a run this long resets the backoff
};

// The restart delays of one task as a pure state machine.
//
// The n-th consecutive failure (n = 0, 1, ...) gets a ceiling of
// min(max_delay, initial_delay * 2^n) and a delay drawn uniformly from
// [ceiling/2, ceiling) ("equal jitter"). Restarts of tasks that failed
// together thus spread out, and with an initial_delay of at least 2 ms each
// delay is longer than the one before until the ceiling reaches max_delay.
class restart_backoff {
 public:
  explicit restart_backoff(restart_policy policy) : policy_(policy) {}

  // Returns the delay before the next restart. `ran_for` is how long the run
  // that just failed lasted, and `unit_random` is uniform in [0, 1).
  std::chrono::milliseconds next_delay(std::chrono::steady_clock::duration ran_for,
                                       double unit_random);

  // Failures since the last healthy run.
  unsigned consecutive_failures() const noexcept { return failures_; }

 private:
  restart_policy policy_;
  unsigned failures_ = 0;
};

struct supervisor_options {
  restart_policy restart;
  // How long stop() waits for tasks to return before it cancels them.
  std::chrono::milliseconds stop_timeout{10'000};
};

class supervisor {
 public:
  using task_factory = std::function<asio::awaitable<void>()>;

  // `metrics`, when given, gets the counter tracewatch_task_restarts_total{task}
  // and must outlive the supervisor.
  supervisor(asio::any_io_executor executor, logger log, supervisor_options options = {},
             metrics_registry* metrics = nullptr);
  ~supervisor();
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  // Starts a task named `name` (used in logs and metrics). Ignored, with a
  // warning, once a stop was requested.
  void spawn(std::string name, task_factory factory);

  // True once stop() or cancel() was called. Tasks check it between units of work.
  bool stopping() const noexcept;

  // Waits for `duration`, or less if a stop is requested meanwhile. Returns
  // true if the full duration passed, and false on a stop request (at once
  // when called after one). When the awaiting coroutine is cancelled, returns
  // false or throws boost::system::system_error (operation_aborted).
  asio::awaitable<bool> async_sleep(std::chrono::steady_clock::duration duration);

  // Completes once a stop is requested (at once if it already was), or early
  // when the awaiting coroutine is cancelled, as async_sleep() does. Meant for
  // `co_await (work || sup.async_wait_stop_requested())`.
  asio::awaitable<void> async_wait_stop_requested();

  // Requests a graceful stop; see the file comment. Idempotent.
  void stop();

  // Requests a stop and cancels every task now, without waiting for
  // stop_timeout. A second SIGTERM/SIGINT calls this.
  void cancel();

  // Completes once a stop was requested and every task has ended. Throws
  // boost::system::system_error (operation_aborted) if the awaiting coroutine
  // is cancelled first. A task that ignores cancellation (a blocking call)
  // keeps this pending.
  asio::awaitable<void> async_wait_stopped();

  // Waits for SIGTERM and SIGINT: the first calls stop(), the second cancel().
  // The handlers are installed at once and restored to the default actions
  // once every task has ended.
  void stop_on_signals();

 private:
  std::shared_ptr<detail::supervisor_state> state_;
};

}  // namespace tracewatch
