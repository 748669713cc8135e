// Creates per second from one process, beside redis-benchmark running the
// same create script by EVALSHA against the same private redis-server.
//
// Both sides keep the same number of creates in flight: redis-benchmark with
// kClients connections of kPipeline commands each, tracewatch with
// kClients * kPipeline coroutines on one multiplexed connection.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "../src/scripts.hpp"
#include "bench.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::bench {
namespace {

constexpr int kClients = 16;
constexpr int kPipeline = 16;
// redis-benchmark writes __rand_int__ as 12 digits, so this stem makes its
// ids as long as a UUID's canonical text, and its keys as long as ours.
constexpr const char* kIdStem = "0190a1b2-c3d4-7e5f-8a9b-";

// Runs `total` creates with kClients * kPipeline coroutines; returns creates
// per second, or 0 when a create failed.
double run_tracewatch(const std::string& url, std::uint64_t total) {
  asio::io_context io;
  redis::connection conn(io.get_executor(), redis::parse_url(url).value());
  conn.start();
  registry reg(conn);
  std::atomic<std::uint64_t> issued{0};
  std::uint64_t failures = 0;
  std::string first_error;
  int running = kClients * kPipeline;
  std::chrono::steady_clock::time_point start;

  auto worker = [&]() -> asio::awaitable<void> {
    const metadata fields = {{"platform", "bench"}, {"channel", "api"}};
    while (issued.fetch_add(1) < total) {
      auto created = co_await reg.async_create(generate_trace_id(), "RECEIVED", fields);
      if (!created) {
        if (failures++ == 0) first_error = created.error().what();
      }
    }
    if (--running == 0) conn.close();
  };
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto ready = co_await conn.async_wait_ready(std::chrono::seconds(10));
    if (!ready) {
      first_error = ready.error().what();
      failures = 1;
      conn.close();
      co_return;
    }
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < kClients * kPipeline; ++i) asio::co_spawn(io, worker(), asio::detached);
  }, asio::detached);
  io.run();
  const double elapsed = seconds_since(start);
  if (failures > 0) {
    fmt::print("  tracewatch: {} creates failed, first: {}\n", failures, first_error);
    return 0;
  }
  return static_cast<double>(total) / elapsed;
}

// Runs redis-benchmark with the create script and returns its requests per
// second, or 0 when it could not run.
double run_redis_benchmark(const local_redis& server, std::uint64_t total) {
  const std::string& sha = scripts::create().sha1();
  // Load the script so that EVALSHA finds it. redis-cli -x takes the last
  // argument from stdin byte for byte, trailing newline included, so the
  // server computes the same SHA-1.
  char path[] = "/tmp/tracewatch-bench-script-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) {
    fmt::print("  redis-benchmark: cannot create a temporary file in /tmp\n");
    return 0;
  }
  const std::string& source = scripts::create().source();
  const bool written = ::write(fd, source.data(), source.size()) ==
                       static_cast<ssize_t>(source.size());
  ::close(fd);
  std::string load = written ? capture_output(fmt::format("redis-cli -s {} -x SCRIPT LOAD < {} 2>&1",
                                                          server.socket_path(), path))
                             : std::string("cannot write the script to a temporary file");
  ::unlink(path);
  if (load.find(sha) == std::string::npos) {
    fmt::print("  redis-benchmark: could not load the script: {}\n", load);
    return 0;
  }
  // -r replaces each __rand_int__ with a random number, so every create
  // writes a new key, as tracewatch's creates do. redis-benchmark reads -r
  // as a C int; a larger value turns the replacement off, and every call
  // then finds the first key and writes nothing.
  auto key_count = [&]() -> long long {
    const std::string out =
        capture_output(fmt::format("redis-cli -s {} DBSIZE 2>&1", server.socket_path()));
    return std::atoll(out.c_str());
  };
  const long long keys_before = key_count();
  std::string command = fmt::format(
      "redis-benchmark -s {} -n {} -c {} -P {} -r 1000000000 -q "
      "EVALSHA {} 2 sg:trace:{}__rand_int__ sg:traces:active {}__rand_int__ RECEIVED 86400 set "
      "platform bench channel api 2>&1",
      server.socket_path(), total, kClients, kPipeline, sha, kIdStem, kIdStem);
  const double rps = run_redis_benchmark_rps(command);
  if (rps == 0) return 0;
  // A few random numbers repeat; far fewer new keys means the calls did not
  // create traces, and the figure would not be comparable.
  const long long created = key_count() - keys_before;
  if (created < static_cast<long long>(total) * 9 / 10) {
    fmt::print("  redis-benchmark: only {} of {} calls created a trace; the figure is not "
               "comparable\n", created, total);
    return 0;
  }
  return rps;
}

int run_creates(const options& opts) {
  auto server = local_redis::start();
  if (!server) {
    fmt::print("  cannot start redis-server: {}\n", server.error().what());
    return 1;
  }
  const std::uint64_t total = opts.creates;
  fmt::print("  {} creates per side, {} in flight, on {}\n", total, kClients * kPipeline,
             server->unix_url());

  // Warm up both sides, then measure them alternately, twice each, keeping
  // the best run of each: the machine is shared and noisy.
  run_tracewatch(server->unix_url(), total / 10);
  double ours = 0;
  double anchor = 0;
  // Each run starts on an empty database, so neither side pays for the
  // keys the other wrote.
  auto flush = [&] {
    capture_output(fmt::format("redis-cli -s {} FLUSHALL 2>&1", server->socket_path()));
  };
  for (int round = 0; round < 2; ++round) {
    flush();
    anchor = std::max(anchor, run_redis_benchmark(*server, total));
    flush();
    ours = std::max(ours, run_tracewatch(server->unix_url(), total));
  }
  fmt::print("  tracewatch registry::async_create   {:>10.0f} creates/s\n", ours);
  fmt::print("  redis-benchmark EVALSHA (same script) {:>10.0f} requests/s\n", anchor);
  fmt::print("  published anchors: reference module 10k/s, ioredis auto-pipelining 22k/s\n");
  if (ours == 0 || anchor == 0) return 1;

  const double ratio = ours / anchor;
  add_summary({"creates/s, one process", fmt::format("{:.0f}/s", ours),
               fmt::format("redis-benchmark {:.0f}/s", anchor), fmt::format("{:.2f}x", ratio),
               ">= 0.90x", ratio >= 0.9});
  add_summary({"creates/s vs reference (published 10k/s)", fmt::format("{:.0f}/s", ours),
               "reference 10000/s", fmt::format("{:.1f}x", ours / 10000.0), "-", std::nullopt});
  return 0;
}

const suite_registration creates_suite({"creates",
                                        "registry creates per second vs redis-benchmark "
                                        "running the same script",
                                        run_creates});

}  // namespace
}  // namespace tracewatch::bench
