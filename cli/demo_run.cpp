#include "demo_run.hpp"

#include <algorithm>
#include <charconv>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "demo_report.hpp"
#include "runtime.hpp"

namespace tracewatch::cli {
namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often async_wait_until() checks its condition.
constexpr auto kPollInterval = 50ms;
// How long an interrupted run waits for its workers before it deletes keys.
constexpr auto kWorkerStopWait = 2s;
// Library log lines passed on per kind of record (component and event) in
// each interval: enough to see a problem, too few to bury the status line.
constexpr std::size_t kLogLinesPerKey = 5;
constexpr auto kLogInterval = 10s;
// Keys per SCAN step and per UNLINK of the clean-up.
constexpr int kScanCount = 1000;

std::string_view signal_name(int number) {
  switch (number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

// A copy of `config` that names itself `name` in CLIENT LIST.
redis::config named(redis::config config, std::string_view name) {
  config.client_name = fmt::format("tracewatch-demo-{}", name);
  return config;
}

}  // namespace

// One watchdog as a separate process would run it: its own connection,
// supervisor and lease.
struct demo_run::watchdog_instance {
  watchdog_instance(std::string instance_name, asio::any_io_executor executor,
                    const redis::config& config, const registry_options& registry,
                    const watchdog_options& options, const logger& log)
      : name(std::move(instance_name)),
        conn(executor, named(config, name), log),
        sup(executor, log),
        dog(conn, registry, options, log) {}

  std::string name;
  redis::connection conn;
  supervisor sup;
  watchdog dog;
};

demo_run::demo_run(asio::io_context& io, asio::signal_set& signals, demo_settings settings,
                   registry_options registry, demo_target target, demo_log_options log_options)
    : io_(io),
      settings_(std::move(settings)),
      registry_options_(std::move(registry)),
      target_(std::move(target)),
      log_options_(log_options),
      info_out_(settings_.json ? stderr : stdout),
      progress_(info_out_),
      signals_(signals),
      limiter_({.max_lines = kLogLinesPerKey, .interval = kLogInterval}),
      wake_(io),
      progress_timer_(io),
      conn_(io.get_executor(), named(target_.config, "client"), make_logger("client")),
      registry_(conn_, registry_options_),
      pipeline_(io.get_executor(), registry_, settings_, tally_, std::random_device{}(),
                make_logger("client")) {
  const watchdog_options options = make_watchdog_options(settings_);
  for (std::uint32_t i = 1; i <= settings_.watchdogs; ++i) {
    std::string name = fmt::format("wd-{}", i);
    logger log = make_logger(name);
    watchdogs_.push_back(std::make_unique<watchdog_instance>(
        std::move(name), io.get_executor(), target_.config, registry_options_, options, log));
  }
  wait_for_signal();
}

demo_run::~demo_run() = default;

logger demo_run::make_logger(std::string instance) {
  // The sink receives info records whatever the forwarding level, because
  // the status line is built from the watchdogs' sweep_done records.
  const log_level level = std::min(log_options_.min_level, log_level::info);
  auto sink = [this, instance = std::move(instance)](const log_record& record) {
    route(instance, record);
  };
  return logger(std::move(sink), level);
}

void demo_run::route(const std::string& instance, const log_record& record) {
  // Routine records of the watchdogs feed the status line.
  bool routine = false;
  if (record.event == "trace_orphaned") {
    routine = true;
    for (const auto& field : record.fields) {
      if (field.key == "trace_id") tally_.on_reaped(field.value);
    }
  } else if (record.event == "sweep_done") {
    routine = true;
    ++tally_.sweeps;
    for (const auto& field : record.fields) {
      if (field.key != "duration_ms") continue;
      double ms = 0;
      const char* end = field.value.data() + field.value.size();
      if (std::from_chars(field.value.data(), end, ms).ec == std::errc()) {
        tally_.last_sweep = std::chrono::duration<double, std::milli>(ms);
      }
    }
  }
  if (routine && log_options_.min_level != log_level::debug) return;
  if (record.level < log_options_.min_level) return;

  // Pass the record on, tagged with the instance that wrote it. Repeated
  // warnings, such as reconnect attempts while Redis is down, are limited.
  // The demo writes the line itself rather than through make_logger(),
  // because it must erase the status line first.
  std::vector<log_field> fields(record.fields.begin(), record.fields.end());
  fields.emplace_back("instance", instance);
  if (!routine) {
    const auto decision =
        limiter_.admit(fmt::format("{}.{}", record.component, record.event), clock::now());
    if (!decision.allowed) return;
    if (decision.suppressed != 0) fields.emplace_back("suppressed", decision.suppressed);
  }
  const log_record tagged{record.level, record.component, record.event, fields};
  progress_.clear();
  fmt::print(stderr, "{}\n",
             format_log_line(log_options_.encoding, tagged, std::chrono::system_clock::now()));
  std::fflush(stderr);
}

void demo_run::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int number) {
    if (ec) return;  // cancelled at the end of the run
    on_signal(number);
    wait_for_signal();
  });
}

