// redis::cluster_client against a private 3-master cluster with one replica
// per master: routing by key slot, pipelines, scripts, MOVED and ASK.

#include <fmt/format.h>

#include <array>

#include "support/redis_cluster.hpp"
#include "tracewatch/redis/crc16.hpp"

namespace tracewatch::testing {
namespace {

using namespace std::chrono_literals;

class ClusterClient : public RedisClusterTest {
 protected:
  // The periodic refresh is off, so that only MOVED can update the map.
  redis::cluster_options client_options() const override {
    redis::cluster_options options;
    options.refresh_interval = 0ms;
    return options;
  }

  result<std::vector<redis::reply>> exec(const redis::request& req, std::string_view key) {
    return run([&]() { return client().async_exec(req, key); });
  }

  // The cluster index of the node that stores `key`, as GET on each master
  // shows.
  std::optional<std::size_t> node_holding(const std::string& key) {
    for (std::size_t index : cluster().masters()) {
      auto exists = cluster().command(index, {"EXISTS", key});
      if (exists && exists->integer == 1) return index;
    }
    return std::nullopt;
  }

  // Moves the empty-or-not `slot` from its master to `target` the way
  // redis-cli does: IMPORTING, MIGRATING, MIGRATE of its keys, then NODE.
  void begin_migration(std::uint16_t slot, std::size_t source, std::size_t target) {
    auto source_id = cluster().node_id(source).value();
    auto target_id = cluster().node_id(target).value();
    const auto s = std::to_string(slot);
    ASSERT_EQ(cluster().command(target, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id})->str, "OK");
    ASSERT_EQ(cluster().command(source, {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id})->str, "OK");
  }
  void migrate_key(std::size_t source, std::size_t target, const std::string& key) {
    auto moved = cluster().command(source, {"MIGRATE", "127.0.0.1",
                                            std::to_string(cluster().node(target).port()), key,
                                            "0", "5000"});
    ASSERT_TRUE(moved);
    ASSERT_EQ(moved->str, "OK");
  }
  void finish_migration(std::uint16_t slot, std::size_t target) {
    auto target_id = cluster().node_id(target).value();
    for (std::size_t index : cluster().masters()) {
      auto set = cluster().command(index, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", target_id});
      ASSERT_TRUE(set);
      ASSERT_EQ(set->str, "OK");
    }
  }
  std::size_t another_master(std::size_t index) {
    for (std::size_t m : cluster().masters()) {
      if (m != index) return m;
    }
    return index;
  }
};

TEST_F(ClusterClient, RoutesKeysToSlotMasters) {
  for (int i = 0; i < 60; ++i) {
    const std::string key = fmt::format("key:{}", i);
    redis::request req;
    req.push("SET", key, i);
    auto replies = exec(req, key);
    ASSERT_TRUE(replies) << replies.error().what();
    ASSERT_EQ((*replies)[0].str, "OK");
    auto expected = cluster().master_of_slot(redis::key_slot(key));
    ASSERT_TRUE(expected) << expected.error().what();
    EXPECT_EQ(node_holding(key), *expected) << key;
  }
  EXPECT_EQ(client().stats().moved, 0u);
}

TEST_F(ClusterClient, PipelinedRequestOnOneSlotKeepsReplyOrder) {
  redis::request req;
  req.push("HSET", "{t}:a", "f", "v");
  req.push("EXPIRE", "{t}:a", 60);
  req.push("HGET", "{t}:a", "f");
  req.push("INCR", "{t}:b");
  auto replies = exec(req, "{t}:a");
  ASSERT_TRUE(replies) << replies.error().what();
  ASSERT_EQ(replies->size(), 4u);
  EXPECT_EQ((*replies)[0].integer, 1);
  EXPECT_EQ((*replies)[1].integer, 1);
  EXPECT_EQ((*replies)[2].str, "v");
  EXPECT_EQ((*replies)[3].integer, 1);
}

TEST_F(ClusterClient, KeylessCommandRunsOnAnyNode) {
  redis::request req;
  req.push("TIME");
  req.push("PING");
  auto replies = exec(req, "");
  ASSERT_TRUE(replies) << replies.error().what();
  EXPECT_EQ((*replies)[0].elements.size(), 2u);
  EXPECT_EQ((*replies)[1].str, "PONG");
}

TEST_F(ClusterClient, ErrorRepliesStayValues) {
  redis::request req;
  req.push("SET", "k", "text");
  req.push("INCR", "k");
  auto replies = exec(req, "k");
  ASSERT_TRUE(replies) << replies.error().what();
  EXPECT_TRUE((*replies)[1].is_error());
}

TEST_F(ClusterClient, ScriptRunsOnTheMasterOfItsKeys) {
  redis::script s("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[2])");
  const std::array<std::string_view, 2> keys = {"{s}:one", "{s}:two"};
  const std::array<std::string_view, 1> args = {"hello"};
  auto r = run([&]() { return client().async_eval(s, keys, args); });
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_TRUE(r->is_nil());
  EXPECT_EQ(node_holding("{s}:one"), cluster().master_of_slot(redis::key_slot("s")).value());
}

TEST_F(ClusterClient, CrossSlotScriptIsRejectedBeforeSending) {
  redis::script s("redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 1)");
  const std::array<std::string_view, 2> keys = {"foo", "bar"};
  auto r = run([&]() { return client().async_eval(s, keys, {}); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::cross_slot);
  EXPECT_EQ(node_holding("foo"), std::nullopt);
}

TEST_F(ClusterClient, ScriptErrorIsServerError) {
  redis::script s("return redis.error_reply('ERR boom')");
  const std::array<std::string_view, 1> keys = {"k"};
  auto r = run([&]() { return client().async_eval(s, keys, {}); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::server_error);
  EXPECT_NE(r.error().what().find("boom"), std::string::npos);
}

TEST_F(ClusterClient, ScriptIsSentAgainAfterScriptFlush) {
  redis::script s("return ARGV[1]");
  const std::array<std::string_view, 1> args = {"x"};
  for (const char* key : {"a", "b", "c", "d"}) {
    const std::array<std::string_view, 1> keys = {key};
    ASSERT_TRUE(run([&]() { return client().async_eval(s, keys, args); }));
  }
  on_every_master({"SCRIPT", "FLUSH"});
  for (const char* key : {"a", "b", "c", "d"}) {
    const std::array<std::string_view, 1> keys = {key};
    auto r = run([&]() { return client().async_eval(s, keys, args); });
    ASSERT_TRUE(r) << r.error().what();
    EXPECT_EQ(r->str, "x");
  }
}

TEST_F(ClusterClient, FollowsMovedAfterASlotMoves) {
  const std::string key = "moved-key";
  const std::uint16_t slot = redis::key_slot(key);
  redis::request set;
  set.push("SET", key, "before");
  ASSERT_TRUE(exec(set, key));
  const std::size_t source = cluster().master_of_slot(slot).value();
  const std::size_t target = another_master(source);

  begin_migration(slot, source, target);
  migrate_key(source, target, key);
  finish_migration(slot, target);

  redis::request get;
  get.push("GET", key);
  auto replies = exec(get, key);
  ASSERT_TRUE(replies) << replies.error().what();
  EXPECT_EQ((*replies)[0].str, "before");
  EXPECT_EQ(client().stats().moved, 1u);
  EXPECT_EQ(client().master_for(key), fmt::format("127.0.0.1:{}", cluster().node(target).port()));
}

TEST_F(ClusterClient, FollowsAskForKeysAlreadyMigrated) {
  // Two keys of one slot; only the first has moved when the request comes.
  const std::string moved = "{ask}:moved";
  const std::string stayed = "{ask}:stayed";
  const std::uint16_t slot = redis::key_slot(moved);
  redis::request set;
  set.push("SET", moved, "m");
  set.push("SET", stayed, "s");
  ASSERT_TRUE(exec(set, moved));
  const std::size_t source = cluster().master_of_slot(slot).value();
  const std::size_t target = another_master(source);

  begin_migration(slot, source, target);
  migrate_key(source, target, moved);

  redis::request get;
  get.push("GET", stayed);
  get.push("GET", moved);
  get.push("APPEND", stayed, "!");
  auto replies = exec(get, moved);
  ASSERT_TRUE(replies) << replies.error().what();
  ASSERT_EQ(replies->size(), 3u);
  EXPECT_EQ((*replies)[0].str, "s");
  EXPECT_EQ((*replies)[1].str, "m");
  EXPECT_EQ((*replies)[2].integer, 2);
  EXPECT_EQ(client().stats().ask, 1u);
  EXPECT_EQ(client().stats().moved, 0u);

  migrate_key(source, target, stayed);
  finish_migration(slot, target);
}

TEST_F(ClusterClient, ScriptFollowsAskToTheImportingNode) {
  const std::string key = "{script-ask}:k";
  const std::uint16_t slot = redis::key_slot(key);
  const std::size_t source = cluster().master_of_slot(slot).value();
  const std::size_t target = another_master(source);
  begin_migration(slot, source, target);

  // The key does not exist on the source, so the source replies with ASK.
  redis::script s("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])");
  const std::array<std::string_view, 1> keys = {key};
  const std::array<std::string_view, 1> args = {"v"};
  auto r = run([&]() { return client().async_eval(s, keys, args); });
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->str, "v");
  EXPECT_EQ(client().stats().ask, 1u);

  // Only the node that owns the slot runs EXISTS without ASKING.
  finish_migration(slot, target);
  EXPECT_EQ(node_holding(key), target);
}

TEST_F(ClusterClient, MultiKeyScriptDuringMigrationRetriesUntilDone) {
  // One key on each side of a migration: the nodes reply TRYAGAIN until the
  // slot is handed over, and the client retries within its budget.
  const std::string a = "{retry}:a";
  const std::string b = "{retry}:b";
  const std::uint16_t slot = redis::key_slot(a);
  redis::request set;
  set.push("SET", a, "1");
  set.push("SET", b, "2");
  ASSERT_TRUE(exec(set, a));
  const std::size_t source = cluster().master_of_slot(slot).value();
  const std::size_t target = another_master(source);
  begin_migration(slot, source, target);
  migrate_key(source, target, a);

  redis::script s("return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])");
  const std::array<std::string_view, 2> keys = {a, b};
  auto call = asio::co_spawn(io(), client().async_eval(s, keys, {}), asio::use_future);
  // Let the call meet TRYAGAIN a few times, then finish the migration.
  while (client().stats().retries < 2) io().run_one_for(10ms);
  migrate_key(source, target, b);
  finish_migration(slot, target);
  while (call.wait_for(0s) != std::future_status::ready) io().run_one_for(10ms);
  auto r = call.get();
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(r->str, "12");
}

TEST_F(ClusterClient, RetryBudgetEndsInClusterDown) {
  const std::string a = "{stuck}:a";
  const std::string b = "{stuck}:b";
  const std::uint16_t slot = redis::key_slot(a);
  redis::request set;
  set.push("SET", a, "1");
  set.push("SET", b, "2");
  ASSERT_TRUE(exec(set, a));
  const std::size_t source = cluster().master_of_slot(slot).value();
  const std::size_t target = another_master(source);
  begin_migration(slot, source, target);
  migrate_key(source, target, a);

  // A client with a short budget, so that the test does not wait 5 s.
  redis::cluster_options options;
  options.retry_budget = 300ms;
  redis::cluster_client impatient(io().get_executor(),
                                  redis::parse_url(cluster().seed_url()).value(), options);
  impatient.start();
  redis::script s("return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])");
  const std::array<std::string_view, 2> keys = {a, b};
  auto r = run([&]() { return impatient.async_eval(s, keys, {}); });
  impatient.close();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::cluster_down);
  EXPECT_NE(r.error().what().find("TRYAGAIN"), std::string::npos) << r.error().what();

  migrate_key(source, target, b);
  finish_migration(slot, target);
}

TEST_F(ClusterClient, RefreshReadsTheMapAgain) {
  auto refreshed = run([&]() { return client().async_refresh(); });
  ASSERT_TRUE(refreshed) << refreshed.error().what();
  EXPECT_GE(client().stats().refreshes, 2u);
  EXPECT_FALSE(client().master_for("anything").empty());
}

TEST_F(ClusterClient, DetectsClusterMode) {
  auto detected = run([&]() { return redis::async_is_cluster(client()); });
  ASSERT_TRUE(detected) << detected.error().what();
  EXPECT_TRUE(*detected);
}

// --- Against a server without cluster support ----------------------------------------

class ClusterClientOnPlainRedis : public RedisClientTest {};

TEST_F(ClusterClientOnPlainRedis, WaitReadyReportsMissingClusterSupport) {
  auto seed = redis::parse_url(server().unix_url()).value();
  redis::cluster_client cluster(io().get_executor(), seed);
  cluster.start();
  auto ready = run([&]() { return cluster.async_wait_ready(10s); });
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error(), errc::unsupported);
  EXPECT_NE(ready.error().what().find("cluster"), std::string::npos);
  cluster.close();
}

TEST_F(ClusterClientOnPlainRedis, DetectsPlainServer) {
  auto detected = run([&]() { return redis::async_is_cluster(conn()); });
  ASSERT_TRUE(detected) << detected.error().what();
  EXPECT_FALSE(*detected);
}

}  // namespace
}  // namespace tracewatch::testing
