#include "tracewatch/layout.hpp"

#include <fmt/format.h>

namespace tracewatch {
namespace {

class compat_layout final : public layout {
 public:
  explicit compat_layout(std::string prefix)
      : layout(std::move(prefix)), index_key_(this->prefix() + ":traces:active") {}

  layout_kind kind() const noexcept override { return layout_kind::compat; }
  index_kind index() const noexcept override { return index_kind::set; }
  std::string trace_key(std::string_view id) const override {
    return fmt::format("{}:trace:{}", prefix(), id);
  }
  std::string index_key_for(std::string_view) const override { return index_key_; }
  std::uint32_t index_count() const noexcept override { return 1; }
  std::string index_key(std::uint32_t) const override { return index_key_; }
  std::string trace_key_prefix(std::uint32_t) const override { return prefix() + ":trace:"; }

 private:
  std::string index_key_;
};

class sharded_layout final : public layout {
 public:
  sharded_layout(std::string prefix, std::uint32_t shards)
      : layout(std::move(prefix)), shards_(shards) {}

  layout_kind kind() const noexcept override { return layout_kind::sharded; }
  index_kind index() const noexcept override { return index_kind::sorted_set; }
  std::string trace_key(std::string_view id) const override {
    return fmt::format("{}{}", trace_key_prefix(shard_of(id, shards_)), id);
  }
  std::string trace_key_prefix(std::uint32_t n) const override {
    return fmt::format("{}:trace:{{{}:{}}}:", prefix(), prefix(), n);
  }
  std::string index_key_for(std::string_view id) const override {
    return index_key(shard_of(id, shards_));
  }
  std::uint32_t index_count() const noexcept override { return shards_; }
  std::string index_key(std::uint32_t n) const override {
    return fmt::format("{}:traces:active:{{{}:{}}}", prefix(), prefix(), n);
  }

 private:
  std::uint32_t shards_;
};

}  // namespace

result<layout_kind> parse_layout_kind(std::string_view text) {
  if (text == "compat") return layout_kind::compat;
  if (text == "sharded") return layout_kind::sharded;
  return error(errc::invalid_argument,
               fmt::format("invalid layout '{}': use 'compat' or 'sharded'", text));
}

std::string_view to_string(layout_kind kind) noexcept {
  return kind == layout_kind::compat ? "compat" : "sharded";
}

result<void> validate(const registry_options& options) {
  constexpr std::size_t kMaxPrefixBytes = 64;
  if (options.prefix.empty() || options.prefix.size() > kMaxPrefixBytes) {
    return error(errc::invalid_argument,
                 fmt::format("invalid prefix '{}': use 1 to {} characters", options.prefix,
                             kMaxPrefixBytes));
  }
  for (char c : options.prefix) {
    // Braces would change the cluster hash tag; spaces and control
    // characters make keys hard to type in redis-cli.
    if (c <= ' ' || c > '~' || c == '{' || c == '}') {
      return error(errc::invalid_argument,
                   fmt::format("invalid prefix '{}': use printable characters other than "
                               "space, '{{' and '}}'",
                               options.prefix));
    }
  }
  if (options.failsafe_ttl.count() < 1) {
    return error(errc::invalid_argument,
                 fmt::format("invalid failsafe TTL {} s: use at least 1 s",
                             options.failsafe_ttl.count()));
  }
  if (options.terminal_ttl.count() < 1) {
    return error(errc::invalid_argument,
                 fmt::format("invalid terminal TTL {} s: use at least 1 s",
                             options.terminal_ttl.count()));
  }
  constexpr std::uint32_t kMaxShards = 16384;  // the number of cluster slots
  if (options.shards < 1 || options.shards > kMaxShards) {
    return error(errc::invalid_argument,
                 fmt::format("invalid shard count {}: use 1 to {}", options.shards, kMaxShards));
  }
  return {};
}

std::unique_ptr<layout> make_layout(const registry_options& options) {
  if (options.layout == layout_kind::sharded) {
    return std::make_unique<sharded_layout>(options.prefix, options.shards);
  }
  return std::make_unique<compat_layout>(options.prefix);
}

std::uint32_t shard_of(std::string_view id, std::uint32_t shards) noexcept {
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a 64-bit offset basis
  for (unsigned char c : id) {
    hash ^= c;
    hash *= 1099511628211ull;  // FNV-1a 64-bit prime
  }
  return static_cast<std::uint32_t>(hash % shards);
}

}  // namespace tracewatch
