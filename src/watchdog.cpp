#include "tracewatch/watchdog.hpp"

#include <random>
#include <span>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace tracewatch {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

lease_options with_prefix(lease_options lease, const registry_options& registry) {
  lease.prefix = registry.prefix;
  return lease;
}

}  // namespace

// The sweeper's client: it forwards every request, but sends a script (the
// sweep's only writes) only while the lease is held. Otherwise the call
// fails with std::errc::operation_canceled and nothing is sent. The sweeper
// checks its stop predicate between batches, but not before the first
// batch of an SSCAN page or a shard. Without this guard a pass could write
// after the lease was lost, because a pause, or requests queued while Redis
// was down, may fall between the lease check at the start of the pass and
// its first batch.
class watchdog::lease_guarded_client final : public redis::client {
 public:
  lease_guarded_client(redis::client& inner, const leader_lease& lease)
      : inner_(inner), lease_(lease) {}

  asio::awaitable<result<std::vector<redis::reply>>> async_exec(
      const redis::request& req, std::string_view routing_key) override {
    return inner_.async_exec(req, routing_key);
  }

  asio::awaitable<result<redis::reply>> async_eval(
      const redis::script& s, std::span<const std::string_view> keys,
      std::span<const std::string_view> args) override {
    if (!lease_.is_leader()) {
      co_return error(std::make_error_code(std::errc::operation_canceled),
                      "the watchdog lost its lease; the sweep stops");
    }
    co_return co_await inner_.async_eval(s, keys, args);
  }

  bool is_cluster() const noexcept override { return inner_.is_cluster(); }

 private:
  redis::client& inner_;
  const leader_lease& lease_;
};

// The watchdog's metrics; each pointer is owned by the registry.
struct watchdog::metric_set {
  explicit metric_set(metrics_registry& m)
      : sweeps(m.add_counter("tracewatch_sweeps_total", "Sweep passes completed.")),
        sweep_failures(m.add_counter("tracewatch_sweep_failures_total",
                                     "Sweep passes that ended with a Redis error.")),
        scanned(m.add_counter("tracewatch_sweep_scanned_total",
                              "Index entries read by sweeps.")),
        orphaned(m.add_counter("tracewatch_traces_orphaned_total",
                               "Traces marked ERRORED because their worker abandoned them.")),
        stale(m.add_counter("tracewatch_index_stale_removed_total",
                            "Index entries removed because the trace hash had expired.")),
        finished(m.add_counter("tracewatch_index_finished_removed_total",
                               "Index entries removed because the trace had finished.")),
        malformed(m.add_counter("tracewatch_traces_malformed_total",
                                "Sightings of traces whose data cannot be read.")),
        duration(m.add_histogram("tracewatch_sweep_duration_seconds",
                                 "Duration of sweep passes.")),
        leader(m.add_gauge("tracewatch_leader", "1 while this watchdog holds the lease.")),
        lease_changes(m.add_counter_family("tracewatch_lease_changes_total",
                                           "Lease acquisitions and losses.", {"change"})),
        redis_errors(m.add_counter("tracewatch_redis_errors_total",
                                   "Redis requests of the watchdog that failed.")) {}

  counter& sweeps;
  counter& sweep_failures;
  counter& scanned;
  counter& orphaned;
  counter& stale;
  counter& finished;
  counter& malformed;
  histogram& duration;
  gauge& leader;
  counter_family& lease_changes;
  counter& redis_errors;
};

result<void> validate(const watchdog_options& options) {
  if (options.interval < std::chrono::milliseconds(10)) {
    return error(errc::invalid_argument,
                 fmt::format("invalid sweep interval {} ms: use at least 10 ms",
                             options.interval.count()));
  }
  if (!(options.interval_jitter >= 0.0 && options.interval_jitter <= 1.0)) {
    return error(errc::invalid_argument,
                 fmt::format("invalid interval jitter {}: use 0 to 1", options.interval_jitter));
  }
  if (auto valid = validate(options.sweep); !valid) return valid;
  return validate(options.lease);
}

