// Slots resharded under load with `redis-cli --cluster reshard`: every call
// succeeds (MOVED, ASK and TRYAGAIN are handled within the retry budget) and
// no trace is lost or left in an index.

#include <fmt/format.h>

#include <atomic>
#include <thread>

#include "support/redis_cluster.hpp"
#include "tracewatch/redis/crc16.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/sweeper.hpp"
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

TEST_F(ClusterReshard, SweepKeepsEntryWhoseHashMovedFirst) {
  registry_options options;
  options.layout = layout_kind::sharded;
  registry reg(client(), options);
  auto keys = make_layout(options);
  const std::string id = generate_trace_id();
  const metadata fields = {{"platform", "web"}};
  ASSERT_TRUE(run([&]() { return reg.async_create(id, "RECEIVED", fields); }));

  // Start moving the trace's slot by hand, and move only the hash: the
  // state of a slot in migration between two MIGRATE calls.
  const std::string trace_key = keys->trace_key(id);
  const std::string index_key = keys->index_key_for(id);
  const auto slot = redis::key_slot(trace_key);
  auto source = cluster().master_of_slot(slot);
  ASSERT_TRUE(source) << source.error().what();
  std::size_t target = *source;
  for (auto m : cluster().masters()) {
    if (m != *source) target = m;
  }
  ASSERT_NE(target, *source);
  const std::string source_id = cluster().node_id(*source).value();
  const std::string target_id = cluster().node_id(target).value();
  const std::string slot_text = std::to_string(slot);
  auto on = [&](std::size_t node, const std::vector<std::string>& args) {
    auto reply = cluster().command(node, args);
    EXPECT_TRUE(reply) << reply.error().what();
    EXPECT_FALSE(reply && reply->is_error()) << reply->str;
  };
  on(target, {"CLUSTER", "SETSLOT", slot_text, "IMPORTING", source_id});
  on(*source, {"CLUSTER", "SETSLOT", slot_text, "MIGRATING", target_id});
  const std::string port = std::to_string(cluster().node(target).port());
  on(*source, {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", trace_key});

  sweep_options sweep;
  sweep.threshold = 1ms;
  sweeper s(client(), options, sweep);
  auto during = run([&]() { return s.async_sweep(); });
  ASSERT_TRUE(during) << during.error().what();
  EXPECT_EQ(during->stale, 0u);
  EXPECT_EQ(during->orphaned, 0u);
  auto score = cluster().command(*source, {"ZSCORE", index_key, id});
  ASSERT_TRUE(score);
  EXPECT_FALSE(score->is_nil()) << "the index entry was dropped while its hash was moving";

  // Finish the move; the next sweep finds the orphan on the target.
  on(*source, {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", index_key});
  for (auto m : cluster().masters()) on(m, {"CLUSTER", "SETSLOT", slot_text, "NODE", target_id});
  auto after = run([&]() { return s.async_sweep(); });
  ASSERT_TRUE(after) << after.error().what();
  EXPECT_EQ(after->orphaned, 1u);
  auto info = run([&]() { return reg.async_get(id); });
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(info->state, "ERRORED");
}

TEST_F(ClusterReshard, SweepsWhileSlotsMoveLoseNoOrphan) {
  registry_options options;
  options.layout = layout_kind::sharded;
  registry reg(client(), options);

  // With a threshold of 1 ms every trace is an orphan at once. Creators add
  // traces and sweeps reap them while slots move, so that sweeps run into
  // slots in migration, whose trace keys may already be on the other node.
  sweep_options sweep;
  sweep.threshold = 1ms;
  sweep.batch_size = 5;
  sweeper s(client(), options, sweep);
  std::vector<std::string> ids;
  std::uint64_t orphaned = 0;
  std::uint64_t stale = 0;
  std::vector<std::string> failures;
  std::atomic<bool> resharded{false};
  int running = 0;
  auto creator = [&]() -> asio::awaitable<void> {
    ++running;
    const metadata fields = {{"platform", "web"}};
    while (!resharded) {
      std::string id = generate_trace_id();
      auto created = co_await reg.async_create(id, "RECEIVED", fields);
      if (created) {
        ids.push_back(std::move(id));
      } else {
        failures.push_back("create: " + created.error().what());
      }
    }
    --running;
  };
  auto sweeps = [&]() -> asio::awaitable<void> {
    ++running;
    while (!resharded) {
      auto summary = co_await s.async_sweep();
      if (!summary) {
        failures.push_back("sweep: " + summary.error().what());
        continue;
      }
      orphaned += summary->orphaned;
      stale += summary->stale;
    }
    --running;
  };
  for (int i = 0; i < 8; ++i) asio::co_spawn(io(), creator(), asio::detached);
  asio::co_spawn(io(), sweeps(), asio::detached);
  for (int i = 0; i < 20; ++i) io().run_one_for(10ms);

  const auto masters = cluster().masters();
  ASSERT_GE(masters.size(), 3u);
  auto reshard = std::async(std::launch::async, [&] {
    auto out = cluster().reshard(masters[1], masters[2], 600);
    resharded = true;
    return out;
  });
  while (running > 0 || reshard.wait_for(0s) != std::future_status::ready) io().run_for(20ms);
  auto moved = reshard.get();
  ASSERT_TRUE(moved) << moved.error().what();

  auto last = run([&]() { return s.async_sweep(); });
  ASSERT_TRUE(last) << last.error().what();
  orphaned += last->orphaned;
  stale += last->stale;

  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
  EXPECT_EQ(stale, 0u);
  EXPECT_EQ(orphaned, ids.size());
  auto errored = run([&]() -> asio::awaitable<std::size_t> {
    std::size_t n = 0;
    for (const auto& id : ids) {
      auto t = co_await reg.async_get(id);
      if (t && t->state == "ERRORED") ++n;
    }
    co_return n;
  });
  EXPECT_EQ(errored, ids.size());
}

}  // namespace
}  // namespace tracewatch::testing
