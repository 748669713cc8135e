// The start-up check that a layout can run where the client points, and
// that every client of a sharded keyspace computes the same shard of an id.
//
// Run it once before a registry or a sweeper uses a client:
//   auto checked = co_await tracewatch::async_check_layout(client, options);
//   if (!checked) { /* report checked.error().what() and stop */ }
//   tracewatch::registry reg(client, options);

#pragma once

#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/layout.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {

// The key that stores the shard count of the sharded layout under `prefix`:
// "<prefix>:config:shards". It is a plain string with no TTL.
std::string shard_count_key(std::string_view prefix);

// Checks `options` against the deployment behind `client`:
//   - compat: on a Redis Cluster (client.is_cluster()) returns
//     errc::unsupported. The compat keys of a trace and the single index
//     hash to different slots, so one script cannot update both. Anywhere
//     else it succeeds without a request.
//   - sharded: stores options.shards in shard_count_key() unless a value is
//     there (SET NX), reads it back and returns errc::layout_mismatch, naming
//     both numbers, when it differs from options.shards. A value that is not
//     a shard count is errc::layout_mismatch too.
// Also returns errc::invalid_argument when the options fail validate(), and
// the client's connection errors. Nothing but the shard count key is written.
// `client` and `options` must stay valid until the call completes: bind a
// temporary to a variable before handing it to a coroutine that runs later.
asio::awaitable<result<void>> async_check_layout(redis::client& client,
                                                 const registry_options& options);

}  // namespace tracewatch