watchdog::watchdog(redis::client& client, registry_options registry, watchdog_options options,
                   logger log, metrics_registry* metrics)
    : client_(client),
      options_(std::move(options)),
      log_(log.with_component("watchdog")),
      lease_(client, with_prefix(options_.lease, registry), log,
             lease_callbacks{
                 [this] {
                   if (metrics_) {
                     metrics_->leader.set(1);
                     metrics_->lease_changes.with({"acquired"}).inc();
                   }
                   // The new leader sweeps at once.
                   if (wake_) wake_->cancel();
                 },
                 [this](lease_loss_reason) {
                   if (metrics_) {
                     metrics_->leader.set(0);
                     metrics_->lease_changes.with({"lost"}).inc();
                   }
                 }}),
      guarded_client_(std::make_unique<lease_guarded_client>(client, lease_)),
      sweeper_(*guarded_client_, registry, options_.sweep, log),
      jitter_state_(std::random_device{}()) {
  if (auto valid = validate(options_); !valid) throw std::invalid_argument(valid.error().what());
  if (metrics != nullptr) metrics_ = std::make_unique<metric_set>(*metrics);
}

watchdog::~watchdog() = default;

bool watchdog::is_leader() const noexcept { return lease_.is_leader(); }

std::chrono::milliseconds watchdog::next_wait() {
  // splitmix64: enough randomness to spread sweeps, no shared state.
  jitter_state_ += 0x9e3779b97f4a7c15ull;
  std::uint64_t z = jitter_state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const double unit = static_cast<double>(z >> 11) / static_cast<double>(1ull << 53);
  const double factor = 1.0 + unit * options_.interval_jitter;
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(options_.interval.count()) * factor));
}

void watchdog::run_under(supervisor& sup) {
  sup.spawn("lease", [this, &sup]() { return async_lease_loop(sup); });
  sup.spawn("sweep", [this, &sup]() { return async_sweep_loop(sup); });
}

asio::awaitable<void> watchdog::async_lease_loop(supervisor& sup) {
  // The lease runs until the supervisor's stop request; || cancels the
  // other side when one finishes.
  co_await (lease_.async_run() || sup.async_wait_stop_requested());
}

asio::awaitable<void> watchdog::async_sweep_loop(supervisor& sup) {
  auto executor = co_await asio::this_coro::executor;
  wake_ = std::make_unique<asio::steady_timer>(executor);

  while (!sup.stopping()) {
    // Wait one interval, or less when this instance is elected meanwhile.
    wake_->expires_after(next_wait());
    boost::system::error_code ec;
    co_await (wake_->async_wait(asio::redirect_error(asio::use_awaitable, ec)) ||
              sup.async_wait_stop_requested());
    if (sup.stopping()) break;
    if (!lease_.is_leader()) continue;

    log_.debug("sweep_started");
    auto summary = co_await sweeper_.async_sweep(
        [this, &sup] { return sup.stopping() || !lease_.is_leader(); });
    if (!summary) {
      if (summary.error().code == std::errc::operation_canceled && !lease_.is_leader()) {
        log_.info("sweep_stopped", {{"reason", "lease_lost"}});
        continue;
      }
      if (metrics_) {
        metrics_->sweep_failures.inc();
        metrics_->redis_errors.inc();
      }
      continue;
    }

    ++sweeps_;
    if (metrics_) {
      metrics_->sweeps.inc();
      metrics_->scanned.inc(summary->scanned);
      metrics_->orphaned.inc(summary->orphaned);
      metrics_->stale.inc(summary->stale);
      metrics_->finished.inc(summary->finished);
      metrics_->malformed.inc(summary->malformed);
      metrics_->duration.observe(summary->duration);
    }
    log_.info("sweep_done",
              {{"scanned", summary->scanned},
               {"orphaned", summary->orphaned},
               {"stale", summary->stale},
               {"finished", summary->finished},
               {"malformed", summary->malformed},
               {"batches", summary->batches},
               {"stopped_early", summary->stopped_early},
               {"duration_ms", std::chrono::duration<double, std::milli>(summary->duration).count()}});
  }
  wake_.reset();
}

asio::awaitable<void> watchdog::async_shutdown() {
  auto released = co_await lease_.async_release();
  if (!released) {
    log_.warn("lease_release_failed",
              {{"error", released.error().what()},
               {"remedy", "the lease expires by itself after --lease-s"}});
  }
  if (metrics_) metrics_->leader.set(0);
}

}  // namespace tracewatch
