#include "tracewatch/supervisor.hpp"

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "tracewatch/metrics.hpp"
#include "support/test_support.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using testing::run_coro;

// Records every log line, for assertions on events and their fields.
class log_capture {
 public:
  struct entry {
    log_level level;
    std::string component;
    std::string event;
    std::map<std::string, std::string> fields;
  };

  logger make_logger() {
    return logger(
        [this](const log_record& r) {
          entry e{r.level, std::string(r.component), std::string(r.event), {}};
          for (const auto& f : r.fields) e.fields[std::string(f.key)] = f.value;
          std::lock_guard lock(mutex_);
          entries_.push_back(std::move(e));
        },
        log_level::debug);
  }

  std::vector<entry> events(std::string_view name) {
    std::lock_guard lock(mutex_);
    std::vector<entry> found;
    for (const auto& e : entries_) {
      if (e.event == name) found.push_back(e);
    }
    return found;
  }

 private:
  std::mutex mutex_;
  std::vector<entry> entries_;
};

// Short delays keep the tests fast; no test asserts on elapsed time.
supervisor_options fast_options() {
  supervisor_options options;
  options.restart.initial_delay = 2ms;
  options.restart.max_delay = 64ms;
  options.restart.healthy_after = 1h;
  options.stop_timeout = 60s;
  return options;
}

// Polls until `condition` holds; the run_coro hang guard bounds the wait.
template <class Condition>
asio::awaitable<void> wait_until(Condition condition) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!condition()) {
    timer.expires_after(1ms);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// --- restart_backoff -----------------------------------------------------------

TEST(RestartBackoff, DelaysGrowUntilCap) {
  restart_backoff backoff({.initial_delay = 100ms, .max_delay = 1s, .healthy_after = 1min});
  std::vector<std::chrono::milliseconds> lowest;
  for (int i = 0; i < 6; ++i) lowest.push_back(backoff.next_delay(1ms, 0.0));
  EXPECT_EQ(lowest, (std::vector<std::chrono::milliseconds>{50ms, 100ms, 200ms, 400ms, 500ms, 500ms}));
}

TEST(RestartBackoff, JitterStaysInUpperHalf) {
  restart_backoff backoff({.initial_delay = 100ms, .max_delay = 1s, .healthy_after = 1min});
  EXPECT_EQ(backoff.next_delay(1ms, 0.999999), 99ms);
  EXPECT_EQ(backoff.next_delay(1ms, 0.5), 150ms);
  EXPECT_EQ(backoff.next_delay(1ms, 1.0), 399ms);  // out of range: clamped below the ceiling
}

TEST(RestartBackoff, EachDelayExceedsThePreviousUntilCap) {
  restart_backoff backoff({.initial_delay = 3ms, .max_delay = 10s, .healthy_after = 1min});
  // Worst case for growth: the previous delay at its maximum, the next at its minimum.
  auto previous = backoff.next_delay(1ms, 0.999999);
  for (int i = 0; i < 10; ++i) {
    restart_backoff low = backoff;
    const auto next_low = low.next_delay(1ms, 0.0);
    EXPECT_GT(next_low, previous) << "failure " << i + 1;
    previous = backoff.next_delay(1ms, 0.999999);
  }
}

TEST(RestartBackoff, HealthyRunResets) {
  restart_backoff backoff({.initial_delay = 100ms, .max_delay = 1s, .healthy_after = 1min});
  backoff.next_delay(1ms, 0.0);
  backoff.next_delay(1ms, 0.0);
  EXPECT_EQ(backoff.consecutive_failures(), 2u);
  EXPECT_EQ(backoff.next_delay(1min, 0.0), 50ms);
  EXPECT_EQ(backoff.consecutive_failures(), 1u);
}

// --- supervisor ------------------------------------------------------------------

TEST(Supervisor, RestartsFailingTaskWithGrowingDelays) {
  asio::io_context io;
  log_capture logs;
  metrics_registry registry;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options(), &registry);

  int attempts = 0;
  sup.spawn("flaky", [&]() -> asio::awaitable<void> {
    ++attempts;
    if (attempts <= 2) throw std::runtime_error("boom " + std::to_string(attempts));
    co_await sup.async_wait_stop_requested();  // the third run is healthy
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return attempts == 3; });
    sup.stop();
    co_await sup.async_wait_stopped();
  });

  EXPECT_EQ(attempts, 3);
  const auto failures = logs.events("task_failed");
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].component, "supervisor");
  EXPECT_EQ(failures[0].level, log_level::warn);
  EXPECT_EQ(failures[0].fields.at("task"), "flaky");
  EXPECT_EQ(failures[0].fields.at("error"), "boom 1");
  EXPECT_EQ(failures[1].fields.at("error"), "boom 2");
  EXPECT_LT(std::stoi(failures[0].fields.at("restart_in_ms")),
            std::stoi(failures[1].fields.at("restart_in_ms")));
  EXPECT_EQ(registry.add_counter_family("tracewatch_task_restarts_total",
                                        "Restarts of supervised tasks after a failure.", {"task"})
                .with({"flaky"})
                .value(),
            2u);
}

