// The sharded layout on a 3-master cluster: the registry's lifecycle and the
// sweeper across every shard, and the layout check.

#include <fmt/format.h>

#include <set>
#include <thread>

#include "support/redis_cluster.hpp"
#include "tracewatch/layout_check.hpp"
#include "tracewatch/redis/crc16.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::testing {
namespace {

using namespace std::chrono_literals;

registry_options sharded(std::uint32_t shards = 256) {
  registry_options options;
  options.layout = layout_kind::sharded;
  options.shards = shards;
  return options;
}

// Ids that together cover every shard of `shards`.
std::vector<std::string> ids_covering_every_shard(std::uint32_t shards) {
  std::vector<std::string> ids;
  std::set<std::uint32_t> covered;
  while (covered.size() < shards) {
    std::string id = generate_trace_id();
    covered.insert(shard_of(id, shards));
    ids.push_back(std::move(id));
  }
  return ids;
}

class ClusterRegistry : public RedisClusterTest {
 protected:
  // The sum of ZCARD over every shard index, read on the masters directly.
  long long indexed_on_masters(const layout& keys) {
    long long total = 0;
    for (std::uint32_t n = 0; n < keys.index_count(); ++n) {
      const std::string key = keys.index_key(n);
      auto owner = cluster().master_of_slot(redis::key_slot(key));
      EXPECT_TRUE(owner);
      if (!owner) continue;
      auto card = cluster().command(*owner, {"ZCARD", key});
      EXPECT_TRUE(card);
      if (card) total += card->integer;
    }
    return total;
  }
};

TEST_F(ClusterRegistry, ShardsSpreadOverEveryMaster) {
  auto keys = make_layout(sharded());
  std::set<std::size_t> owners;
  for (std::uint32_t n = 0; n < keys->index_count(); ++n) {
    owners.insert(cluster().master_of_slot(redis::key_slot(keys->index_key(n))).value());
  }
  EXPECT_EQ(owners.size(), 3u);
}

TEST_F(ClusterRegistry, LifecycleAcrossAllShards) {
  registry reg(client(), sharded());
  const auto ids = ids_covering_every_shard(256);

  // Create everything, advance everything, complete every other trace, in
  // one coroutine; the first failure is returned as text.
  std::size_t completed = 0;
  auto failure = run([&]() -> asio::awaitable<std::string> {
    const metadata fields = {{"platform", "web"}};
    for (const auto& id : ids) {
      auto created = co_await reg.async_create(id, "RECEIVED", fields);
      if (!created) co_return "create: " + created.error().what();
    }
    for (const auto& id : ids) {
      auto advanced = co_await reg.async_advance(id, "INFERENCE");
      if (!advanced) co_return "advance: " + advanced.error().what();
      if (*advanced != "RECEIVED") co_return "advance returned " + *advanced;
    }
    for (std::size_t i = 0; i < ids.size(); i += 2, ++completed) {
      auto done = co_await reg.async_complete(ids[i]);
      if (!done) co_return "complete: " + done.error().what();
      if (!done->applied) co_return "complete not applied to " + ids[i];
    }
    co_return std::string();
  });
  ASSERT_EQ(failure, "");
  const std::size_t active = ids.size() - completed;

  auto count = run([&]() { return reg.async_count_active(); });
  ASSERT_TRUE(count) << count.error().what();
  EXPECT_EQ(*count, active);
  EXPECT_EQ(indexed_on_masters(reg.keys()), static_cast<long long>(active));

  auto info = run([&]() { return reg.async_get(ids[1]); });
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(info->state, "INFERENCE");
  EXPECT_EQ(info->metadata.at("platform"), "web");

  // Listing walks every shard on every node.
  std::set<std::string> listed;
  auto listing = run([&]() -> asio::awaitable<std::string> {
    std::string cursor = "0";
    do {
      auto page = co_await reg.async_list_active(cursor, 50);
      if (!page) co_return page.error().what();
      listed.insert(page->ids.begin(), page->ids.end());
      cursor = page->cursor;
    } while (cursor != "0");
    co_return std::string();
  });
  ASSERT_EQ(listing, "");
  EXPECT_EQ(listed.size(), active);

  auto stats = run([&]() { return reg.async_stats(); });
  ASSERT_TRUE(stats) << stats.error().what();
  EXPECT_EQ(stats->active, active);
  EXPECT_EQ(stats->by_state["INFERENCE"], active);
}

TEST_F(ClusterRegistry, SweepOrphansEveryShard) {
  const auto options = sharded();
  registry reg(client(), options);
  const auto ids = ids_covering_every_shard(256);
  auto failure = run([&]() -> asio::awaitable<std::string> {
    for (const auto& id : ids) {
      auto created = co_await reg.async_create(id, "INFERENCE");
      if (!created) co_return created.error().what();
    }
    // Finish two first: the sweep must leave them as they are.
    if (auto done = co_await reg.async_complete(ids[0]); !done) co_return done.error().what();
    if (auto done = co_await reg.async_fail(ids[1], "worker gave up"); !done) {
      co_return done.error().what();
    }
    co_return std::string();
  });
  ASSERT_EQ(failure, "");

  // With a 1 ms threshold every unfinished trace is an orphan.
  std::this_thread::sleep_for(5ms);
  sweep_options sweep;
  sweep.threshold = 1ms;
  sweep.batch_size = 7;  // several steps per shard
  sweeper s(client(), options, sweep);
  auto summary = run([&]() { return s.async_sweep(); });
  ASSERT_TRUE(summary) << summary.error().what();
  EXPECT_EQ(summary->orphaned, ids.size() - 2);
  EXPECT_EQ(summary->malformed, 0u);
  EXPECT_EQ(indexed_on_masters(reg.keys()), 0);

  auto completed = run([&]() { return reg.async_get(ids[0]); });
  ASSERT_TRUE(completed);
  EXPECT_EQ(completed->state, "COMPLETED");
  auto orphan = run([&]() { return reg.async_get(ids[2]); });
  ASSERT_TRUE(orphan);
  EXPECT_EQ(orphan->state, "ERRORED");
  EXPECT_EQ(orphan->error, "orphaned");
}

// --- Layout check --------------------------------------------------------------------

class ClusterLayout : public RedisClusterTest {};

TEST_F(ClusterLayout, CompatIsRejectedOnACluster) {
  registry_options compat;
  auto checked = run([&]() { return async_check_layout(client(), compat); });
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), errc::unsupported);
  EXPECT_NE(checked.error().what().find("--layout sharded"), std::string::npos);
}

