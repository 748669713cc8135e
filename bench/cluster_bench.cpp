// The sharded layout on a 3-master Redis Cluster beside the same work on one
// node, in one run of one process:
//   - creates per second, kWorkers coroutines, through redis::cluster_client
//     and through one redis::connection;
//   - a sweep of N active traces (1% orphaned) in the sharded layout, through
//     each client, after the same load.
// Both servers are private ones this suite starts on loopback TCP, so the
// two sides pay the same network stack. The cluster has no replicas: they
// would compete with the masters for this machine's cores.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <map>

#include "bench.hpp"
#include "tracewatch/layout_check.hpp"
#include "tracewatch/local_redis.hpp"
#include "tracewatch/local_redis_cluster.hpp"
#include "tracewatch/redis/cluster.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::bench {
namespace {

constexpr int kWorkers = 256;            // creates in flight, as in the creates suite
constexpr double kOrphanShare = 0.01;
constexpr std::chrono::seconds kThreshold{1800};
constexpr std::size_t kLoadBatch = 500;  // traces per pipelined load request

registry_options sharded_options() {
  registry_options options;
  options.layout = layout_kind::sharded;
  return options;
}

// Runs `count` copies of `work` at once and waits for all of them.
template <class Work>
asio::awaitable<void> run_all(int count, Work work) {
  auto executor = co_await asio::this_coro::executor;
  int running = count;
  asio::steady_timer all_done(executor, std::chrono::steady_clock::time_point::max());
  for (int i = 0; i < count; ++i) {
    asio::co_spawn(
        executor,
        [&]() -> asio::awaitable<void> {
          co_await work();
          if (--running == 0) all_done.cancel();
        },
        asio::detached);
  }
  boost::system::error_code ignored;
  co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

struct outcome {
  double creates_per_s = 0;
  double sweep_s = 0;
  std::uint64_t orphaned = 0;
  std::string failure;  // empty when every step worked
};

// Sends `traces` as pipelined HSET, EXPIRE and ZADD requests, one request
// per shard batch, so that each request stays in one slot.
asio::awaitable<std::string> async_load(redis::client& client, const layout& keys,
                                        std::uint64_t total) {
  redis::request time_req;
  time_req.push("TIME");
  auto t = co_await client.async_exec(time_req);
  if (!t) co_return "TIME: " + t.error().what();
  const double now = std::stod((*t)[0].elements[0].str);
  const auto orphan_every = static_cast<std::uint64_t>(1 / kOrphanShare);

  // Ids grouped by shard, cut into batches.
  std::map<std::uint32_t, std::vector<std::pair<std::string, double>>> by_shard;
  for (std::uint64_t i = 0; i < total; ++i) {
    std::string id = generate_trace_id();
    const double created = i % orphan_every == 0 ? now - 4000 : now;
    by_shard[shard_of(id, keys.index_count())].emplace_back(std::move(id), created);
  }
  std::vector<std::pair<std::uint32_t, std::vector<std::pair<std::string, double>>>> batches;
  for (const auto& entry : by_shard) {
    const auto& traces = entry.second;
    for (std::size_t at = 0; at < traces.size(); at += kLoadBatch) {
      const auto end = std::min(traces.size(), at + kLoadBatch);
      batches.emplace_back(entry.first,
                           std::vector(traces.begin() + static_cast<std::ptrdiff_t>(at),
                                       traces.begin() + static_cast<std::ptrdiff_t>(end)));
    }
  }

  std::size_t next = 0;
  std::string failure;
  co_await run_all(8, [&]() -> asio::awaitable<void> {
    while (next < batches.size() && failure.empty()) {
      const auto& batch = batches[next++];
      const std::string index = keys.index_key(batch.first);
      redis::request req;
      for (const auto& trace : batch.second) {
        const std::string key = keys.trace_key(trace.first);
        req.push("HSET", key, "state", "INFERENCE", "created_at",
                 fmt::format("{:.6f}", trace.second), "platform", "bench");
        req.push("EXPIRE", key, 86400);
        req.push("ZADD", index, static_cast<std::int64_t>(trace.second * 1000), trace.first);
      }
      auto replies = co_await client.async_exec(req, index);
      if (!replies && failure.empty()) failure = "load: " + replies.error().what();
    }
  });
  co_return failure;
}

// Creates, then load and sweep, on `client`.
asio::awaitable<outcome> async_measure(redis::client& client, std::uint64_t creates,
                                       std::uint64_t sweep_traces) {
  outcome out;
  const auto options = sharded_options();
  auto checked = co_await async_check_layout(client, options);
  if (!checked) {
    out.failure = checked.error().what();
    co_return out;
  }

  // 1. Creates per second.
  registry reg(client, options);
  std::uint64_t issued = 0;
  const auto started = std::chrono::steady_clock::now();
  co_await run_all(kWorkers, [&]() -> asio::awaitable<void> {
    const metadata fields = {{"platform", "bench"}, {"channel", "api"}};
    while (issued < creates && out.failure.empty()) {
      ++issued;
      auto created = co_await reg.async_create(generate_trace_id(), "RECEIVED", fields);
      if (!created && out.failure.empty()) out.failure = "create: " + created.error().what();
    }
  });
  out.creates_per_s = static_cast<double>(creates) / seconds_since(started);
  if (!out.failure.empty()) co_return out;

  // 2. Start the sweep from an index of exactly the loaded traces.
  for (std::uint32_t shard = 0; shard < reg.keys().index_count(); ++shard) {
    redis::request del;
    del.push("DEL", reg.keys().index_key(shard));
    auto deleted = co_await client.async_exec(del, reg.keys().index_key(shard));
    if (!deleted) {
      out.failure = "clear: " + deleted.error().what();
      co_return out;
    }
  }
  out.failure = co_await async_load(client, reg.keys(), sweep_traces);
  if (!out.failure.empty()) co_return out;

  sweep_options sweep;
  sweep.threshold = kThreshold;
  sweeper s(client, options, sweep);
  const auto sweep_started = std::chrono::steady_clock::now();
  auto summary = co_await s.async_sweep();
  out.sweep_s = seconds_since(sweep_started);
  if (!summary) {
    out.failure = "sweep: " + summary.error().what();
    co_return out;
  }
  out.orphaned = summary->orphaned;
  co_return out;
}

outcome measure_one_node(const local_redis& server, std::uint64_t creates, std::uint64_t traces) {
  asio::io_context io;
  redis::connection conn(io.get_executor(), redis::parse_url(server.url()).value());
  conn.start();
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<outcome> {
        outcome out;
        if (auto ready = co_await conn.async_wait_ready(std::chrono::seconds(10)); !ready) {
          out.failure = ready.error().what();
        } else {
          out = co_await async_measure(conn, creates, traces);
        }
        conn.close();
        co_return out;
      },
      asio::use_future);
  io.run();
  return future.get();
}

outcome measure_cluster(const local_redis_cluster& cluster, std::uint64_t creates,
                        std::uint64_t traces) {
  asio::io_context io;
  redis::cluster_client client(io.get_executor(), redis::parse_url(cluster.seed_url()).value());
  client.start();
  auto future = asio::co_spawn(
      io,
      [&]() -> asio::awaitable<outcome> {
        outcome out;
        if (auto ready = co_await client.async_wait_ready(std::chrono::seconds(10)); !ready) {
          out.failure = ready.error().what();
        } else {
          out = co_await async_measure(client, creates, traces);
        }
        client.close();
        co_return out;
      },
      asio::use_future);
  io.run();
  return future.get();
}

int run_cluster(const options& opts) {
  const std::uint64_t creates = opts.creates;
  const std::uint64_t traces = std::max<std::uint64_t>(opts.sweep_traces, 100'000);

  local_redis::options single_opts;
  single_opts.tcp = true;
  auto single = local_redis::start(single_opts);
  if (!single) {
    fmt::print("  cannot start redis-server: {}\n", single.error().what());
    return 1;
  }
  local_redis_cluster::options cluster_opts;
  cluster_opts.masters = 3;
  cluster_opts.replicas = 0;
  auto cluster = local_redis_cluster::start(cluster_opts);
  if (!cluster) {
    fmt::print("  cannot start a Redis Cluster: {}\n", cluster.error().what());
    return 1;
  }
  fmt::print("  sharded layout, {} creates with {} coroutines, then a sweep of {} traces "
             "({:.0f}% orphaned); one node vs 3 masters, TCP on loopback\n",
             creates, kWorkers, traces, kOrphanShare * 100);

  const outcome single_node = measure_one_node(*single, creates, traces);
  single->stop();  // frees its memory and a core before the cluster runs
  const outcome cluster_side = measure_cluster(*cluster, creates, traces);
  for (const auto* side : {&single_node, &cluster_side}) {
    if (!side->failure.empty()) {
      fmt::print("  cluster benchmark failed: {}\n", side->failure);
      return 1;
    }
  }

  fmt::print("  one node   {:>10.0f} creates/s, sweep {:.3f} s, {} orphaned\n",
             single_node.creates_per_s, single_node.sweep_s, single_node.orphaned);
  fmt::print("  3 masters  {:>10.0f} creates/s, sweep {:.3f} s, {} orphaned\n",
             cluster_side.creates_per_s, cluster_side.sweep_s, cluster_side.orphaned);
  fmt::print("  (the client and every server share this machine's cores, so this run cannot\n"
             "   show scale-out: three masters compete for the cores one node had)\n");

  const std::string size = traces % 1'000'000 == 0 ? fmt::format("{}M", traces / 1'000'000)
                                                   : fmt::format("{}k", traces / 1000);
  add_summary({"creates/s, sharded, 3-master cluster",
               fmt::format("{:.0f}/s", cluster_side.creates_per_s),
               fmt::format("one node {:.0f}/s", single_node.creates_per_s),
               fmt::format("{:.2f}x", cluster_side.creates_per_s / single_node.creates_per_s), "-",
               std::nullopt});
  add_summary({fmt::format("sweep {} active, 1% orphaned, cluster", size),
               fmt::format("{:.3f} s", cluster_side.sweep_s),
               fmt::format("one node {:.3f} s", single_node.sweep_s),
               fmt::format("{:.2f}x", single_node.sweep_s / cluster_side.sweep_s), "-",
               std::nullopt});
  return 0;
}

const suite_registration cluster_suite({"cluster",
                                        "sharded creates and sweep on a 3-master Redis Cluster "
                                        "vs one node",
                                        run_cluster});

}  // namespace
}  // namespace tracewatch::bench
