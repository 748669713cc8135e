// Running a command against Redis: connection set-up from the global
// options, error reporting and exit codes.

#pragma once

#include <functional>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include "cli.hpp"
#include "tracewatch/error.hpp"
#include "tracewatch/layout.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch::cli {

// kExitUsage for errors in the caller's input, kExitFailure for the rest.
int exit_code_for(const error& e);

// Prints "tracewatch: <message>" to stderr and returns exit_code_for(e).
int report_error(const error& e);

// The registry options that the global options name (layout, prefix).
result<registry_options> make_registry_options(const global_options& globals);

// Parses the Redis URL of the global options, connects, waits until the
// connection is ready and runs `body` on it: on the connection, or on a
// redis::cluster_client when the server runs in cluster mode. Returns
// body's exit code, or reports the connection error.
int run_with_redis(const global_options& globals,
                   const std::function<asio::awaitable<int>(redis::client&)>& body);

// As run_with_redis(), after async_check_layout(): the compat layout on a
// Redis Cluster and a shard count that differs from the stored one end the
// command with kExitUsage before `body` runs.
int run_with_layout(const global_options& globals, const registry_options& options,
                    const std::function<asio::awaitable<int>(redis::client&)>& body);

// Prints a JSON value on one line to stdout.
void print_json(const boost::json::value& value);

}  // namespace tracewatch::cli
