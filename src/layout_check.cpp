#include "tracewatch/layout_check.hpp"

#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace tracewatch {
namespace {

// The stored shard count, or empty when the reply is not one.
std::optional<std::uint32_t> parse_shard_count(const redis::reply& stored) {
  if (!stored.is_string()) return std::nullopt;
  std::uint32_t count = 0;
  const char* end = stored.str.data() + stored.str.size();
  auto parsed = std::from_chars(stored.str.data(), end, count);
  if (parsed.ec != std::errc() || parsed.ptr != end || count == 0) return std::nullopt;
  return count;
}

}  // namespace

std::string shard_count_key(std::string_view prefix) {
  return fmt::format("{}:config:shards", prefix);
}

asio::awaitable<result<void>> async_check_layout(redis::client& client,
                                                 const registry_options& options) {
  if (auto valid = validate(options); !valid) co_return valid.error();

  if (options.layout == layout_kind::compat) {
    if (client.is_cluster()) {
      co_return error(errc::unsupported,
                      fmt::format("the compat layout cannot run on Redis Cluster: a trace key "
                                  "({0}:trace:<id>) and the index {0}:traces:active hash to "
                                  "different slots, so one script cannot update both; use "
                                  "--layout sharded",
                                  options.prefix));
    }
    co_return result<void>{};
  }

  // SET NX keeps the first writer's count; GET returns whichever count won.
  // Both go in one request to the key's node.
  const std::string key = shard_count_key(options.prefix);
  redis::request req;
  req.push("SET", key, options.shards, "NX");
  req.push("GET", key);
  auto replies = co_await client.async_exec(req, key);
  if (!replies) co_return replies.error();
  for (const auto& r : *replies) {
    if (r.is_error()) {
      co_return error(errc::server_error,
                      fmt::format("cannot read the shard count from {}: {}", key, r.str));
    }
  }

  const redis::reply& stored = replies->back();
  const std::optional<std::uint32_t> count = parse_shard_count(stored);
  if (!count) {
    co_return error(errc::layout_mismatch,
                    fmt::format("{} holds '{}', which is not a shard count; delete the key "
                                "only if no sharded traces exist under the prefix '{}'",
                                key, stored.str, options.prefix));
  }
  if (*count != options.shards) {
    co_return error(errc::layout_mismatch,
                    fmt::format("the sharded keyspace with prefix '{}' has {} shards (stored in "
                                "{}), but this client is configured for {}; use --shards {} so "
                                "that every client puts a trace in the same shard",
                                options.prefix, *count, key, options.shards, *count));
  }
  co_return result<void>{};
}

}  // namespace tracewatch