TEST(Supervisor, RestartsTaskThatReturns) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());

  int attempts = 0;
  sup.spawn("quitter", [&]() -> asio::awaitable<void> {
    ++attempts;
    if (attempts == 1) co_return;
    co_await sup.async_wait_stop_requested();
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return attempts == 2; });
    sup.stop();
    co_await sup.async_wait_stopped();
  });

  const auto failures = logs.events("task_failed");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].fields.at("error"), "the task returned before a stop was requested");
}

TEST(Supervisor, StopLetsCurrentUnitFinish) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());

  // One unit of work waits on `gate`, which the test opens after stop().
  asio::steady_timer gate(io, asio::steady_timer::time_point::max());
  int units_started = 0;
  int units_finished = 0;
  bool task_returned = false;
  sup.spawn("worker", [&]() -> asio::awaitable<void> {
    while (!sup.stopping()) {
      ++units_started;
      boost::system::error_code ec;
      co_await gate.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      ++units_finished;
    }
    task_returned = true;
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return units_started == 1; });
    sup.stop();
    co_await wait_until([&] { return !logs.events("stop_requested").empty(); });
    EXPECT_EQ(units_finished, 0);  // the unit is still running: stop() did not interrupt it
    gate.cancel();
    co_await sup.async_wait_stopped();
  });

  EXPECT_EQ(units_started, 1);
  EXPECT_EQ(units_finished, 1);
  EXPECT_TRUE(task_returned);
  EXPECT_TRUE(logs.events("stop_timeout_passed").empty());
}

TEST(Supervisor, StopTimeoutCancelsStuckTask) {
  asio::io_context io;
  log_capture logs;
  auto options = fast_options();
  options.stop_timeout = 5ms;
  supervisor sup(io.get_executor(), logs.make_logger(), options);

  bool started = false;
  bool saw_cancellation = false;
  sup.spawn("stuck", [&]() -> asio::awaitable<void> {
    started = true;
    asio::steady_timer forever(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    try {
      co_await forever.async_wait(asio::use_awaitable);  // ignores stop()
    } catch (const boost::system::system_error& e) {
      saw_cancellation = e.code() == asio::error::operation_aborted;
      throw;
    }
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return started; });
    sup.stop();
    co_await sup.async_wait_stopped();
  });

  EXPECT_TRUE(saw_cancellation);
  const auto timeouts = logs.events("stop_timeout_passed");
  ASSERT_EQ(timeouts.size(), 1u);
  EXPECT_EQ(timeouts[0].fields.at("tasks"), "stuck");
  EXPECT_TRUE(logs.events("task_failed").empty());
}

TEST(Supervisor, CancelStopsAtOnce) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());  // 60 s stop timeout

  bool started = false;
  sup.spawn("stuck", [&]() -> asio::awaitable<void> {
    started = true;
    asio::steady_timer forever(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    co_await forever.async_wait(asio::use_awaitable);
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return started; });
    sup.cancel();
    co_await sup.async_wait_stopped();
  });

  EXPECT_TRUE(sup.stopping());
  EXPECT_EQ(logs.events("task_stopped").size(), 1u);
}

