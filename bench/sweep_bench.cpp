// A sweep of N active traces (1M by default) with 1% orphaned, three ways on
// the same private redis-server in one run:
//   - the reference algorithm (SMEMBERS, then HGET round trips per id and
//     HSET/EXPIRE/SREM per orphan), implemented here as the baseline;
//   - tracewatch's sweeper in the compat layout, as configured by default
//     (ids young by their UUIDv7 time stay unread), and reading every id;
//   - tracewatch's sweeper in the sharded layout.
// The live traces are created now, with ids minted now; the orphans were
// created 4000 s ago, with ids minted then.
// Each run starts from the same freshly loaded data, and reports its wall
// time and the longest single Redis command seen by SLOWLOG while it ran.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include "bench.hpp"
#include "tracewatch/id_generator.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::bench {
namespace {

constexpr double kOrphanShare = 0.01;
constexpr std::chrono::seconds kThreshold{1800};

// Runs `body` on a fresh io_context with a ready connection to `url`.
template <class Body>
auto with_connection(const std::string& url, Body body) {
  asio::io_context io;
  redis::connection conn(io.get_executor(), redis::parse_url(url).value());
  conn.start();
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<decltype(body(conn).await_resume())> {
        auto ready = co_await conn.async_wait_ready(std::chrono::seconds(10));
        if (!ready) throw std::runtime_error("cannot connect: " + ready.error().what());
        auto value = co_await body(conn);
        conn.close();
        co_return value;
      },
      asio::use_future);
  io.run();
  return future.get();
}

// Sends one request and throws on any failure; bench set-up only.
asio::awaitable<std::vector<redis::reply>> exec_or_throw(redis::client& c, const redis::request& r) {
  auto replies = co_await c.async_exec(r);
  if (!replies) throw std::runtime_error(replies.error().what());
  co_return std::move(*replies);
}

// Loads `total` traces in `kind` layout, every 100th one older than the
// threshold. Requests of 1000 traces, 8 in flight.
void load(const std::string& url, layout_kind kind, std::uint64_t total) {
  with_connection(url, [&](redis::connection& conn) -> asio::awaitable<int> {
    registry_options options;
    options.layout = kind;
    auto keys = make_layout(options);
    auto t = co_await exec_or_throw(conn, [] { redis::request r; r.push("TIME"); return r; }());
    const double now = std::stod(t[0].elements[0].str);
    const auto orphan_every = static_cast<std::uint64_t>(1 / kOrphanShare);
    const double orphan_created = now - 4000;
    id_generator::options then;
    then.clock = [orphan_created] {
      return std::chrono::system_clock::time_point(std::chrono::duration_cast<
          std::chrono::system_clock::duration>(std::chrono::duration<double>(orphan_created)));
    };
    id_generator orphan_ids(then);

    std::uint64_t next = 0;
    auto loader = [&]() -> asio::awaitable<void> {
      while (next < total) {
        redis::request req;
        for (int i = 0; i < 1000 && next < total; ++i, ++next) {
          const bool orphan = next % orphan_every == 0;
          std::string id = orphan ? orphan_ids.next().to_string() : generate_trace_id();
          const double created = orphan ? orphan_created : now;
          std::string key = keys->trace_key(id);
          req.push("HSET", key, "state", "INFERENCE", "created_at",
                   fmt::format("{:.6f}", created), "platform", "bench");
          req.push("EXPIRE", key, 86400);
          if (kind == layout_kind::sharded) {
            req.push("ZADD", keys->index_key_for(id), static_cast<std::int64_t>(created * 1000), id);
          } else {
            req.push("SADD", keys->index_key_for(id), id);
          }
        }
        co_await exec_or_throw(conn, req);
      }
    };
    auto executor = co_await asio::this_coro::executor;
    std::vector<std::future<void>> loaders;
    for (int i = 0; i < 8; ++i) loaders.push_back(asio::co_spawn(executor, loader(), asio::use_future));
    // Poll until every loader finished, yielding to the io_context.
    asio::steady_timer timer(executor);
    for (auto& f : loaders) {
      while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        timer.expires_after(std::chrono::milliseconds(5));
        co_await timer.async_wait(asio::use_awaitable);
      }
      f.get();
    }
    co_return 0;
  });
}

// Clears SLOWLOG and records every command slower than 100 µs.
void reset_slowlog(const std::string& url) {
  with_connection(url, [](redis::connection& conn) -> asio::awaitable<int> {
    redis::request req;
    req.push("CONFIG", "SET", "slowlog-log-slower-than", "100");
    req.push("CONFIG", "SET", "slowlog-max-len", "100000");
    req.push("SLOWLOG", "RESET");
    co_await exec_or_throw(conn, req);
    co_return 0;
  });
}

