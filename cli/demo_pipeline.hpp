// The simulated pipeline of `tracewatch demo`: an ingress that registers
// traces at a fixed rate, and worker coroutines that move each trace through
// RECEIVED -> INFERENCE -> EGRESS and complete it, or drop it midway as a
// crashed worker would.
//
// Executor: everything runs on the executor given to the constructor, which
// must be the registry client's executor on a single-threaded io_context.
// The tally is written on it, so read it only from that thread.

#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>

#include "demo_progress.hpp"
#include "demo_settings.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/registry.hpp"

namespace tracewatch::cli {

class demo_pipeline {
 public:
  // `reg` and `tally` must outlive the pipeline and every coroutine it runs.
  // Failed Redis requests are logged to `log` as warnings.
  demo_pipeline(asio::any_io_executor executor, registry& reg, const demo_settings& settings,
                demo_tally& tally, std::uint64_t seed, logger log);

  // Starts settings.workers worker coroutines that take traces from the
  // queue until async_close_queue() or stop().
  void start_workers();

  // Registers traces at settings.rate until `until` or stop(), and queues
  // each for the workers. When the workers fall behind and the queue is full,
  // ingress waits, so fewer traces are created than --rate requests.
  asio::awaitable<void> async_run_ingress(std::chrono::steady_clock::time_point until);

  // Queues one end marker per worker: each worker exits once the traces
  // queued before it are done.
  asio::awaitable<void> async_close_queue();

  // Workers that have not exited yet.
  std::uint32_t running_workers() const noexcept { return running_workers_; }

  // Ends ingress at once and makes every worker exit after its current
  // request; traces still queued or mid-flight stay in flight.
  void stop();

 private:
  using queue_type = asio::experimental::channel<void(boost::system::error_code, std::string)>;

  asio::awaitable<void> async_work();
  // Moves one trace through the pipeline and records its outcome.
  asio::awaitable<void> async_process(const std::string& id);
  // Sleeps a random fraction of settings.max_stage_ms. Returns false when
  // stop() was called meanwhile.
  asio::awaitable<bool> async_pause(asio::steady_timer& timer);
  double draw() { return uniform_(random_); }
  // Records `id` as lost after the move to `state` failed with `e`.
  void lose(const std::string& id, std::string_view state, const error& e);

  asio::any_io_executor executor_;
  registry& registry_;
  demo_settings settings_;
  demo_tally& tally_;
  logger log_;
  std::mt19937_64 random_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  queue_type queue_;
  asio::steady_timer ingress_timer_;
  std::uint32_t running_workers_ = 0;
  bool stopping_ = false;
};

}  // namespace tracewatch::cli
