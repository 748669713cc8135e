// The I/O-free parts of the cluster client: error classes, the slot map,
// the retry budget, the refresh schedule and request splitting.

#include <gtest/gtest.h>

#include <array>

#include "tracewatch/redis/detail/cluster_routing.hpp"

namespace tracewatch::redis::detail {
namespace {

using namespace std::chrono_literals;
using kind = cluster_error::kind;

reply integer(std::int64_t v) {
  reply r;
  r.type = reply::kind::integer;
  r.integer = v;
  return r;
}

reply text(std::string s) {
  reply r;
  r.type = reply::kind::string;
  r.str = std::move(s);
  return r;
}

reply array(std::vector<reply> elements) {
  reply r;
  r.type = reply::kind::array;
  r.elements = std::move(elements);
  return r;
}

reply node(std::string host, std::int64_t port) {
  return array({text(std::move(host)), integer(port), text("0123abcd")});
}

// A CLUSTER SLOTS reply of three masters with one replica each.
reply three_masters() {
  return array({
      array({integer(0), integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)}),
      array({integer(5461), integer(10922), node("127.0.0.1", 7001), node("127.0.0.1", 7004)}),
      array({integer(10923), integer(16383), node("127.0.0.1", 7002), node("127.0.0.1", 7005)}),
  });
}

// --- classify_error -------------------------------------------------------------

TEST(ClusterRouting, ClassifiesMoved) {
  auto e = classify_error("MOVED 3999 127.0.0.1:6381");
  EXPECT_EQ(e.type, kind::moved);
  EXPECT_EQ(e.slot, 3999);
  EXPECT_EQ(e.target, (node_address{"127.0.0.1", 6381}));
}

TEST(ClusterRouting, ClassifiesAsk) {
  auto e = classify_error("ASK 12182 10.0.0.2:7002");
  EXPECT_EQ(e.type, kind::ask);
  EXPECT_EQ(e.slot, 12182);
  EXPECT_EQ(e.target, (node_address{"10.0.0.2", 7002}));
}

TEST(ClusterRouting, MovedWithEmptyHostKeepsItEmpty) {
  auto e = classify_error("MOVED 1 :7001");
  EXPECT_EQ(e.type, kind::moved);
  EXPECT_EQ(e.target.host, "");
  EXPECT_EQ(e.target.port, 7001);
}

TEST(ClusterRouting, MovedToIpv6HostSplitsAtLastColon) {
  auto e = classify_error("MOVED 7 ::1:7001");
  EXPECT_EQ(e.target, (node_address{"::1", 7001}));
}

TEST(ClusterRouting, MalformedRedirectIsAnOrdinaryError) {
  EXPECT_EQ(classify_error("MOVED 99999 127.0.0.1:7000").type, kind::none);
  EXPECT_EQ(classify_error("MOVED 12 127.0.0.1").type, kind::none);
  EXPECT_EQ(classify_error("ASK x 127.0.0.1:7000").type, kind::none);
  EXPECT_EQ(classify_error("MOVED").type, kind::none);
}

TEST(ClusterRouting, ClassifiesRetryableErrors) {
  EXPECT_EQ(classify_error("TRYAGAIN Multiple keys request during rehashing of slot").type,
            kind::try_again);
  EXPECT_EQ(classify_error("CLUSTERDOWN The cluster is down").type, kind::cluster_down);
  EXPECT_EQ(classify_error("LOADING Redis is loading the dataset in memory").type, kind::loading);
}

TEST(ClusterRouting, OrdinaryErrorsAreNotClassified) {
  EXPECT_EQ(classify_error("ERR unknown command").type, kind::none);
  EXPECT_EQ(classify_error("WRONGTYPE Operation against a key").type, kind::none);
  EXPECT_EQ(classify_error("MOVEDX 1 127.0.0.1:7000").type, kind::none);
  EXPECT_EQ(classify_error("").type, kind::none);
}

// --- common_slot ------------------------------------------------------------------

TEST(ClusterRouting, CommonSlotOfTaggedKeys) {
  const std::array<std::string_view, 2> keys = {"sg:trace:{sg:7}:a", "sg:traces:active:{sg:7}"};
  auto slot = common_slot(keys);
  ASSERT_TRUE(slot);
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ(**slot, key_slot("sg:7"));
}

TEST(ClusterRouting, CommonSlotOfNoKeysIsEmpty) {
  auto slot = common_slot({});
  ASSERT_TRUE(slot);
  EXPECT_FALSE(slot->has_value());
}

TEST(ClusterRouting, KeysOfDifferentSlotsAreCrossSlot) {
  const std::array<std::string_view, 2> keys = {"foo", "bar"};
  auto slot = common_slot(keys);
  ASSERT_FALSE(slot);
  EXPECT_EQ(slot.error(), errc::cross_slot);
  EXPECT_NE(slot.error().what().find("'bar'"), std::string::npos);
}

// --- slot_map ----------------------------------------------------------------------

TEST(ClusterRouting, SlotMapFromClusterSlots) {
  auto map = slot_map::from_cluster_slots(three_masters(), "127.0.0.1");
  ASSERT_TRUE(map) << map.error().what();
  EXPECT_EQ(map->covered_slots(), kClusterSlots);
  EXPECT_EQ(map->master_of(0)->port, 7000);
  EXPECT_EQ(map->master_of(5460)->port, 7000);
  EXPECT_EQ(map->master_of(5461)->port, 7001);
  EXPECT_EQ(map->master_of(16383)->port, 7002);
}

TEST(ClusterRouting, SlotMapListsMastersBeforeReplicas) {
  auto map = slot_map::from_cluster_slots(three_masters(), "127.0.0.1");
  ASSERT_TRUE(map);
  auto nodes = map->nodes();
  ASSERT_EQ(nodes.size(), 6u);
  EXPECT_EQ(nodes[0].port, 7000);
  EXPECT_EQ(nodes[2].port, 7002);
  EXPECT_EQ(nodes[3].port, 7003);
  EXPECT_EQ(map->masters().size(), 3u);
  EXPECT_TRUE(map->contains({"127.0.0.1", 7005}));
  EXPECT_FALSE(map->contains({"127.0.0.1", 7006}));
}

TEST(ClusterRouting, SlotMapFillsUnknownHostWithReplyingHost) {
  reply r = array({array({integer(0), integer(16383), node("", 7000)})});
  auto map = slot_map::from_cluster_slots(r, "10.1.2.3");
  ASSERT_TRUE(map);
  EXPECT_EQ(*map->master_of(100), (node_address{"10.1.2.3", 7000}));
}

TEST(ClusterRouting, SlotMapLeavesUncoveredSlotsWithoutOwner) {
  reply r = array({array({integer(0), integer(99), node("127.0.0.1", 7000)})});
  auto map = slot_map::from_cluster_slots(r, "127.0.0.1");
  ASSERT_TRUE(map);
  EXPECT_EQ(map->covered_slots(), 100u);
  EXPECT_EQ(map->master_of(100), nullptr);
}

TEST(ClusterRouting, SlotMapRejectsMalformedReplies) {
  EXPECT_FALSE(slot_map::from_cluster_slots(text("nope"), "h"));
  EXPECT_FALSE(slot_map::from_cluster_slots(array({array({integer(0)})}), "h"));
  EXPECT_FALSE(slot_map::from_cluster_slots(
      array({array({integer(5), integer(2), node("127.0.0.1", 7000)})}), "h"));
  EXPECT_FALSE(slot_map::from_cluster_slots(
      array({array({integer(0), integer(16384), node("127.0.0.1", 7000)})}), "h"));
  EXPECT_FALSE(slot_map::from_cluster_slots(
      array({array({integer(0), integer(1), node("127.0.0.1", 70000)})}), "h"));
}

TEST(ClusterRouting, EmptyClusterSlotsGivesEmptyMap) {
  auto map = slot_map::from_cluster_slots(array({}), "127.0.0.1");
  ASSERT_TRUE(map);
  EXPECT_TRUE(map->empty());
}

TEST(ClusterRouting, AssignMovesOneSlot) {
  auto map = slot_map::from_cluster_slots(three_masters(), "127.0.0.1");
  ASSERT_TRUE(map);
  map->assign(100, {"127.0.0.1", 7001});
  EXPECT_EQ(map->master_of(100)->port, 7001);
  EXPECT_EQ(map->master_of(101)->port, 7000);
  map->assign(200, {"127.0.0.1", 7009});
  EXPECT_EQ(map->master_of(200)->port, 7009);
  EXPECT_EQ(map->masters().size(), 4u);
}

// --- retry_budget --------------------------------------------------------------------

TEST(ClusterRouting, RedirectsAreCapped) {
  retry_budget budget(2, 1000ms, 10ms, 100ms, std::chrono::steady_clock::now());
  EXPECT_TRUE(budget.take_redirect());
  EXPECT_TRUE(budget.take_redirect());
  EXPECT_FALSE(budget.take_redirect());
  EXPECT_EQ(budget.redirects(), 2u);
}

TEST(ClusterRouting, BackoffDoublesUpToTheMaximum) {
  const auto start = std::chrono::steady_clock::time_point{} + 1h;
  retry_budget budget(16, 100000ms, 10ms, 80ms, start);
  // Jitter 1 takes the full backoff.
  EXPECT_EQ(budget.next_delay(start, 1.0), 10ms);
  EXPECT_EQ(budget.next_delay(start, 1.0), 20ms);
  EXPECT_EQ(budget.next_delay(start, 1.0), 40ms);
  EXPECT_EQ(budget.next_delay(start, 1.0), 80ms);
  EXPECT_EQ(budget.next_delay(start, 1.0), 80ms);
  EXPECT_EQ(budget.retries(), 5u);
}

TEST(ClusterRouting, JitterZeroTakesHalfTheBackoff) {
  const auto start = std::chrono::steady_clock::time_point{} + 1h;
  retry_budget budget(16, 1000ms, 40ms, 400ms, start);
  EXPECT_EQ(budget.next_delay(start, 0.0), 20ms);
}

TEST(ClusterRouting, BudgetEndsRetries) {
  const auto start = std::chrono::steady_clock::time_point{} + 1h;
  retry_budget budget(16, 100ms, 10ms, 500ms, start);
  EXPECT_TRUE(budget.next_delay(start + 50ms, 1.0));  // 10 ms, ends at 60 ms
  EXPECT_FALSE(budget.next_delay(start + 90ms, 1.0));  // 20 ms would end at 110 ms
  EXPECT_EQ(budget.remaining(start + 90ms), 10ms);
  EXPECT_EQ(budget.remaining(start + 200ms), 0ms);
}

// --- next_refresh_at -----------------------------------------------------------------

TEST(ClusterRouting, FirstRequestedRefreshIsDueAtOnce) {
  using tp = std::chrono::steady_clock::time_point;
  EXPECT_EQ(next_refresh_at(tp::min(), true, 100ms, 15000ms), tp::min());
}

TEST(ClusterRouting, RequestedRefreshWaitsForTheMinimumInterval) {
  const auto last = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_EQ(next_refresh_at(last, true, 100ms, 15000ms), last + 100ms);
}

TEST(ClusterRouting, UnrequestedRefreshIsPeriodic) {
  const auto last = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_EQ(next_refresh_at(last, false, 100ms, 15000ms), last + 15000ms);
}

TEST(ClusterRouting, ZeroPeriodDisablesPeriodicRefresh) {
  const auto last = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_EQ(next_refresh_at(last, false, 100ms, 0ms), std::chrono::steady_clock::time_point::max());
}

// --- split_commands --------------------------------------------------------------------

TEST(ClusterRouting, SplitsAPipelinedRequest) {
  request req;
  req.push("HSET", "k", "f", "v");
  req.push("EXPIRE", "k", 60);
  req.push("PING");
  auto commands = split_commands(req.payload());
  ASSERT_TRUE(commands);
  ASSERT_EQ(commands->size(), 3u);
  EXPECT_EQ((*commands)[0], (std::vector<std::string_view>{"HSET", "k", "f", "v"}));
  EXPECT_EQ((*commands)[1], (std::vector<std::string_view>{"EXPIRE", "k", "60"}));
  EXPECT_EQ((*commands)[2], (std::vector<std::string_view>{"PING"}));
}

TEST(ClusterRouting, SplitKeepsBinaryArguments) {
  request req;
  req.push("SET", std::string_view("a\r\nb", 4), std::string_view("\0x", 2));
  auto commands = split_commands(req.payload());
  ASSERT_TRUE(commands);
  EXPECT_EQ((*commands)[0][1], std::string_view("a\r\nb", 4));
  EXPECT_EQ((*commands)[0][2], std::string_view("\0x", 2));
}

TEST(ClusterRouting, SplitRejectsMalformedPayloads) {
  EXPECT_FALSE(split_commands("PING\r\n"));
  EXPECT_FALSE(split_commands("*1\r\n$4\r\nPIN"));
  EXPECT_FALSE(split_commands("*1\r\n$99999999999999999999\r\nPING\r\n"));
  EXPECT_FALSE(split_commands("*1\r\n$4\r\nPINGxx"));
  EXPECT_FALSE(split_commands("*0\r\n"));
}

}  // namespace
}  // namespace tracewatch::redis::detail