struct slowest_command {
  std::int64_t micros = 0;
  std::string name;
};

slowest_command read_slowlog(const std::string& url) {
  return with_connection(url, [](redis::connection& conn) -> asio::awaitable<slowest_command> {
    redis::request req;
    req.push("SLOWLOG", "GET", "100000");
    auto replies = co_await exec_or_throw(conn, req);
    slowest_command slowest;
    for (const auto& entry : replies[0].elements) {
      // Entry: id, timestamp, microseconds, arguments, …
      if (entry.elements.size() < 4) continue;
      // SLOWLOG RESET logs itself when it frees a long log: the
      // benchmark's own bookkeeping, not part of a sweep.
      const auto& first = entry.elements[3].elements;
      if (!first.empty() && (first[0].str == "SLOWLOG" || first[0].str == "CONFIG")) continue;
      if (entry.elements[2].integer > slowest.micros) {
        slowest.micros = entry.elements[2].integer;
        const auto& args = entry.elements[3].elements;
        slowest.name = args.empty() ? "?" : args[0].str;
      }
    }
    co_return slowest;
  });
}

void flush(const std::string& url) {
  with_connection(url, [](redis::connection& conn) -> asio::awaitable<int> {
    redis::request req;
    req.push("FLUSHALL");
    co_await exec_or_throw(conn, req);
    co_return 0;
  });
}

// The reference module's sweep, one awaited round trip at a time.
std::uint64_t reference_sweep(const std::string& url) {
  return with_connection(url, [](redis::connection& conn) -> asio::awaitable<std::uint64_t> {
    redis::request members;
    members.push("SMEMBERS", "sg:traces:active");
    auto active = co_await exec_or_throw(conn, members);
    auto t = co_await exec_or_throw(conn, [] { redis::request r; r.push("TIME"); return r; }());
    const double now = std::stod(t[0].elements[0].str) + std::stod(t[0].elements[1].str) / 1e6;
    std::uint64_t orphaned = 0;
    for (const auto& member : active[0].elements) {
      const std::string key = "sg:trace:" + member.str;
      redis::request get_created;
      get_created.push("HGET", key, "created_at");
      auto created = co_await exec_or_throw(conn, get_created);
      if (created[0].is_nil()) {
        redis::request srem;
        srem.push("SREM", "sg:traces:active", member.str);
        co_await exec_or_throw(conn, srem);
        continue;
      }
      if (now - std::stod(created[0].str) <= static_cast<double>(kThreshold.count())) continue;
      redis::request get_state;
      get_state.push("HGET", key, "state");
      auto state = co_await exec_or_throw(conn, get_state);
      if (state[0].is_nil() || state[0].str == "COMPLETED" || state[0].str == "ERRORED") continue;
      redis::request mark;
      mark.push("HSET", key, "state", "ERRORED");
      co_await exec_or_throw(conn, mark);
      redis::request expire;
      expire.push("EXPIRE", key, 3600);
      co_await exec_or_throw(conn, expire);
      redis::request srem;
      srem.push("SREM", "sg:traces:active", member.str);
      co_await exec_or_throw(conn, srem);
      ++orphaned;
    }
    co_return orphaned;
  });
}

sweep_summary tracewatch_sweep(const std::string& url, layout_kind kind, bool read_every_id = false) {
  return with_connection(url, [=](redis::connection& conn) -> asio::awaitable<sweep_summary> {
    registry_options options;
    options.layout = kind;
    sweep_options sweep;
    sweep.threshold = kThreshold;
    sweep.read_every_id = read_every_id;
    sweeper s(conn, options, sweep);
    auto summary = co_await s.async_sweep();
    if (!summary) throw std::runtime_error(summary.error().what());
    co_return *summary;
  });
}

struct measured {
  double seconds = 0;
  std::uint64_t orphaned = 0;
  slowest_command slowest;
};