TEST(Supervisor, SleepEndsEarlyOnStop) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());

  std::vector<bool> sleep_results;
  sup.spawn("sleeper", [&]() -> asio::awaitable<void> {
    sleep_results.push_back(co_await sup.async_sleep(1ms));
    sleep_results.push_back(co_await sup.async_sleep(1h));
    sleep_results.push_back(co_await sup.async_sleep(1h));  // after the stop: no wait
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return sleep_results.size() == 1; });
    sup.stop();
    co_await sup.async_wait_stopped();
  });

  EXPECT_EQ(sleep_results, (std::vector<bool>{true, false, false}));
}

// The watchdog races its work against the stop request with ||, which
// cancels the stop wait every time the work wins.
TEST(Supervisor, StopWaitCancelledByOrOperator) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());

  int rounds = 0;
  sup.spawn("racer", [&]() -> asio::awaitable<void> {
    asio::steady_timer tick(co_await asio::this_coro::executor);
    while (!sup.stopping()) {
      tick.expires_after(100us);
      co_await (tick.async_wait(asio::use_awaitable) || sup.async_wait_stop_requested());
      ++rounds;
    }
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return rounds >= 20; });
    sup.stop();
    co_await sup.async_wait_stopped();
  });

  EXPECT_TRUE(logs.events("task_failed").empty());
  EXPECT_EQ(logs.events("task_stopped").size(), 1u);
}

TEST(Supervisor, StopWithoutTasksCompletes) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());
  sup.stop();
  run_coro(io, [&]() -> asio::awaitable<void> { co_await sup.async_wait_stopped(); });
  EXPECT_EQ(logs.events("stopped").size(), 1u);
}

TEST(Supervisor, SpawnAfterStopIsIgnored) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());
  sup.stop();
  bool ran = false;
  sup.spawn("late", [&]() -> asio::awaitable<void> {
    ran = true;
    co_return;
  });
  run_coro(io, [&]() -> asio::awaitable<void> { co_await sup.async_wait_stopped(); });
  EXPECT_FALSE(ran);
  EXPECT_EQ(logs.events("task_not_started").size(), 1u);
}

TEST(Supervisor, SigtermStopsTasks) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());
  sup.stop_on_signals();

  bool started = false;
  sup.spawn("worker", [&]() -> asio::awaitable<void> {
    started = true;
    co_await sup.async_wait_stop_requested();
  });

  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return started; });
    std::raise(SIGTERM);
    co_await sup.async_wait_stopped();
  });

  const auto signals = logs.events("signal_received");
  ASSERT_EQ(signals.size(), 1u);
  EXPECT_EQ(signals[0].fields.at("signal"), "SIGTERM");
  EXPECT_TRUE(sup.stopping());
  // The signal wait ended with the tasks, so run() runs out of work; the
  // limit only guards against a hang.
  io.run_for(std::chrono::seconds(30));
  EXPECT_TRUE(io.stopped());
}

// Tasks run on a two-thread pool while another thread calls stop().
TEST(SupervisorConcurrency, StopFromAnotherThread) {
  asio::io_context io;
  log_capture logs;
  supervisor sup(io.get_executor(), logs.make_logger(), fast_options());

  std::atomic<int> rounds{0};
  for (int i = 0; i < 4; ++i) {
    sup.spawn("worker" + std::to_string(i), [&]() -> asio::awaitable<void> {
      while (co_await sup.async_sleep(100us)) ++rounds;
    });
  }

  std::thread a([&] { io.run(); });
  std::thread b([&] { io.run(); });
  while (rounds.load() < 20) std::this_thread::yield();
  sup.stop();
  a.join();  // run() returns once every task ended and nothing is pending
  b.join();

  EXPECT_EQ(logs.events("task_stopped").size(), 4u);
  EXPECT_EQ(logs.events("stopped").size(), 1u);
}

}  // namespace
}  // namespace tracewatch
