// `tracewatch sweep` (one pass, no lease) and `tracewatch watchdog` (the
// daemon: lease, periodic sweeps, metrics endpoint, clean shutdown).

#include <cmath>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include "cli.hpp"
#include "log_sink.hpp"
#include "runtime.hpp"
#include "tracewatch/metrics.hpp"
#include "tracewatch/layout_check.hpp"
#include "tracewatch/metrics_server.hpp"
#include "tracewatch/redis/cluster.hpp"
#include "tracewatch/supervisor.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/watchdog.hpp"

namespace tracewatch::cli {
namespace {

// Maximum duration of these flags: ten years, far beyond any useful setting
// and far inside the range of milliseconds in 64 bits.
constexpr double kMaxFlagSeconds = 10.0 * 365 * 24 * 3600;

// Converts a flag in seconds to milliseconds; rejects values that are not
// finite, below `min_s` or above kMaxFlagSeconds.
result<std::chrono::milliseconds> seconds_flag(std::string_view flag, double value, double min_s) {
  if (!std::isfinite(value) || value < min_s || value > kMaxFlagSeconds) {
    return error(errc::invalid_argument,
                 fmt::format("invalid {} {}: use a number of seconds from {} to {:.0f}", flag,
                             value, min_s, kMaxFlagSeconds));
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(value * 1000.0)));
}

boost::json::object summary_json(const sweep_summary& s) {
  boost::json::array orphans;
  for (const auto& o : s.orphans) orphans.push_back(boost::json::object{{"id", o.id}, {"age_s", o.age_s}});
  return boost::json::object{
      {"scanned", s.scanned},
      {"orphaned", s.orphaned},
      {"stale", s.stale},
      {"finished", s.finished},
      {"malformed", s.malformed},
      {"live", s.live},
      {"skipped", s.skipped},
      {"batches", s.batches},
      {"stopped_early", s.stopped_early},
      {"duration_ms", std::chrono::duration<double, std::milli>(s.duration).count()},
      {"orphans", std::move(orphans)}};
}

const command_registration sweep_command(30, [](CLI::App& app, global_options& globals) {
  struct args_t {
    double threshold_s = 1800;
    std::uint32_t batch_size = sweep_options{}.batch_size;
    bool json = false;
    bool read_every_id = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand("sweep", "Run one sweep pass now (no lease) and print its summary");
  sub->add_option("--threshold-s", args->threshold_s,
                  "Age in seconds after which an unfinished trace is orphaned")
      ->capture_default_str();
  sub->add_option("--batch-size", args->batch_size, "Index entries per script call")
      ->capture_default_str();
  sub->add_flag("--json", args->json, "Print the summary as JSON");
  sub->add_flag("--read-every-id", args->read_every_id,
                "Compat layout: read every trace, also those whose UUIDv7 id says they are "
                "younger than the threshold");
  return [&globals, args]() -> int {
    auto registry_opts = make_registry_options(globals);
    if (!registry_opts) return report_error(registry_opts.error());
    sweep_options options;
    auto threshold = seconds_flag("--threshold-s", args->threshold_s, 0.001);
    if (!threshold) return report_error(threshold.error());
    options.threshold = *threshold;
    options.batch_size = args->batch_size;
    options.read_every_id = args->read_every_id;
    if (auto valid = validate(options); !valid) return report_error(valid.error());

    logger log = make_logger(globals);
    return run_with_layout(globals, *registry_opts, [&](redis::client& client) -> asio::awaitable<int> {
      sweeper s(client, *registry_opts, options, log);
      auto summary = co_await s.async_sweep();
      if (!summary) co_return report_error(summary.error());
      if (args->json) {
        print_json(summary_json(*summary));
      } else {
        fmt::print("scanned {} orphaned {} stale {} finished {} malformed {} live {} skipped {} "
                   "batches {} duration_ms {:.1f}\n",
                   summary->scanned, summary->orphaned, summary->stale, summary->finished,
                   summary->malformed, summary->live, summary->skipped, summary->batches,
                   std::chrono::duration<double, std::milli>(summary->duration).count());
      }
      co_return kExitOk;
    });
  };
});

const command_registration watchdog_command(31, [](CLI::App& app, global_options& globals) {
  struct args_t {
    double interval_s = 300;
    double threshold_s = 1800;
    double lease_s = 30;
    std::string metrics_addr = "127.0.0.1:9464";
    std::uint32_t batch_size = sweep_options{}.batch_size;
    bool cluster = false;
    bool read_every_id = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand(
      "watchdog", "Run the watchdog daemon: hold the fleet-wide lease and sweep on an interval");
  sub->add_option("--interval-s", args->interval_s, "Seconds between sweeps (plus up to 10% jitter)")
      ->capture_default_str();
  sub->add_option("--threshold-s", args->threshold_s,
                  "Age in seconds after which an unfinished trace is orphaned")
      ->capture_default_str();
  sub->add_option("--lease-s", args->lease_s,
                  "Leader lease in seconds; a crashed leader is replaced within about this long")
      ->capture_default_str();
  sub->add_option("--metrics-addr", args->metrics_addr,
                  "host:port for the Prometheus endpoint (GET /metrics); 'off' disables it")
      ->capture_default_str();
  sub->add_option("--batch-size", args->batch_size, "Index entries per script call")
      ->capture_default_str();
  sub->add_flag("--read-every-id", args->read_every_id,
                "Compat layout: read every trace, also those whose UUIDv7 id says they are "
                "younger than the threshold");
  sub->add_flag("--cluster", args->cluster,
                "--redis names a seed node of a Redis Cluster (the daemon may start before "
                "Redis, so it does not detect this itself)");
  return [&globals, args]() -> int {
    // Validate every flag before connecting.
    auto registry_opts = make_registry_options(globals);
    if (!registry_opts) return report_error(registry_opts.error());
    watchdog_options options;
    auto interval = seconds_flag("--interval-s", args->interval_s, 0.01);
    if (!interval) return report_error(interval.error());
    auto threshold = seconds_flag("--threshold-s", args->threshold_s, 0.001);
    if (!threshold) return report_error(threshold.error());
    auto lease = seconds_flag("--lease-s", args->lease_s, 0.1);
    if (!lease) return report_error(lease.error());
    options.interval = *interval;
    options.sweep.threshold = *threshold;
    options.sweep.batch_size = args->batch_size;
    options.sweep.read_every_id = args->read_every_id;
    options.lease.lease = *lease;
    if (auto valid = validate(options); !valid) return report_error(valid.error());
    auto config = redis::parse_url(globals.effective_redis_url());
    if (!config) return report_error(config.error());

    logger log = make_logger(globals);
    asio::io_context io;
    metrics_registry metrics;
    std::unique_ptr<metrics_server> metrics_endpoint;
    if (args->metrics_addr != "off") {
      auto started = metrics_server::start(io.get_executor(), args->metrics_addr, metrics, log);
      if (!started) return report_error(started.error());
      metrics_endpoint = std::move(*started);
    }

    // Unlike one-shot commands, the daemon starts even while Redis is down:
    // the connection keeps retrying and the tasks wait for it.
    std::unique_ptr<redis::connection> conn;
    std::unique_ptr<redis::cluster_client> cluster;
    if (args->cluster) {
      cluster = std::make_unique<redis::cluster_client>(io.get_executor(), *config,
                                                        redis::cluster_options{}, log);
      cluster->start();
    } else {
      conn = std::make_unique<redis::connection>(io.get_executor(), *config, log);
      conn->start();
    }
    redis::client& client = cluster ? static_cast<redis::client&>(*cluster) : *conn;
    supervisor sup(io.get_executor(), log, {}, &metrics);
    watchdog dog(client, *registry_opts, options, log, &metrics);
    log.with_component("watchdog").info(
        "watchdog_started",
        {{"redis", config->display_address()},
         {"layout", globals.layout},
         {"prefix", globals.prefix},
         {"interval_s", args->interval_s},
         {"threshold_s", args->threshold_s},
         {"lease_s", args->lease_s},
         {"metrics",
          metrics_endpoint ? metrics_endpoint->local_address() : std::string("off")}});
    dog.run_under(sup);
    sup.stop_on_signals();

    // Once Redis replies, check the layout. A wrong layout or shard count
    // stops the daemon with kExitUsage. Sweeps that run before the check
    // only touch keys of the shards they read, so they do no harm.
    int exit_code = kExitOk;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const logger check_log = log.with_component("watchdog");
          while (true) {
            constexpr std::chrono::seconds kWait{5};
            result<void> ready;
            if (cluster) {
              ready = co_await cluster->async_wait_ready(kWait);
            } else {
              ready = co_await conn->async_wait_ready(kWait);
            }
            if (ready) break;
            // Shutting down, or a lasting error (wrong password) that the
            // tasks report themselves.
            if (!is_retryable(ready.error().code)) co_return;
          }
          auto checked = co_await async_check_layout(client, *registry_opts);
          if (checked || checked.error() == errc::closed) co_return;
          if (is_retryable(checked.error().code)) {
            check_log.warn("layout_check_skipped",
                           {{"error", checked.error().what()},
                            {"remedy", "the check runs again at the next start"}});
            co_return;
          }
          check_log.error("layout_check_failed",
                          {{"error", checked.error().what()},
                           {"remedy", "fix --layout or --shards; the watchdog stops"}});
          exit_code = kExitUsage;
          sup.stop();
        },
        asio::detached);

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await sup.async_wait_stopped();
          co_await dog.async_shutdown();
          log.with_component("watchdog").info("watchdog_stopped",
                                              {{"sweeps", dog.sweeps_completed()}});
          if (metrics_endpoint) metrics_endpoint->stop();
          if (conn) conn->close();
          if (cluster) cluster->close();
        },
        asio::detached);
    io.run();
    return exit_code;
  };
});

}  // namespace
}  // namespace tracewatch::cli
