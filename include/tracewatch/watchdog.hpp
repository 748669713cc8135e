// The watchdog: keeps the fleet-wide leader lease and, while it holds it,
// sweeps on an interval with a little jitter. It runs as two tasks under a
// supervisor, which restarts a failed task with backoff.
//
// Safety never depends on the lease: every sweep decision is an atomic
// script, so two sweepers at once only waste work. The lease keeps that
// rare. Every script call of the sweep (one per batch) is sent only while
// the lease is held on the local steady clock. So a leader paused past its
// lease (SIGSTOP, a long GC-like stall) stops sweeping before its next
// write, and so does one whose sweep requests waited in the queue while
// Redis was down.
//
// Example (the daemon's core):
//   supervisor sup(io.get_executor(), log);
//   watchdog dog(conn, registry_opts, watchdog_opts, log, &metrics);
//   dog.run_under(sup);
//   sup.stop_on_signals();
//   co_await sup.async_wait_stopped();
//   co_await dog.async_shutdown();  // releases the lease

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tracewatch/layout.hpp"
#include "tracewatch/lease.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/metrics.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/supervisor.hpp"
#include "tracewatch/sweeper.hpp"

namespace tracewatch {

struct watchdog_options {
  std::chrono::milliseconds interval{std::chrono::seconds(300)};  // between sweeps
  // Each wait is interval * (1 + u * jitter) with u uniform in [0, 1), so
  // that restarted fleets do not sweep in lockstep.
  double interval_jitter = 0.1;
  sweep_options sweep;
  lease_options lease;  // lease.prefix is set from the registry options
};

// Checks the options: an interval of at least 10 ms, jitter in [0, 1], and
// the sweep and lease options.
result<void> validate(const watchdog_options& options);

class watchdog {
 public:
  // `client` and `metrics` (when given) must outlive the watchdog. Throws
  // std::invalid_argument when the options are invalid.
  watchdog(redis::client& client, registry_options registry, watchdog_options options,
           logger log = {}, metrics_registry* metrics = nullptr);
  ~watchdog();

  // Starts the tasks "lease" and "sweep" under `sup`. Both end when the
  // supervisor stops; a sweep in progress finishes its current batch.
  // REQUIRES: called once, on the client's executor.
  void run_under(supervisor& sup);

  // Releases the lease (compare-and-DEL) after the tasks ended.
  asio::awaitable<void> async_shutdown();

  bool is_leader() const noexcept;
  std::uint64_t sweeps_completed() const noexcept { return sweeps_; }

 private:
  struct metric_set;
  class lease_guarded_client;

  asio::awaitable<void> async_sweep_loop(supervisor& sup);
  asio::awaitable<void> async_lease_loop(supervisor& sup);
  std::chrono::milliseconds next_wait();

  redis::client& client_;
  watchdog_options options_;
  logger log_;
  leader_lease lease_;
  // The client the sweeper writes through; declared before sweeper_, which
  // keeps a reference to it.
  std::unique_ptr<lease_guarded_client> guarded_client_;
  sweeper sweeper_;
  std::unique_ptr<metric_set> metrics_;
  // Cancelled when this instance is elected, so the first sweep of a new
  // leader starts at once instead of one interval later.
  std::unique_ptr<asio::steady_timer> wake_;
  std::uint64_t sweeps_ = 0;
  std::uint64_t jitter_state_;
};

}  // namespace tracewatch
