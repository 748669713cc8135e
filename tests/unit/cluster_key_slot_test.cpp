// Key slots of Redis Cluster: CRC16 (XMODEM) and the hash-tag rules.

#include <gtest/gtest.h>

#include <array>
#include <string_view>

#include "tracewatch/layout.hpp"
#include "tracewatch/redis/crc16.hpp"

namespace tracewatch::redis {
namespace {

TEST(ClusterKeySlot, Crc16MatchesTheXmodemCheckValue) {
  // The check value of CRC-16/XMODEM over the ASCII digits 1 to 9.
  EXPECT_EQ(crc16("123456789"), 0x31C3);
}

TEST(ClusterKeySlot, Crc16OfEmptyInputIsZero) { EXPECT_EQ(crc16(""), 0); }

TEST(ClusterKeySlot, KnownKeysHashToTheirRedisSlots) {
  // Slots as `CLUSTER KEYSLOT` in Redis 7.0 reports them.
  EXPECT_EQ(key_slot("123456789"), 12739);
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot(""), 0);
  EXPECT_EQ(key_slot("{user1000}.following"), 3443);
  EXPECT_EQ(key_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(key_slot("foo{{bar}}zap"), 4015);
}

TEST(ClusterKeySlot, SameHashTagSharesASlot) {
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
}

TEST(ClusterKeySlot, EmptyHashTagHashesTheWholeKey) {
  EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}");
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % kClusterSlots);
}

TEST(ClusterKeySlot, TagEndsAtTheFirstClosingBrace) {
  EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
  EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");
}

TEST(ClusterKeySlot, UnclosedBraceHashesTheWholeKey) {
  EXPECT_EQ(hash_tag("foo{bar"), "foo{bar");
  EXPECT_EQ(hash_tag("foo}bar{"), "foo}bar{");
}

TEST(ClusterKeySlot, SlotStaysBelow16384) {
  const std::array<std::string_view, 4> keys = {"a", "zzzzzzzzzzzz", "\xff\xfe", "{}"};
  for (auto key : keys) EXPECT_LT(key_slot(key), kClusterSlots) << key;
}

TEST(ClusterKeySlot, ShardedTraceAndIndexShareSlot) {
  registry_options options;
  options.layout = layout_kind::sharded;
  auto keys = make_layout(options);
  const std::string_view id = "0190a0c4-8a1e-7c3b-9f00-0123456789ab";
  EXPECT_EQ(key_slot(keys->trace_key(id)), key_slot(keys->index_key_for(id)));
}

}  // namespace
}  // namespace tracewatch::redis
