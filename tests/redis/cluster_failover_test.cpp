// A master of the cluster killed with SIGKILL: once its replica is
// promoted, calls on its slots succeed again, and calls made during the
// failover each complete once, with a success or a retryable error.

#include <fmt/format.h>

#include <set>

#include "support/redis_cluster.hpp"
#include "tracewatch/redis/crc16.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::testing {
namespace {

using namespace std::chrono_literals;

class ClusterFailover : public RedisClusterTest {};

TEST_F(ClusterFailover, CallsSucceedAfterReplicaPromotion) {
  registry_options options;
  options.layout = layout_kind::sharded;
  registry reg(client(), options);

  // Traces on every master before the crash.
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(generate_trace_id());
  auto loaded = run([&]() -> asio::awaitable<std::string> {
    for (const auto& id : ids) {
      auto created = co_await reg.async_create(id, "RECEIVED");
      if (!created) co_return created.error().what();
    }
    co_return std::string();
  });
  ASSERT_EQ(loaded, "");

  const std::string victim_key = reg.keys().index_key(0);
  const std::size_t victim = cluster().master_of_slot(redis::key_slot(victim_key)).value();

  // Load runs while the master dies and its replica takes over.
  std::uint64_t started = 0;
  std::uint64_t finished = 0;
  std::uint64_t failed = 0;
  std::vector<std::string> unexpected;
  bool stop = false;
  auto worker = [&]() -> asio::awaitable<void> {
    while (!stop) {
      ++started;
      auto created = co_await reg.async_create(generate_trace_id(), "RECEIVED");
      ++finished;
      if (created) continue;
      ++failed;
      // The retryable errors are the documented outcomes of a failover.
      if (!is_retryable(created.error().code)) unexpected.push_back(created.error().what());
    }
  };
  for (int i = 0; i < 16; ++i) asio::co_spawn(io(), worker(), asio::detached);
  for (int i = 0; i < 20; ++i) io().run_one_for(10ms);

  cluster().node(victim).kill_hard();
  auto failover_done = std::async(std::launch::async, [&] { return cluster().wait_healthy(60s); });
  while (failover_done.wait_for(0s) != std::future_status::ready) io().run_for(20ms);
  auto healthy = failover_done.get();
  ASSERT_TRUE(healthy) << healthy.error().what();

  stop = true;
  while (finished < started) io().run_one_for(50ms);
  EXPECT_EQ(finished, started);
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();

  // Every shard, including those of the dead master, accepts calls again.
  auto after = run([&]() -> asio::awaitable<std::string> {
    std::set<std::uint32_t> covered;
    while (covered.size() < reg.keys().index_count()) {
      const std::string id = generate_trace_id();
      covered.insert(shard_of(id, reg.keys().index_count()));
      auto created = co_await reg.async_create(id, "RECEIVED");
      if (!created) co_return "create: " + created.error().what();
      auto done = co_await reg.async_complete(id);
      if (!done) co_return "complete: " + done.error().what();
    }
    co_return std::string();
  });
  EXPECT_EQ(after, "");
  EXPECT_NE(client().master_for(victim_key),
            fmt::format("127.0.0.1:{}", cluster().node(victim).port()));
}

}  // namespace
}  // namespace tracewatch::testing
