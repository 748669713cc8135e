#include "runtime.hpp"

#include <cstdio>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "log_sink.hpp"
#include "tracewatch/layout_check.hpp"
#include "tracewatch/redis/cluster.hpp"

namespace tracewatch::cli {
namespace {

// Runs `body` on `conn`, or on a cluster client seeded from `config` when
// the server runs in cluster mode (INFO cluster reports cluster_enabled:1).
// A server that rejects INFO (an ACL) is treated as a single node.
asio::awaitable<int> run_on_deployment(
    redis::connection& conn, const redis::config& config, const logger& log,
    const std::function<asio::awaitable<int>(redis::client&)>& body) {
  auto cluster_mode = co_await redis::async_is_cluster(conn);
  if (!cluster_mode || !*cluster_mode) co_return co_await body(conn);

  redis::cluster_client cluster(conn.get_executor(), config, {}, log);
  cluster.start();
  auto ready = co_await cluster.async_wait_ready(config.connect_timeout);
  int code = kExitOk;
  if (!ready) {
    code = report_error(error(ready.error().code,
                              fmt::format("cannot read the slot map of the Redis Cluster at {}: {}",
                                          config.display_address(), ready.error().what())));
  } else {
    code = co_await body(cluster);
  }
  cluster.close();
  co_return code;
}

}  // namespace

int exit_code_for(const error& e) {
  if (e.code.category() != tracewatch_category()) return kExitFailure;
  switch (static_cast<errc>(e.code.value())) {
    case errc::invalid_argument:
    case errc::invalid_trace_id:
    case errc::reserved_field:
    case errc::limit_exceeded:
    case errc::invalid_url:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

int report_error(const error& e) {
  fmt::print(stderr, "tracewatch: {}\n", e.what());
  return exit_code_for(e);
}

result<registry_options> make_registry_options(const global_options& globals) {
  registry_options options;
  auto kind = parse_layout_kind(globals.layout);
  if (!kind) return kind.error();
  options.layout = *kind;
  options.prefix = globals.prefix;
  options.shards = globals.shards;
  if (auto valid = validate(options); !valid) return valid.error();
  return options;
}

int run_with_redis(const global_options& globals,
                   const std::function<asio::awaitable<int>(redis::client&)>& body) {
  auto config = redis::parse_url(globals.effective_redis_url());
  if (!config) return report_error(config.error());
  if (config->tls) {
    fmt::print(stderr, "tracewatch: cannot use rediss:// for {}: this build has no TLS "
                       "transport; use redis:// or unix://\n", config->display_address());
    return kExitUsage;
  }

  // One-shot commands report their own errors; connection chatter is only
  // logged when the user asks for a level.
  global_options quiet = globals;
  if (quiet.log_level.empty()) quiet.log_level = "error";
  asio::io_context io;
  redis::connection conn(io.get_executor(), *config, make_logger(quiet));
  conn.start();
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<int> {
        auto ready = co_await conn.async_wait_ready(config->connect_timeout);
        int code = kExitOk;
        if (!ready) {
          code = report_error(error(
              ready.error().code,
              fmt::format("cannot connect to Redis at {}: {}; start Redis there or pass "
                          "--redis URL",
                          config->display_address(), ready.error().what())));
        } else {
          code = co_await run_on_deployment(conn, *config, make_logger(quiet), body);
        }
        conn.close();
        co_return code;
      },
      asio::use_future);
  io.run();
  return future.get();
}

int run_with_layout(const global_options& globals, const registry_options& options,
                    const std::function<asio::awaitable<int>(redis::client&)>& body) {
  return run_with_redis(globals, [&](redis::client& client) -> asio::awaitable<int> {
    auto checked = co_await async_check_layout(client, options);
    if (!checked) {
      // The wrong layout or shard count for this deployment is a usage error.
      const int code = report_error(checked.error());
      const bool usage = checked.error() == errc::layout_mismatch ||
                         checked.error() == errc::unsupported;
      co_return usage ? kExitUsage : code;
    }
    co_return co_await body(client);
  });
}

void print_json(const boost::json::value& value) {
  std::cout << boost::json::serialize(value) << '\n';
}

}  // namespace tracewatch::cli
