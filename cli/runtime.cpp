#include "runtime.hpp"

#include <cstdio>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "log_sink.hpp"

namespace tracewatch::cli {

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
  if (auto valid = validate(options); !valid) return valid.error();
  return options;
}

int run_with_redis(const global_options& globals,
                   const std::function<asio::awaitable<int>(redis::client&)>& body) {
  auto config = redis::parse_url(globals.effective_redis_url());
  if (!config) return report_error(config.error());

  asio::io_context io;
  redis::connection conn(io.get_executor(), *config, make_logger(globals));
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
          code = co_await body(conn);
        }
        conn.close();
        co_return code;
      },
      asio::use_future);
  io.run();
  return future.get();
}

void print_json(const boost::json::value& value) {
  std::cout << boost::json::serialize(value) << '\n';
}

}  // namespace tracewatch::cli
