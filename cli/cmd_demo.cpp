// `tracewatch demo`: the whole story in under a minute. A simulated pipeline
// creates traces, workers finish most of them and crash on some, the
// watchdog reaps the abandoned ones, and a report checks the result in Redis.
//
// Which Redis: a private redis-server started from PATH on a unix socket in
// a temporary directory, stopped and removed at exit, unless --redis is given
// on the command line. TRACEWATCH_REDIS_URL is ignored here on purpose: it is
// meant for the other commands, and a first run should not write into the
// Redis it happens to name. With --redis the run writes only keys under a
// random prefix (twdemo-<12 hex digits>) and deletes them at the end unless
// --keep is given.

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include "cli.hpp"
#include "demo_run.hpp"
#include "demo_settings.hpp"
#include "runtime.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/log_format.hpp"

namespace tracewatch::cli {
namespace {

struct demo_args {
  demo_settings settings;
  // Set once the command line is parsed, before the environment fills in
  // unset options: true only when the user typed --redis.
  bool redis_given = false;
};

// The library records the run passes on: those at --log-level and above,
// info when it is not given.
demo_log_options make_log_options(const global_options& globals) {
  demo_log_options options;
  options.encoding = parse_log_encoding(globals.log_format).value_or(log_encoding::logfmt);
  options.min_level = parse_log_level(globals.log_level).value_or(log_level::info);
  return options;
}

int run_demo(const global_options& globals, const demo_args& args) {
  // Check every input before starting anything.
  if (auto valid = validate(args.settings); !valid) return report_error(valid.error());
  auto registry_opts = make_registry_options(globals);
  if (!registry_opts) return report_error(registry_opts.error());
  std::optional<redis::config> shared_config;
  if (args.redis_given) {
    auto config = redis::parse_url(globals.redis_url);
    if (!config) return report_error(config.error());
    shared_config = std::move(*config);
  }

  // A closed pipe on stdout (`tracewatch demo | head`) must not kill the
  // process before it stops its redis-server: writes then fail instead.
  std::signal(SIGPIPE, SIG_IGN);
  // The signals are handled from here on, before the server starts, and
  // until after it is stopped: a Ctrl-C at any moment ends in the clean-up.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);

  demo_target target;
  std::optional<local_redis> server;
  if (shared_config) {
    std::mt19937_64 random(std::random_device{}());
    registry_opts->prefix = make_demo_prefix(random);
    target.config = *shared_config;
    target.shared = true;
    target.description = shared_config->display_address();
    target.intro =
        fmt::format("Redis: {}, keys under the prefix {} ({} after the run).", target.description,
                    registry_opts->prefix, args.settings.keep ? "kept" : "deleted");
  } else {
    auto started = local_redis::start();
    if (!started) return report_error(started.error());
    server.emplace(std::move(*started));
    auto config = redis::parse_url(server->unix_url());
    if (!config) return report_error(config.error());
    target.config = std::move(*config);
    target.description = fmt::format("a private redis-server, pid {}", server->pid());
    target.intro = fmt::format(
        "Redis: a private redis-server, pid {}, socket {} (stopped and removed at exit).",
        server->pid(), server->socket_path());
  }

  // The run ends before `server` is destroyed, which stops redis-server and
  // removes its directory on every path out of this function.
  try {
    demo_run run(io, signals, args.settings, *registry_opts, std::move(target),
                 make_log_options(globals));
    auto code = asio::co_spawn(io, run.async_run(), asio::use_future);
    io.run();
    return code.get();
  } catch (const std::exception& e) {
    fmt::print(stderr, "tracewatch demo: internal error: {}\n", e.what());
    return kExitFailure;
  }
}

const command_registration demo_command(5, [](CLI::App& app, global_options& globals) {
  auto args = std::make_shared<demo_args>();
  demo_settings& s = args->settings;
  auto* sub = app.add_subcommand(
      "demo",
      "Run a simulated pipeline with crashing workers and the watchdog, then check the result in "
      "Redis (a private redis-server unless --redis is given on the command line; "
      "TRACEWATCH_REDIS_URL is ignored). Exit code 0 when every check passed, 1 when one "
      "failed, 128 + N when signal N stopped it");

  // The simulated pipeline.
  sub->add_option("--duration-s", s.duration_s, "Seconds of ingress before the drain")
      ->capture_default_str();
  sub->add_option("--rate", s.rate, "Traces created per second")->capture_default_str();
  sub->add_option("--workers", s.workers, "Worker coroutines moving traces")->capture_default_str();
  sub->add_option("--crash-share", s.crash_share,
                  "Share of traces (0 to 1) that a worker abandons midway, as if it crashed")
      ->capture_default_str();
  sub->add_option("--max-stage-ms", s.max_stage_ms,
                  "Maximum pause in milliseconds a worker spends in each of the three stages")
      ->capture_default_str();

  // The watchdogs, with thresholds scaled down so that the run fits in a minute.
  sub->add_option("--threshold-s", s.threshold_s,
                  "Age in seconds after which an unfinished trace is orphaned")
      ->capture_default_str();
  sub->add_option("--interval-s", s.interval_s, "Seconds between sweeps")->capture_default_str();
  sub->add_option("--lease-s", s.lease_s, "Leader lease in seconds")->capture_default_str();
  sub->add_option("--watchdogs", s.watchdogs,
                  "Watchdog instances: 1, or 2 to show that only the lease holder sweeps")
      ->capture_default_str();
  sub->add_option("--drain-timeout-s", s.drain_timeout_s,
                  "Maximum wait in seconds for the abandoned traces to be reaped after ingress; "
                  "0 picks twice the expected wait, at least 10 s")
      ->capture_default_str();

  // Output and clean-up.
  sub->add_flag("--keep", s.keep,
                "With --redis: leave the run's keys (under the prefix twdemo-<12 hex digits>) in "
                "Redis");
  sub->add_flag("--json", s.json,
                "Print the final report as one JSON object on stdout (progress goes to stderr)");

  sub->parse_complete_callback([&app, args] {
    // Runs before CLI11 reads TRACEWATCH_REDIS_URL into --redis, so the
    // count includes only what the user typed.
    args->redis_given = app.get_option("--redis")->count() > 0;
  });
  return [&globals, args]() -> int { return run_demo(globals, *args); };
});

}  // namespace
}  // namespace tracewatch::cli
