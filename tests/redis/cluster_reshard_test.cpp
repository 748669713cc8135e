// Slots resharded under load with `redis-cli --cluster reshard`: every call
// succeeds (MOVED, ASK and TRYAGAIN are handled within the retry budget) and
// no trace is lost or left in an index.

#include <fmt/format.h>

#include <atomic>
#include <thread>

#include "support/redis_cluster.hpp"
#include "tracewatch/redis/crc16.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::testing {
namespace {

using namespace std::chrono_literals;

class ClusterReshard : public RedisClusterTest {};

TEST_F(ClusterReshard, NoCallFailsWhileSlotsMove) {
  registry_options options;
  options.layout = layout_kind::sharded;
  registry reg(client(), options);

  // Each worker runs traces through create, advance and complete until the
  // reshard is over, then one more round so that every stale slot is met.
  std::atomic<bool> resharded{false};
  std::uint64_t traces = 0;
  std::vector<std::string> failures;
  int running = 0;
  auto worker = [&]() -> asio::awaitable<void> {
    ++running;
    // Built outside the co_await: GCC 12 rejects an initializer list there.
    const metadata fields = {{"platform", "web"}};
    int rounds_after = 0;
    while (rounds_after < 20) {
      if (resharded) ++rounds_after;
      const std::string id = generate_trace_id();
      auto created = co_await reg.async_create(id, "RECEIVED", fields);
      if (!created) {
        failures.push_back("create: " + created.error().what());
        continue;
      }
      auto advanced = co_await reg.async_advance(id, "INFERENCE");
      if (!advanced) failures.push_back("advance: " + advanced.error().what());
      auto done = co_await reg.async_complete(id);
      if (!done) failures.push_back("complete: " + done.error().what());
      ++traces;
    }
    --running;
  };
  for (int i = 0; i < 32; ++i) asio::co_spawn(io(), worker(), asio::detached);
  for (int i = 0; i < 20; ++i) io().run_one_for(10ms);

  // Move 600 slots (about a ninth of a master's) to another master.
  const auto masters = cluster().masters();
  ASSERT_GE(masters.size(), 2u);
  auto reshard = std::async(std::launch::async, [&] {
    auto out = cluster().reshard(masters[0], masters[1], 600);
    resharded = true;
    return out;
  });
  while (running > 0 || reshard.wait_for(0s) != std::future_status::ready) io().run_for(20ms);
  auto moved = reshard.get();
  ASSERT_TRUE(moved) << moved.error().what();

  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
  EXPECT_GT(traces, 0u);
  const auto stats = client().stats();
  EXPECT_GT(stats.moved + stats.ask, 0u);

  // Every trace was completed, so every shard index is empty.
  auto active = run([&]() { return reg.async_count_active(); });
  ASSERT_TRUE(active) << active.error().what();
  EXPECT_EQ(*active, 0u);
}

}  // namespace
}  // namespace tracewatch::testing
