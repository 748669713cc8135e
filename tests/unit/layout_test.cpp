#include <gtest/gtest.h>

#include "tracewatch/layout.hpp"

namespace tracewatch {
namespace {

constexpr std::string_view kId = "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";

TEST(CompatLayout, UsesReferenceKeys) {
  registry_options options;
  auto keys = make_layout(options);
  EXPECT_EQ(keys->trace_key(kId), "sg:trace:0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b");
  EXPECT_EQ(keys->index_key_for(kId), "sg:traces:active");
  EXPECT_EQ(keys->index_count(), 1u);
  EXPECT_EQ(keys->index(), index_kind::set);
}

TEST(CompatLayout, HonoursPrefix) {
  registry_options options;
  options.prefix = "edge";
  auto keys = make_layout(options);
  EXPECT_EQ(keys->trace_key(kId), "edge:trace:0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b");
  EXPECT_EQ(keys->index_key(0), "edge:traces:active");
  EXPECT_EQ(keys->trace_key_prefix(0) + std::string(kId), keys->trace_key(kId));
}

TEST(ShardedLayout, TraceAndIndexShareHashTag) {
  registry_options options;
  options.layout = layout_kind::sharded;
  auto keys = make_layout(options);
  const std::uint32_t shard = shard_of(kId, options.shards);
  const std::string tag = "{sg:" + std::to_string(shard) + "}";
  EXPECT_NE(keys->trace_key(kId).find(tag), std::string::npos);
  EXPECT_NE(keys->index_key_for(kId).find(tag), std::string::npos);
  EXPECT_EQ(keys->index_key_for(kId), keys->index_key(shard));
  EXPECT_EQ(keys->trace_key_prefix(shard) + std::string(kId), keys->trace_key(kId));
  EXPECT_EQ(keys->index(), index_kind::sorted_set);
  EXPECT_EQ(keys->index_count(), 256u);
}

TEST(ShardedLayout, SpreadsIdsOverShards) {
  std::vector<int> hits(16, 0);
  for (int i = 0; i < 1600; ++i) {
    auto id = "0190b3c4-5d6e-7f80-9a1b-" + std::to_string(100000000000 + i);
    ++hits[shard_of(id, 16)];
  }
  for (int count : hits) EXPECT_GT(count, 0);
}

TEST(RegistryOptions, RejectsBadValues) {
  struct bad_case {
    std::string name;
    registry_options options;
  };
  std::vector<bad_case> cases;
  cases.push_back({"empty prefix", {}});
  cases.back().options.prefix = "";
  cases.push_back({"prefix with brace", {}});
  cases.back().options.prefix = "a{b";
  cases.push_back({"prefix with space", {}});
  cases.back().options.prefix = "a b";
  cases.push_back({"zero failsafe TTL", {}});
  cases.back().options.failsafe_ttl = std::chrono::seconds(0);
  cases.push_back({"zero terminal TTL", {}});
  cases.back().options.terminal_ttl = std::chrono::seconds(0);
  cases.push_back({"zero shards", {}});
  cases.back().options.shards = 0;
  cases.push_back({"too many shards", {}});
  cases.back().options.shards = 16385;
  for (const auto& c : cases) {
    auto valid = validate(c.options);
    ASSERT_FALSE(valid) << c.name;
    EXPECT_EQ(valid.error(), errc::invalid_argument) << c.name;
  }
}

TEST(RegistryOptions, DefaultsFollowReference) {
  registry_options options;
  EXPECT_EQ(options.prefix, "sg");
  EXPECT_EQ(options.failsafe_ttl, std::chrono::seconds(86400));
  EXPECT_EQ(options.terminal_ttl, std::chrono::seconds(3600));
  EXPECT_TRUE(validate(options));
}

TEST(LayoutKind, ParsesNames) {
  EXPECT_EQ(parse_layout_kind("compat").value(), layout_kind::compat);
  EXPECT_EQ(parse_layout_kind("sharded").value(), layout_kind::sharded);
  EXPECT_FALSE(parse_layout_kind("Compat"));
}

}  // namespace
}  // namespace tracewatch
