// Key layouts: where a trace and its index entry live in Redis.
//
// `compat` is the reference keyspace, so that services written against it
// and tracewatch can share one Redis:
//   <prefix>:trace:<id>      hash: state, created_at, metadata…
//   <prefix>:traces:active   set of the ids of active traces
//
// `sharded` spreads traces over a fixed number of shards for Redis Cluster.
// A trace and its index entry share the shard's hash tag, so one script can
// touch both; the index is a sorted set scored by creation time in
// milliseconds, so a sweep reads only the overdue entries:
//   <prefix>:trace:{<prefix>:<shard>}:<id>
//   <prefix>:traces:active:{<prefix>:<shard>}
// The shard count is stored in <prefix>:config:shards on first use.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tracewatch/error.hpp"

namespace tracewatch {

enum class layout_kind { compat, sharded };
enum class index_kind { set, sorted_set };

// Parses "compat" or "sharded"; errc::invalid_argument otherwise.
result<layout_kind> parse_layout_kind(std::string_view text);
std::string_view to_string(layout_kind kind) noexcept;

// Settings shared by the registry and the sweeper. The defaults are the
// reference module's.
struct registry_options {
  std::string prefix = "sg";
  layout_kind layout = layout_kind::compat;
  std::uint32_t shards = 256;  // sharded layout only
  std::chrono::seconds failsafe_ttl{86400};  // on create: the trace expires even if never finished
  std::chrono::seconds terminal_ttl{3600};   // after COMPLETED or ERRORED
};

// Checks the options: a non-empty printable prefix without '{' or '}', TTLs
// of at least one second, 1 to 16384 shards.
result<void> validate(const registry_options& options);

class layout {
 public:
  virtual ~layout() = default;

  virtual layout_kind kind() const noexcept = 0;
  virtual index_kind index() const noexcept = 0;

  // The hash of one trace. `id` is the canonical lowercase form.
  virtual std::string trace_key(std::string_view id) const = 0;
  // The index key that holds `id`.
  virtual std::string index_key_for(std::string_view id) const = 0;

  // The index keys, numbered 0 … index_count() - 1 (one in compat).
  virtual std::uint32_t index_count() const noexcept = 0;
  virtual std::string index_key(std::uint32_t n) const = 0;
  // The part of trace_key(id) before the id, for the ids of index `n`.
  virtual std::string trace_key_prefix(std::uint32_t n) const = 0;

  const std::string& prefix() const noexcept { return prefix_; }

 protected:
  explicit layout(std::string prefix) : prefix_(std::move(prefix)) {}

 private:
  std::string prefix_;
};

// Builds the layout the options name. The options must have passed validate().
std::unique_ptr<layout> make_layout(const registry_options& options);

// The shard of a canonical id in a layout of `shards` shards: FNV-1a over
// the id's text, so every client computes the same value.
std::uint32_t shard_of(std::string_view id, std::uint32_t shards) noexcept;

}  // namespace tracewatch
