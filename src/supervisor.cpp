#include "tracewatch/supervisor.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <exception>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include "tracewatch/metrics.hpp"

namespace tracewatch {

using namespace std::chrono_literals;

// --- restart_backoff -----------------------------------------------------------

std::chrono::milliseconds restart_backoff::next_delay(std::chrono::steady_clock::duration ran_for,
                                                      double unit_random) {
  if (ran_for >= policy_.healthy_after) failures_ = 0;

  // Double the ceiling once per earlier failure, stopping at the cap so that
  // the multiplication cannot overflow.
  auto ceiling = std::max(policy_.initial_delay, 1ms);
  for (unsigned i = 0; i < failures_ && ceiling < policy_.max_delay; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, std::max(policy_.max_delay, 1ms));
  ++failures_;

  // Equal jitter: the upper half of [0, ceiling). Integer milliseconds keep
  // each delay below the next one's lower bound (ceiling - half).
  const auto half = ceiling / 2;
  const double r = std::clamp(unit_random, 0.0, 1.0);
  auto spread = std::chrono::milliseconds(static_cast<std::int64_t>(r * static_cast<double>(half.count())));
  if (half.count() > 0 && spread >= half) spread = half - 1ms;
  return ceiling - half + spread;
}

// --- supervisor state --------------------------------------------------------

namespace {

using strand_type = asio::strand<asio::any_io_executor>;
using clock = std::chrono::steady_clock;

std::string_view signal_name(int number) {
  switch (number) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "signal";
  }
}

std::string describe_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

}  // namespace

struct detail::supervisor_state {
  struct task {
    std::string name;
    supervisor::task_factory factory;
    asio::cancellation_signal cancel_signal;
    bool running = true;
    counter* restarts = nullptr;
  };

  supervisor_state(asio::any_io_executor executor, logger l, supervisor_options o, metrics_registry* m)
      : strand(asio::make_strand(executor)),
        log(std::move(l)),
        options(o),
        random(std::random_device{}()) {
    if (m != nullptr) {
      restarts = &m->add_counter_family("tracewatch_task_restarts_total",
                                        "Restarts of supervised tasks after a failure.", {"task"});
    }
  }

  // Everything below `stop_requested` is touched on the strand only.
  strand_type strand;
  logger log;
  supervisor_options options;
  counter_family* restarts = nullptr;
  std::atomic<bool> stop_requested{false};

  std::mt19937_64 random;
  std::vector<std::shared_ptr<task>> tasks;
  std::size_t running = 0;
  bool stop_started = false;  // stop handling ran on the strand
  bool stopped = false;       // stop requested and every task ended
  std::set<asio::steady_timer*> sleepers;         // woken by a stop request
  std::set<asio::steady_timer*> stopped_waiters;  // woken when every task ended
  std::optional<asio::steady_timer> deadline;
  std::shared_ptr<asio::signal_set> signals;
  int signals_received = 0;
};

