#include "demo_pipeline.hpp"

#include <cmath>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tracewatch/trace_id.hpp"

namespace tracewatch::cli {
namespace {

// Queued traces before ingress waits for the workers: about 20 s of
// traces at the default rate of 200 per second.
constexpr std::size_t kQueueCapacity = 4096;

// The metadata every demo trace carries, so that its keys explain themselves
// when someone inspects them with redis-cli.
const metadata& demo_metadata() {
  static const metadata fields = {{"source", "tracewatch-demo"}, {"route", "/v1/generate"}};
  return fields;
}

}  // namespace

demo_pipeline::demo_pipeline(asio::any_io_executor executor, registry& reg,
                             const demo_settings& settings, demo_tally& tally, std::uint64_t seed,
                             logger log)
    : executor_(executor),
      registry_(reg),
      settings_(settings),
      tally_(tally),
      log_(log.with_component("demo")),
      random_(seed),
      queue_(executor, kQueueCapacity),
      ingress_timer_(executor) {}

void demo_pipeline::start_workers() {
  for (std::uint32_t i = 0; i < settings_.workers; ++i) {
    ++running_workers_;
    asio::co_spawn(executor_, async_work(), [this](const std::exception_ptr& failure) {
      --running_workers_;
      // The workers handle every Redis error themselves; anything else
      // (such as std::bad_alloc) is a bug to surface, not to swallow.
      if (failure) std::rethrow_exception(failure);
    });
  }
}

asio::awaitable<void> demo_pipeline::async_run_ingress(
    std::chrono::steady_clock::time_point until) {
  using clock = std::chrono::steady_clock;
  const auto period = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(1.0 / settings_.rate));
  const auto start = clock::now();

  for (std::uint64_t n = 0; !stopping_; ++n) {
    // Trace n is due at start + n * period. When ingress runs late, the
    // overdue traces are created back to back until it has caught up.
    // Ingress also ends at `until` when it is behind, for example because
    // each create waits for a Redis that went away.
    const auto due = start + period * static_cast<clock::rep>(n);
    if (due >= until || clock::now() >= until) break;
    if (due > clock::now()) {
      ingress_timer_.expires_at(due);
      boost::system::error_code ec;
      co_await ingress_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping_) break;
    }

    std::string id = generate_trace_id();
    auto created = co_await registry_.async_create(id, "RECEIVED", demo_metadata());
    if (!created) {
      ++tally_.create_failed;
      log_.warn("trace_create_failed", {{"trace_id", id}, {"error", created.error().what()}});
      continue;
    }
    ++tally_.created;

    boost::system::error_code ec;
    co_await queue_.async_send(boost::system::error_code{}, id,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // stop() cancelled the send: the trace stays in flight.
      break;
    }
  }
}

asio::awaitable<void> demo_pipeline::async_close_queue() {
  for (std::uint32_t i = 0; i < settings_.workers && !stopping_; ++i) {
    boost::system::error_code ec;
    co_await queue_.async_send(boost::system::error_code{}, std::string(),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

void demo_pipeline::stop() {
  stopping_ = true;
  ingress_timer_.cancel();
  queue_.cancel();
  queue_.close();
}

asio::awaitable<void> demo_pipeline::async_work() {
  while (!stopping_) {
    boost::system::error_code ec;
    std::string id = co_await queue_.async_receive(asio::redirect_error(asio::use_awaitable, ec));
    // An empty id is the end marker of async_close_queue(); an error means
    // stop() closed the queue.
    if (ec || id.empty()) break;
    co_await async_process(id);
  }
}

asio::awaitable<void> demo_pipeline::async_process(const std::string& id) {
  asio::steady_timer timer(executor_);
  const std::optional<crash_point> crash = plan_crash(settings_.crash_share, draw(), draw());

  // RECEIVED -> INFERENCE -> EGRESS, with a pause in each stage. A simulated
  // crash drops the trace after the pause of its stage, leaving it unfinished.
  static constexpr struct {
    crash_point crash_after;
    const char* next_state;  // nullptr: complete the trace
  } kStages[] = {
      {crash_point::after_received, "INFERENCE"},
      {crash_point::after_inference, "EGRESS"},
      {crash_point::after_egress, nullptr},
  };
  for (const auto& stage : kStages) {
    if (!co_await async_pause(timer)) co_return;
    if (crash == stage.crash_after) {
      tally_.on_abandoned(id);
      co_return;
    }
    if (stage.next_state != nullptr) {
      auto advanced = co_await registry_.async_advance(id, stage.next_state);
      if (!advanced) {
        // already_terminal means the watchdog reaped the trace while this
        // worker was slow; the later complete() reports it as late.
        if (advanced.error() == errc::already_terminal) continue;
        lose(id, stage.next_state, advanced.error());
        co_return;
      }
    }
  }

  auto finished = co_await registry_.async_complete(id);
  if (!finished) {
    lose(id, "COMPLETED", finished.error());
  } else if (finished->applied) {
    tally_.completed.push_back(id);
  } else {
    tally_.late.push_back(id);
  }
}

void demo_pipeline::lose(const std::string& id, std::string_view state, const error& e) {
  tally_.lost.push_back(id);
  log_.warn(
      "trace_lost",
      {{"trace_id", id},
       {"to_state", state},
       {"error", e.what()},
       {"remedy", "check that Redis is reachable; the watchdog reaps the trace if it is stored"}});
}

asio::awaitable<bool> demo_pipeline::async_pause(asio::steady_timer& timer) {
  const auto pause = std::chrono::duration<double, std::milli>(draw() * settings_.max_stage_ms);
  timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(pause));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return !stopping_;
}

}  // namespace tracewatch::cli