int run_sweep(const options& opts) {
  auto server = local_redis::start();
  if (!server) {
    fmt::print("  cannot start redis-server: {}\n", server.error().what());
    return 1;
  }
  const std::string url = server->unix_url();
  const std::uint64_t total = opts.sweep_traces;
  fmt::print("  {} active traces, {:.0f}% orphaned, threshold {} s\n", total, kOrphanShare * 100,
             kThreshold.count());

  try {
    auto measure = [&](layout_kind kind, auto&& sweep_fn) {
      flush(url);
      load(url, kind, total);
      reset_slowlog(url);
      measured m;
      auto start = std::chrono::steady_clock::now();
      m.orphaned = sweep_fn();
      m.seconds = seconds_since(start);
      m.slowest = read_slowlog(url);
      return m;
    };

    measured reference = measure(layout_kind::compat, [&] { return reference_sweep(url); });
    fmt::print("  reference algorithm     {:>8.3f} s, {} orphaned, longest command {} {:.2f} ms\n",
               reference.seconds, reference.orphaned, reference.slowest.name,
               reference.slowest.micros / 1000.0);
    sweep_summary compat_summary;
    measured compat = measure(layout_kind::compat, [&] {
      compat_summary = tracewatch_sweep(url, layout_kind::compat);
      return compat_summary.orphaned;
    });
    fmt::print("  tracewatch compat       {:>8.3f} s, {} orphaned, {} unread, {} batches, longest "
               "command {} {:.2f} ms\n",
               compat.seconds, compat.orphaned, compat_summary.skipped, compat_summary.batches,
               compat.slowest.name, compat.slowest.micros / 1000.0);
    sweep_summary every_summary;
    measured every = measure(layout_kind::compat, [&] {
      every_summary = tracewatch_sweep(url, layout_kind::compat, true);
      return every_summary.orphaned;
    });
    fmt::print("  compat, every id read   {:>8.3f} s, {} orphaned, {} batches, longest command "
               "{} {:.2f} ms\n",
               every.seconds, every.orphaned, every_summary.batches, every.slowest.name,
               every.slowest.micros / 1000.0);
    sweep_summary sharded_summary;
    measured sharded = measure(layout_kind::sharded, [&] {
      sharded_summary = tracewatch_sweep(url, layout_kind::sharded);
      return sharded_summary.orphaned;
    });
    fmt::print("  tracewatch sharded      {:>8.3f} s, {} orphaned, {} batches, longest command "
               "{} {:.2f} ms\n",
               sharded.seconds, sharded.orphaned, sharded_summary.batches, sharded.slowest.name,
               sharded.slowest.micros / 1000.0);
    fmt::print("  (SLOWLOG records commands over 0.1 ms; 0.00 ms means none was that slow)\n");

    const std::string size = total >= 1'000'000 && total % 1'000'000 == 0
                                 ? fmt::format("{}M", total / 1'000'000)
                                 : fmt::format("{}", total);
    const bool full = total >= 1'000'000;
    add_summary({fmt::format("sweep {} active, 1% orphaned, compat", size),
                 fmt::format("{:.3f} s", compat.seconds),
                 fmt::format("reference alg. {:.1f} s", reference.seconds),
                 fmt::format("{:.0f}x faster", reference.seconds / compat.seconds), "<= 3 s",
                 full ? std::optional<bool>(compat.seconds <= 3.0) : std::nullopt});
    add_summary({"  longest Redis command, compat sweep",
                 fmt::format("{:.2f} ms", compat.slowest.micros / 1000.0),
                 fmt::format("reference {:.1f} ms", reference.slowest.micros / 1000.0), "-",
                 "<= 5 ms", compat.slowest.micros <= 5000});
    add_summary({"  the same, --read-every-id", fmt::format("{:.3f} s", every.seconds),
                 fmt::format("reference alg. {:.1f} s", reference.seconds),
                 fmt::format("{:.0f}x faster", reference.seconds / every.seconds), "-",
                 std::nullopt});
    add_summary({"  longest Redis command, --read-every-id",
                 fmt::format("{:.2f} ms", every.slowest.micros / 1000.0), "-", "-", "<= 5 ms",
                 every.slowest.micros <= 5000});
    add_summary({fmt::format("sweep {} active, 1% orphaned, sharded", size),
                 fmt::format("{:.3f} s", sharded.seconds),
                 fmt::format("reference alg. {:.1f} s", reference.seconds),
                 fmt::format("{:.0f}x faster", reference.seconds / sharded.seconds), "<= 0.3 s",
                 full ? std::optional<bool>(sharded.seconds <= 0.3) : std::nullopt});
    add_summary({"  longest Redis command, sharded sweep",
                 fmt::format("{:.2f} ms", sharded.slowest.micros / 1000.0), "-", "-", "<= 5 ms",
                 sharded.slowest.micros <= 5000});
  } catch (const std::exception& e) {
    fmt::print("  sweep benchmark failed: {}\n", e.what());
    return 1;
  }
  return 0;
}

const suite_registration sweep_suite({"sweep",
                                      "sweep of 1M active traces, 1% orphaned: reference "
                                      "algorithm, compat and sharded",
                                      run_sweep});

}  // namespace
}  // namespace tracewatch::bench