// The helpers below are members in all but name: each runs on the strand.
namespace {

using state = detail::supervisor_state;

void wake(std::set<asio::steady_timer*>& timers) {
  for (asio::steady_timer* timer : timers) timer->cancel();
}

// Waits on the strand until `timer` expires or is cancelled through `set`.
asio::awaitable<void> wait_registered(std::set<asio::steady_timer*>& set, asio::steady_timer& timer) {
  set.insert(&timer);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  set.erase(&timer);
}

void finish_if_done(const std::shared_ptr<state>& st) {
  if (!st->stop_requested || st->running > 0 || st->stopped) return;
  st->stopped = true;
  if (st->deadline) st->deadline->cancel();
  if (st->signals) {
    // Restore the default actions and end wait_for_signals().
    boost::system::error_code ignored;
    st->signals->clear(ignored);
    st->signals->cancel(ignored);
  }
  wake(st->stopped_waiters);
  st->log.info("stopped", {{"tasks", st->tasks.size()}});
}

void cancel_running(const std::shared_ptr<state>& st) {
  for (const auto& t : st->tasks) {
    if (t->running) t->cancel_signal.emit(asio::cancellation_type::terminal);
  }
}

std::string running_task_names(const state& st) {
  std::string names;
  for (const auto& t : st.tasks) {
    if (!t->running) continue;
    if (!names.empty()) names += ',';
    names += t->name;
  }
  return names;
}

asio::awaitable<bool> sleep_on_strand(std::shared_ptr<state> st, clock::duration duration) {
  if (st->stop_requested) co_return false;
  asio::steady_timer timer(st->strand);
  if (duration >= clock::time_point::max() - clock::now()) {
    timer.expires_at(clock::time_point::max());
  } else {
    timer.expires_after(duration);
  }
  co_await wait_registered(st->sleepers, timer);
  const auto cancelled = (co_await asio::this_coro::cancellation_state).cancelled();
  co_return !st->stop_requested && cancelled == asio::cancellation_type::none;
}

asio::awaitable<void> wait_stopped_on_strand(std::shared_ptr<state> st) {
  if (st->stopped) co_return;
  asio::steady_timer timer(st->strand, clock::time_point::max());
  co_await wait_registered(st->stopped_waiters, timer);
  if (!st->stopped) {
    throw boost::system::system_error(asio::error::operation_aborted, "supervisor::async_wait_stopped");
  }
}

// Runs one task until a stop request: call, await, and on an unexpected end
// log it and restart after the backoff.
asio::awaitable<void> run_task(std::shared_ptr<state> st, std::shared_ptr<state::task> t) {
  restart_backoff backoff(st->options.restart);
  unsigned attempt = 0;
  while (!st->stop_requested) {
    ++attempt;
    st->log.debug("task_started", {{"task", t->name}, {"attempt", attempt}});
    const auto started = clock::now();
    std::string failure;
    try {
      co_await t->factory();
      failure = "the task returned before a stop was requested";
    } catch (...) {
      failure = describe_current_exception();
    }

    // An end during a stop is the expected one, whatever its cause.
    if (st->stop_requested) break;

    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const auto delay = backoff.next_delay(clock::now() - started, unit(st->random));
    st->log.warn("task_failed",
                 {{"task", t->name}, {"error", failure}, {"restart_in_ms", delay.count()}});
    if (t->restarts != nullptr) t->restarts->inc();
    if (!co_await sleep_on_strand(st, delay)) break;
  }

  t->running = false;
  --st->running;
  st->log.info("task_stopped", {{"task", t->name}});
  finish_if_done(st);
}

void spawn_on_strand(const std::shared_ptr<state>& st, std::string name, supervisor::task_factory factory) {
  if (st->stop_requested) {
    st->log.warn("task_not_started", {{"task", name}, {"reason", "stop already requested"}});
    return;
  }
  auto t = std::make_shared<state::task>();
  t->name = std::move(name);
  t->factory = std::move(factory);
  if (st->restarts != nullptr) t->restarts = &st->restarts->with({t->name});
  st->tasks.push_back(t);
  ++st->running;
  asio::co_spawn(st->strand, run_task(st, t),
                 asio::bind_cancellation_slot(t->cancel_signal.slot(), asio::detached));
}

// Stop handling on the strand: wake the sleepers, then arm the deadline.
void stop_on_strand(const std::shared_ptr<state>& st) {
  if (st->stop_started) return;
  st->stop_started = true;
  st->log.info("stop_requested", {{"running_tasks", st->running},
                                  {"timeout_ms", st->options.stop_timeout.count()}});
  wake(st->sleepers);
  finish_if_done(st);
  if (st->stopped) return;

  st->deadline.emplace(st->strand, st->options.stop_timeout);
  st->deadline->async_wait([st](boost::system::error_code ec) {
    if (ec || st->stopped) return;
    st->log.warn("stop_timeout_passed",
                 {{"tasks", running_task_names(*st)},
                  {"timeout_ms", st->options.stop_timeout.count()},
                  {"action", "cancelling the tasks that are still running"}});
    cancel_running(st);
  });
}

asio::awaitable<void> wait_for_signals(std::shared_ptr<state> st) {
  while (!st->stopped) {
    boost::system::error_code ec;
    const int number = co_await st->signals->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // cancelled once every task ended

    ++st->signals_received;
    if (st->signals_received == 1) {
      st->log.info("signal_received", {{"signal", signal_name(number)}, {"action", "stop"}});
      st->stop_requested = true;
      stop_on_strand(st);
    } else {
      st->log.warn("signal_received", {{"signal", signal_name(number)}, {"action", "cancel tasks now"}});
      stop_on_strand(st);
      cancel_running(st);
    }
  }
}

}  // namespace

// --- supervisor --------------------------------------------------------------

supervisor::supervisor(asio::any_io_executor executor, logger log, supervisor_options options,
                       metrics_registry* metrics)
    : state_(std::make_shared<state>(std::move(executor), log.with_component("supervisor"), options,
                                     metrics)) {}

supervisor::~supervisor() = default;

void supervisor::spawn(std::string name, task_factory factory) {
  asio::dispatch(state_->strand, [st = state_, name = std::move(name), factory = std::move(factory)]() mutable {
    spawn_on_strand(st, std::move(name), std::move(factory));
  });
}

bool supervisor::stopping() const noexcept { return state_->stop_requested; }

asio::awaitable<bool> supervisor::async_sleep(std::chrono::steady_clock::duration duration) {
  co_return co_await asio::co_spawn(state_->strand, sleep_on_strand(state_, duration), asio::use_awaitable);
}

asio::awaitable<void> supervisor::async_wait_stop_requested() {
  co_await asio::co_spawn(state_->strand, sleep_on_strand(state_, clock::duration::max()),
                          asio::use_awaitable);
}

void supervisor::stop() {
  // Set the flag at once, so that tasks on other threads see it before the
  // strand runs the rest.
  state_->stop_requested = true;
  asio::dispatch(state_->strand, [st = state_] { stop_on_strand(st); });
}

void supervisor::cancel() {
  state_->stop_requested = true;
  asio::dispatch(state_->strand, [st = state_] {
    stop_on_strand(st);
    cancel_running(st);
  });
}

asio::awaitable<void> supervisor::async_wait_stopped() {
  co_await asio::co_spawn(state_->strand, wait_stopped_on_strand(state_), asio::use_awaitable);
}

void supervisor::stop_on_signals() {
  // Install the handlers now, so that a signal that arrives before the
  // executor runs is not fatal; asio delivers it once the strand waits.
  auto signals = std::make_shared<asio::signal_set>(state_->strand, SIGTERM, SIGINT);
  asio::dispatch(state_->strand, [st = state_, signals = std::move(signals)]() mutable {
    if (st->signals || st->stopped) return;
    st->signals = std::move(signals);
    asio::co_spawn(st->strand, wait_for_signals(st), asio::detached);
  });
}

}  // namespace tracewatch
