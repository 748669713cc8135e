// Requests per second on one multiplexed redis::connection, beside
// redis-benchmark sending the same HSET against the same private
// redis-server in the same run.
//
// Both sides keep the same number of commands in flight. redis-benchmark
// uses `clients` connections of `pipeline` commands each. tracewatch uses
// clients * pipeline coroutines that each await one HSET at a time on a
// single connection, so every batch on the wire comes from automatic
// pipelining. Two depths are measured: 256 and 1024 commands in flight.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include <algorithm>

#include "bench.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch::bench {
namespace {

namespace asio = boost::asio;

// redis-benchmark's -c and -P. Their product is the commands in flight.
struct depth {
  int clients;
  int pipeline;
  int in_flight() const { return clients * pipeline; }
};
constexpr depth kDepths[] = {{16, 16}, {32, 32}};

// The arguments that both redis-benchmark and tracewatch send.
constexpr std::string_view kKey = "bench:connection";
constexpr std::string_view kField = "field";
constexpr std::string_view kValue = "value";

struct run_result {
  double requests_per_second = 0;
  double requests_per_write = 0;
};

// Runs `total` HSETs with `coroutines` coroutines on one connection.
run_result run_tracewatch(const std::string& url, std::uint64_t total, int coroutines) {
  asio::io_context io(1);
  redis::connection conn(io.get_executor(), redis::parse_url(url).value());
  conn.start();
  std::uint64_t issued = 0;
  std::uint64_t failures = 0;
  std::string first_error;
  int running = coroutines;
  std::chrono::steady_clock::time_point start;

  // Every coroutine sends the same command, as redis-benchmark does.
  redis::request hset;
  hset.push("HSET", kKey, kField, kValue);

  auto worker = [&]() -> asio::awaitable<void> {
    while (issued++ < total) {
      auto replies = co_await conn.async_exec(hset);
      if (!replies && failures++ == 0) first_error = replies.error().what();
    }
    if (--running == 0) conn.close();
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto ready = co_await conn.async_wait_ready(std::chrono::seconds(10));
        if (!ready) {
          first_error = ready.error().what();
          failures = 1;
          conn.close();
          co_return;
        }
        start = std::chrono::steady_clock::now();
        for (int i = 0; i < coroutines; ++i) asio::co_spawn(io, worker(), asio::detached);
      },
      asio::detached);
  io.run();

  const double elapsed = seconds_since(start);
  if (failures > 0) {
    fmt::print("  tracewatch: {} requests failed, first: {}\n", failures, first_error);
    return {};
  }
  const auto stats = conn.stats();
  return {static_cast<double>(total) / elapsed,
          stats.writes == 0 ? 0.0
                            : static_cast<double>(stats.requests) / static_cast<double>(stats.writes)};
}

// Runs redis-benchmark with the same HSET; returns its requests per second,
// or 0 when it could not run.
double run_redis_benchmark(const local_redis& server, std::uint64_t total, depth d) {
  const std::string command =
      fmt::format("redis-benchmark -s {} -n {} -c {} -P {} -q HSET {} {} {} 2>&1",
                  server.socket_path(), total, d.clients, d.pipeline, kKey, kField, kValue);
  return run_redis_benchmark_rps(command);
}

// Measures both sides at one depth and adds a summary row; false when a
// side could not run.
bool compare_at(const local_redis& server, std::uint64_t total, depth d) {
  // Measure both sides alternately and keep the best run of each: the
  // machine is shared, and the best run is the least disturbed.
  run_result ours;
  double anchor = 0;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    anchor = std::max(anchor, run_redis_benchmark(server, total, d));
    const run_result run = run_tracewatch(server.unix_url(), total, d.in_flight());
    if (run.requests_per_second > ours.requests_per_second) ours = run;
  }
  fmt::print("  {:>4} in flight: tracewatch {:>9.0f} requests/s ({:.0f} requests per write), "
             "redis-benchmark -c {} -P {} {:>9.0f} requests/s\n",
             d.in_flight(), ours.requests_per_second, ours.requests_per_write, d.clients,
             d.pipeline, anchor);
  if (ours.requests_per_second == 0 || anchor == 0) return false;

  const double ratio = ours.requests_per_second / anchor;
  add_summary({fmt::format("HSET/s one connection, {} in flight", d.in_flight()),
               fmt::format("{:.0f}/s", ours.requests_per_second),
               fmt::format("redis-benchmark {:.0f}/s", anchor), fmt::format("{:.2f}x", ratio),
               ">= 0.90x", ratio >= 0.9});
  return true;
}

int run_connection(const options& opts) {
  auto server = local_redis::start();
  if (!server) {
    fmt::print("  cannot start redis-server: {}\n", server.error().what());
    return 1;
  }
  const std::uint64_t total = opts.quick ? 200'000 : 1'000'000;
  fmt::print("  {} HSETs per run, on {}\n", total, server->unix_url());

  run_tracewatch(server->unix_url(), total / 10, kDepths[0].in_flight());  // warm-up
  int status = 0;
  for (const depth& d : kDepths) {
    if (!compare_at(*server, total, d)) status = 1;
  }
  return status;
}

const suite_registration connection_suite({"connection",
                                           "HSET requests per second on one connection vs "
                                           "redis-benchmark with the same commands in flight",
                                           run_connection});

}  // namespace
}  // namespace tracewatch::bench