void demo_run::on_signal(int number) {
  progress_.clear();
  if (signal_ == 0) {
    signal_ = number;
    fmt::print(stderr, "tracewatch demo: {} received; stopping (send it again to cancel at once)\n",
               signal_name(number));
    pipeline_.stop();
    for (auto& w : watchdogs_) w->sup.stop();
  } else {
    forced_ = true;
    fmt::print(stderr, "tracewatch demo: {} received again; cancelling\n", signal_name(number));
    pipeline_.stop();
    for (auto& w : watchdogs_) {
      w->sup.cancel();
      w->conn.close();
    }
    conn_.close();
  }
  std::fflush(stderr);
  wake_.cancel();
}

template <class Done>
asio::awaitable<bool> demo_run::async_wait_until(Done done, clock::time_point deadline,
                                                 bool until_signal) {
  while (!done() && !forced_ && !(until_signal && signal_ != 0)) {
    const auto now = clock::now();
    if (now >= deadline) break;
    wake_.expires_after(std::min<clock::duration>(kPollInterval, deadline - now));
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return done();
}

asio::awaitable<int> demo_run::async_run() {
  started_ = clock::now();
  std::vector<std::string> names;
  for (const auto& w : watchdogs_) names.push_back(w->name);
  const std::string watchdog_line =
      names.size() == 1
          ? fmt::format("Watchdog {} holds a lease of {} s", names.front(), settings_.lease_s)
          : fmt::format("Watchdogs {} compete for one lease of {} s", fmt::join(names, " and "),
                        settings_.lease_s);
  fmt::print(info_out_,
             "tracewatch demo: {} s of ingress at {} traces/s through {} workers; {:g}% of the "
             "traces are abandoned by simulated worker crashes.\n"
             "{}\n"
             "{}; the holder sweeps every {} s and reaps traces left unfinished for {} s.\n\n",
             settings_.duration_s, settings_.rate, settings_.workers, settings_.crash_share * 100,
             target_.intro, watchdog_line, settings_.interval_s, settings_.threshold_s);
  std::fflush(info_out_);

  // Connect before anything else, so that a wrong --redis fails at once.
  conn_.start();
  auto ready = co_await conn_.async_wait_ready(target_.config.connect_timeout);
  if (!ready) {
    conn_.close();
    signals_.cancel();
    if (signal_ != 0) co_return kExitSignalBase + signal_;
    co_return report_error(error(
        ready.error().code,
        fmt::format(
            "cannot connect to Redis at {}: {}; start Redis there or pass another --redis URL",
            target_.config.display_address(), ready.error().what())));
  }

  // 1. Ingress, with the workers and the watchdogs running.
  for (auto& w : watchdogs_) {
    w->conn.start();
    w->dog.run_under(w->sup);
  }
  pipeline_.start_workers();
  phase_ = demo_phase::ingress;
  asio::co_spawn(io_, async_show_progress(), asio::detached);
  const auto ingress_end = clock::now() + std::chrono::duration_cast<clock::duration>(
                                              std::chrono::duration<double>(settings_.duration_s));
  co_await pipeline_.async_run_ingress(ingress_end);

  // 2. Drain: the workers finish what is queued, then the watchdogs reap
  // what the crashed workers left.
  phase_ = demo_phase::drain;
  if (signal_ == 0) co_await pipeline_.async_close_queue();
  co_await async_wait_until([this] { return pipeline_.running_workers() == 0; },
                            clock::time_point::max(), true);
  const auto drain_deadline = clock::now() + drain_timeout(settings_);
  const bool all_reaped = co_await async_wait_until([this] { return tally_.awaiting_reap.empty(); },
                                                    drain_deadline, true);

  // 3. Stop the watchdogs; they release the lease.
  phase_ = demo_phase::stopping;
  co_await async_stop_watchdogs();
  phase_ = demo_phase::done;
  progress_timer_.cancel();
  progress_.show(
      format_status(clock::now() - started_, phase_, tally_, leader_name(), progress_.max_width()));
  progress_.finish();

  // 4. The report, unless a signal cut the run short.
  int code = kExitOk;
  if (signal_ != 0) {
    fmt::print(stderr, "tracewatch demo: stopped by {}; no report\n", signal_name(signal_));
    code = kExitSignalBase + signal_;
    pipeline_.stop();
    co_await async_wait_until([this] { return pipeline_.running_workers() == 0; },
                              clock::now() + kWorkerStopWait, false);
  } else {
    if (!all_reaped) {
      fmt::print(stderr,
                 "tracewatch demo: {} abandoned traces were not reaped within the drain timeout "
                 "of {} ms; check the watchdog's log lines above, or raise --drain-timeout-s\n",
                 tally_.awaiting_reap.size(), drain_timeout(settings_).count());
    }
    code = co_await async_report();
  }

  // 5. Clean-up of a shared Redis.
  if (target_.shared && !settings_.keep) {
    co_await async_delete_keys();
  } else if (target_.shared) {
    fmt::print(info_out_, "Kept the keys under {}:* as --keep asked.\n", registry_options_.prefix);
  }
  conn_.close();
  signals_.cancel();
  co_return code;
}

asio::awaitable<void> demo_run::async_show_progress() {
  while (phase_ != demo_phase::done) {
    progress_.show(format_status(clock::now() - started_, phase_, tally_, leader_name(),
                                 progress_.max_width()));
    progress_timer_.expires_after(progress_.interval());
    boost::system::error_code ec;
    co_await progress_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> demo_run::async_stop_watchdogs() {
  for (auto& w : watchdogs_) w->sup.stop();
  for (auto& w : watchdogs_) {
    co_await w->sup.async_wait_stopped();
    // Without a connection the release would only wait for its request
    // timeout; the lease expires by itself after --lease-s.
    if (w->conn.is_ready()) co_await w->dog.async_shutdown();
    w->conn.close();
  }
}

asio::awaitable<int> demo_run::async_report() {
  auto seen = co_await async_observe(conn_, registry_, tally_);
  if (!seen) {
    co_return report_error(error(
        seen.error().code,
        fmt::format("cannot read the demo's traces back from Redis: {}", seen.error().what())));
  }
  const std::vector<demo_check> checks = evaluate_checks(tally_, *seen);
  const demo_run_summary run{target_.description, registry_options_.prefix,
                             std::string(to_string(registry_options_.layout)),
                             clock::now() - started_, sweeps_by_watchdog()};
  bool passed = true;
  if (settings_.json) {
    auto report = report_json(settings_, run, tally_, checks);
    passed = report["passed"].as_bool();
    print_json(report);
  } else {
    passed = print_report(stdout, settings_, run, tally_, checks);
  }
  co_return passed ? kExitOk : kExitFailure;
}

asio::awaitable<void> demo_run::async_delete_keys() {
  // Every key of the run starts with "<prefix>:" in both layouts, and the
  // prefix is random hex, so the pattern matches nothing else.
  const std::string pattern = registry_options_.prefix + ":*";
  std::uint64_t deleted = 0;
  std::string cursor = "0";
  std::string failure;
  do {
    redis::request scan;
    scan.push("SCAN", cursor, "MATCH", pattern, "COUNT", kScanCount);
    auto replies = co_await conn_.async_exec(scan);
    if (!replies) {
      failure = replies.error().what();
      break;
    }
    const auto& r = (*replies)[0];
    if (!r.is_array() || r.elements.size() != 2) {
      failure = r.is_error() ? r.str : "unexpected reply to SCAN";
      break;
    }
    cursor = r.elements[0].str;
    std::vector<std::string> keys;
    for (const auto& key : r.elements[1].elements) keys.push_back(key.str);
    if (keys.empty()) continue;

    redis::request unlink;
    unlink.push_range("UNLINK", keys);
    auto unlinked = co_await conn_.async_exec(unlink);
    if (!unlinked || (*unlinked)[0].is_error()) {
      failure = unlinked ? (*unlinked)[0].str : unlinked.error().what();
      break;
    }
    deleted += static_cast<std::uint64_t>((*unlinked)[0].integer);
  } while (cursor != "0");

  if (!failure.empty()) {
    fmt::print(stderr,
               "tracewatch demo: cannot delete the keys under {}:* ({}); delete them with: "
               "redis-cli --scan --pattern '{}' | xargs redis-cli unlink\n",
               registry_options_.prefix, failure, pattern);
    co_return;
  }
  fmt::print(info_out_, "Deleted the run's {} keys under {}:*.\n", deleted,
             registry_options_.prefix);
}

std::string demo_run::leader_name() const {
  std::vector<std::string> leaders;
  for (const auto& w : watchdogs_) {
    if (w->dog.is_leader()) leaders.push_back(w->name);
  }
  if (leaders.empty()) return "none";
  return fmt::format("{}", fmt::join(leaders, "+"));
}

std::vector<std::pair<std::string, std::uint64_t>> demo_run::sweeps_by_watchdog() const {
  std::vector<std::pair<std::string, std::uint64_t>> sweeps;
  for (const auto& w : watchdogs_) sweeps.emplace_back(w->name, w->dog.sweeps_completed());
  return sweeps;
}

}  // namespace tracewatch::cli