// The options live in named variables: the check keeps a reference to them
// until it completes.
TEST_F(ClusterLayout, ShardCountIsStoredOnFirstUse) {
  const auto options = sharded(64);
  auto checked = run([&]() { return async_check_layout(client(), options); });
  ASSERT_TRUE(checked) << checked.error().what();
  const std::string key = shard_count_key("sg");
  auto owner = cluster().master_of_slot(redis::key_slot(key)).value();
  EXPECT_EQ(cluster().command(owner, {"GET", key})->str, "64");
  EXPECT_EQ(cluster().command(owner, {"TTL", key})->integer, -1);
  // The same count again passes.
  EXPECT_TRUE(run([&]() { return async_check_layout(client(), options); }));
}

TEST_F(ClusterLayout, ShardCountMismatchNamesBothCounts) {
  const auto first = sharded(64);
  const auto second = sharded(256);
  ASSERT_TRUE(run([&]() { return async_check_layout(client(), first); }));
  auto checked = run([&]() { return async_check_layout(client(), second); });
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), errc::layout_mismatch);
  EXPECT_NE(checked.error().what().find("64 shards"), std::string::npos) << checked.error().what();
  EXPECT_NE(checked.error().what().find("256"), std::string::npos) << checked.error().what();
}

TEST_F(ClusterLayout, ForeignShardCountValueIsAMismatch) {
  const std::string key = shard_count_key("sg");
  redis::request req;
  req.push("SET", key, "lots");
  ASSERT_TRUE(run([&]() { return client().async_exec(req, key); }));
  const auto options = sharded();
  auto checked = run([&]() { return async_check_layout(client(), options); });
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), errc::layout_mismatch);
  EXPECT_NE(checked.error().what().find("'lots'"), std::string::npos);
}

// --- The same check on one node ------------------------------------------------------

class LayoutCheck : public RedisClientTest {};

TEST_F(LayoutCheck, CompatOnOneNodePassesWithoutWriting) {
  const registry_options compat;
  auto checked = run([&]() { return async_check_layout(conn(), compat); });
  ASSERT_TRUE(checked) << checked.error().what();
  EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
}

TEST_F(LayoutCheck, ShardedOnOneNodeDetectsMismatch) {
  const auto first = sharded(16);
  const auto second = sharded(32);
  ASSERT_TRUE(run([&]() { return async_check_layout(conn(), first); }));
  auto checked = run([&]() { return async_check_layout(conn(), second); });
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), errc::layout_mismatch);
}

TEST_F(LayoutCheck, InvalidOptionsAreRejectedBeforeAnyRequest) {
  const auto invalid = sharded(0);
  auto checked = run([&]() { return async_check_layout(conn(), invalid); });
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), errc::invalid_argument);
  EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
}

}  // namespace
}  // namespace tracewatch::testing
