// Redis memory per trace with three metadata-free fields written, in three
// forms on one private redis-server:
//   - the reference module's writes (client-side created_at from Python's
//     str(time.time()), HSET, EXPIRE, SADD), replayed here;
//   - tracewatch's create in the compat layout;
//   - tracewatch's create in the sharded layout.
// Each figure is the growth of INFO memory's used_memory divided by the
// number of traces, so it includes the index entry.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include "bench.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::bench {
namespace {

enum class writer { reference, compat, sharded };

// Writes `total` traces with one metadata field ("platform") and returns
// the growth of used_memory per trace.
double bytes_per_trace(const std::string& url, writer form, std::uint64_t total) {
  asio::io_context io;
  redis::connection conn(io.get_executor(), redis::parse_url(url).value());
  conn.start();
  registry_options options;
  options.layout = form == writer::sharded ? layout_kind::sharded : layout_kind::compat;
  registry reg(conn, options);
  double result_bytes = 0;

  auto used_memory = [&]() -> asio::awaitable<double> {
    redis::request req;
    req.push("MEMORY", "PURGE");
    req.push("INFO", "memory");
    auto replies = co_await conn.async_exec(req);
    if (!replies) throw std::runtime_error(replies.error().what());
    const std::string& info = (*replies)[1].str;
    auto pos = info.find("used_memory:");
    if (pos == std::string::npos) throw std::runtime_error("INFO memory has no used_memory");
    co_return std::stod(info.substr(pos + 12));
  };

  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto ready = co_await conn.async_wait_ready(std::chrono::seconds(10));
    if (!ready) throw std::runtime_error(ready.error().what());
    // The script cache is a fixed cost, not a cost per trace: load the
    // create script before the baseline (FLUSHALL keeps scripts).
    if (form != writer::reference) {
      const metadata warm_up = {{"platform", "web"}};
      (void)co_await reg.async_create(generate_trace_id(), "RECEIVED", warm_up);
    }
    redis::request flush;
    flush.push("FLUSHALL");
    (void)co_await conn.async_exec(flush);
    const double before = co_await used_memory();

    std::uint64_t next = 0;
    int running = 32;
    asio::steady_timer done(co_await asio::this_coro::executor,
                            std::chrono::steady_clock::time_point::max());
    auto worker = [&]() -> asio::awaitable<void> {
      while (next < total) {
        ++next;
        std::string id = generate_trace_id();
        if (form == writer::reference) {
          // Python's str(time.time()) has up to 7 fraction digits.
          redis::request req;
          std::string key = "sg:trace:" + id;
          req.push("HSET", key, "state", "RECEIVED", "created_at", "1764876000.1234567",
                   "platform", "web");
          req.push("EXPIRE", key, 86400);
          req.push("SADD", "sg:traces:active", id);
          (void)co_await conn.async_exec(req);
        } else {
          const metadata fields = {{"platform", "web"}};
          (void)co_await reg.async_create(id, "RECEIVED", fields);
        }
      }
      if (--running == 0) done.cancel();
    };
    for (int i = 0; i < 32; ++i) asio::co_spawn(io, worker(), asio::detached);
    boost::system::error_code ignored;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));

    const double after = co_await used_memory();
    result_bytes = (after - before) / static_cast<double>(total);
    conn.close();
  }, asio::detached);
  io.run();
  return result_bytes;
}

int run_memory(const options& opts) {
  auto server = local_redis::start();
  if (!server) {
    fmt::print("  cannot start redis-server: {}\n", server.error().what());
    return 1;
  }
  const std::uint64_t total = opts.quick ? 20'000 : 100'000;
  try {
    const double reference = bytes_per_trace(server->unix_url(), writer::reference, total);
    const double compat = bytes_per_trace(server->unix_url(), writer::compat, total);
    const double sharded = bytes_per_trace(server->unix_url(), writer::sharded, total);
    fmt::print("  {} traces each, state + created_at + one metadata field\n", total);
    fmt::print("  reference writes   {:>7.1f} B/trace\n", reference);
    fmt::print("  tracewatch compat  {:>7.1f} B/trace\n", compat);
    fmt::print("  tracewatch sharded {:>7.1f} B/trace\n", sharded);
    add_summary({"Redis memory per trace, compat", fmt::format("{:.0f} B", compat),
                 fmt::format("reference {:.0f} B", reference),
                 fmt::format("{:.2f}x", compat / reference), "<= 1.00x",
                 compat <= reference});
    add_summary({"Redis memory per trace, sharded", fmt::format("{:.0f} B", sharded),
                 fmt::format("reference {:.0f} B", reference),
                 fmt::format("{:.2f}x", sharded / reference), "<= 1.25x",
                 sharded <= reference * 1.25});
  } catch (const std::exception& e) {
    fmt::print("  memory benchmark failed: {}\n", e.what());
    return 1;
  }
  return 0;
}

const suite_registration memory_suite({"memory",
                                       "Redis memory per trace: reference writes, compat, "
                                       "sharded",
                                       run_memory});

}  // namespace
}  // namespace tracewatch::bench
