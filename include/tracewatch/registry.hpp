// The trace registry: create a trace under a failsafe TTL, move it through
// its states, finish it, read it, and list the active ones.
//
// Every state change is one Lua script, so it is atomic inside Redis: the
// first terminal state wins, and a sweep never overwrites a finished trace.
// Timestamps (created_at, updated_at, finished_at) come from the Redis
// server's TIME and are written as decimal Unix seconds with six fraction
// digits, the format the reference module's float() reads.
//
// Example:
//   tracewatch::registry reg(conn);  // compat layout, prefix "sg"
//   auto id = tracewatch::generate_trace_id();
//   auto created = co_await reg.async_create(id, "RECEIVED", {{"platform", "web"}});
//   co_await reg.async_advance(id, "INFERENCE");
//   auto done = co_await reg.async_complete(id);
//   // done->applied == true, done->state == "COMPLETED"
//
// Coroutine arguments are taken by value, so a call may be returned from a
// lambda or stored before it is awaited without dangling.
//
// Thread safety: a registry is as thread-safe as its client; it holds no
// mutable state of its own. Cancelling an awaiting coroutine after its
// script was sent does not undo the script.

#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/layout.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/validation.hpp"

namespace tracewatch {

// The outcome of complete() or fail().
struct finish_outcome {
  bool applied = false;        // true when this call set the terminal state
  std::string state;           // the terminal state the trace is in now
  std::string previous_state;  // the state before this call (empty when not applied)
};

// One trace as stored.
struct trace_info {
  std::string id;
  std::string state;  // empty when the hash has no state field
  std::optional<double> created_at;   // Unix seconds; empty when missing or not a number
  std::optional<double> updated_at;
  std::optional<double> finished_at;
  std::string error;                  // the failure reason, if any
  std::map<std::string, std::string> metadata;  // every other field
  std::optional<std::chrono::seconds> ttl;      // empty when the key has no TTL
};

// One page of active trace ids. Pass `cursor` back to get the next page;
// "0" marks the end, as with SCAN. A trace may appear twice across pages.
struct trace_page {
  std::vector<std::string> ids;
  std::string cursor;
};

// Active traces: how many, by state, and the oldest.
struct registry_stats {
  std::uint64_t active = 0;
  std::map<std::string, std::uint64_t> by_state;  // "" counts traces without a state
  std::uint64_t missing = 0;                      // index entries whose hash is gone
  std::optional<double> oldest_age_s;
};

class registry {
 public:
  // `client` must outlive the registry. The options must pass validate();
  // the constructor throws std::invalid_argument otherwise.
  explicit registry(redis::client& client, registry_options options = {});

  const registry_options& options() const noexcept { return options_; }
  const tracewatch::layout& keys() const noexcept { return *layout_; }

  // Registers a trace: HSET of state, created_at (server TIME) and the
  // metadata, EXPIRE with the failsafe TTL, and the id added to the index,
  // all in one script. Returns created_at. `state` may not be terminal.
  // Errors: invalid_trace_id, invalid_argument, reserved_field,
  // limit_exceeded (nothing written); trace_exists (nothing changed);
  // connection errors from the client.
  asio::awaitable<result<double>> async_create(std::string id, std::string state,
                                               metadata fields = {});

  // Moves a trace to a non-terminal state and writes updated_at. Returns the
  // previous state. Errors: trace_not_found; already_terminal (with the
  // terminal state in the message); input and connection errors.
  asio::awaitable<result<std::string>> async_advance(std::string id, std::string state);

  // Sets COMPLETED and finished_at, applies the terminal TTL and removes the
  // id from the index. When the trace is finished already, nothing changes
  // and the outcome says which state won (applied == false).
  // Errors: trace_not_found (the id is still removed from the index);
  // input and connection errors.
  asio::awaitable<result<finish_outcome>> async_complete(std::string id);

  // As async_complete(), with ERRORED and `error` set to `reason` (or
  // "failed" when empty).
  asio::awaitable<result<finish_outcome>> async_fail(std::string id,
                                                     std::string reason = {});

  // Reads every field and the remaining TTL. Errors: trace_not_found.
  asio::awaitable<result<trace_info>> async_get(std::string id);

  // The number of ids in the index (all shards).
  asio::awaitable<result<std::uint64_t>> async_count_active();

  // One page of ids from the index, about `count` of them.
  asio::awaitable<result<trace_page>> async_list_active(std::string cursor = "0",
                                                        std::uint32_t count = 100);

  // Scans the whole index in batches and tallies states and ages.
  asio::awaitable<result<registry_stats>> async_stats();

 private:
  asio::awaitable<result<finish_outcome>> async_finish(std::string id, std::string state,
                                                       std::string reason);

  redis::client& client_;
  registry_options options_;
  std::unique_ptr<tracewatch::layout> layout_;
  std::string index_kind_;  // "set" or "zset", as the scripts expect
};

// Parses a decimal Unix-seconds timestamp such as "1764876000.123456".
// Returns empty for anything else (empty text, "nan", trailing bytes).
std::optional<double> parse_timestamp(std::string_view text) noexcept;

// Parses "K=V" into a field and value; errc::invalid_argument when there is
// no '='. The value may contain further '=' characters.
result<std::pair<std::string, std::string>> parse_field_assignment(std::string_view text);

}  // namespace tracewatch
