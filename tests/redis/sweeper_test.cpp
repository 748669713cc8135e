// The sweeper against a real redis-server: every field of the summary, the
// treatment of each kind of trace, and completions racing sweeps.

#include <mutex>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/test_support.hpp"
#include "tracewatch/id_generator.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using testing::RedisClientTest;

// Collects log records for assertions.
struct captured_logs {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> records;

  logger make() {
    return logger(
        [this](const log_record& r) {
          std::map<std::string, std::string> fields;
          for (const auto& f : r.fields) fields[std::string(f.key)] = f.value;
          std::lock_guard lock(mutex);
          records.emplace_back(std::string(r.event), std::move(fields));
        },
        log_level::debug);
  }
  int count(std::string_view event, std::string_view id = {}) {
    std::lock_guard lock(mutex);
    int n = 0;
    for (const auto& [e, f] : records) {
      if (e == event && (id.empty() || (f.count("trace_id") && f.at("trace_id") == id))) ++n;
    }
    return n;
  }
};

class SweeperTest : public RedisClientTest, public ::testing::WithParamInterface<layout_kind> {
 protected:
  void SetUp() override {
    RedisClientTest::SetUp();
    options_.layout = GetParam();
    keys_ = make_layout(options_);
    reg_ = std::make_unique<registry>(conn(), options_);
  }

  double server_now() {
    auto t = raw().strings({"TIME"});
    return std::stod(t[0]) + std::stod(t[1]) / 1e6;
  }

  // A version-7 id minted `age_s` seconds ago on the server's clock.
  std::string id_aged(double age_s) {
    const auto minted = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(server_now() - age_s)));
    id_generator::options pinned;
    pinned.clock = [minted] { return minted; };
    return id_generator(pinned).next().to_string();
  }

  // Creates a trace that looks `age_s` seconds old: by its id, its
  // created_at and its index entry.
  std::string create(const std::string& state = "RECEIVED", double age_s = 0) {
    std::string id = age_s > 0 ? id_aged(age_s) : generate_trace_id();
    auto created = run([&]() { return reg_->async_create(id, state, {{"platform", "test"}}); });
    EXPECT_TRUE(created) << created.error().what();
    if (age_s > 0) age(id, age_s);
    return id;
  }

  // Makes a trace look `age_s` seconds old, in the hash and in a sorted index.
  void age(const std::string& id, double age_s) {
    const double created_at = server_now() - age_s;
    raw().command({"HSET", keys_->trace_key(id), "created_at", fmt::format("{:.6f}", created_at)});
    if (keys_->index() == index_kind::sorted_set) {
      raw().command({"ZADD", keys_->index_key_for(id),
                     std::to_string(static_cast<long long>(created_at * 1000)), id});
    }
  }

  // Adds an index entry for `id` that is `age_s` seconds old.
  void index_only(const std::string& id, double age_s) {
    if (keys_->index() == index_kind::sorted_set) {
      raw().command({"ZADD", keys_->index_key_for(id),
                     std::to_string(static_cast<long long>((server_now() - age_s) * 1000)), id});
    } else {
      raw().command({"SADD", keys_->index_key_for(id), id});
    }
  }

  bool in_index(const std::string& id) {
    if (keys_->index() == index_kind::sorted_set) {
      return !raw().command({"ZSCORE", keys_->index_key_for(id), id}).is_nil();
    }
    return raw().integer({"SISMEMBER", keys_->index_key_for(id), id}) == 1;
  }

  std::string state_of(const std::string& id) {
    return raw().str({"HGET", keys_->trace_key(id), "state"});
  }

  sweep_summary sweep(sweeper& s) {
    auto summary = run([&]() { return s.async_sweep(); });
    EXPECT_TRUE(summary) << summary.error().what();
    return summary ? *summary : sweep_summary{};
  }

  registry_options options_;
  std::unique_ptr<layout> keys_;
  std::unique_ptr<registry> reg_;
  captured_logs logs_;
};

INSTANTIATE_TEST_SUITE_P(Layouts, SweeperTest,
                         ::testing::Values(layout_kind::compat, layout_kind::sharded),
                         [](const auto& param_info) { return std::string(to_string(param_info.param)); });

TEST_P(SweeperTest, SummaryCountsEveryKind) {
  std::string live = create();
  std::string orphan = create("INFERENCE", 4000);
  std::string completed = create("RECEIVED", 4000);
  // A completed trace still indexed: written by a client that does not
  // clean its index entry, such as the reference module.
  raw().command({"HSET", keys_->trace_key(completed), "state", "COMPLETED"});
  // Older than the failsafe TTL, so that its hash must have expired.
  std::string stale = id_aged(90000);
  index_only(stale, 90000);
  std::string bad_created = create("RECEIVED", 4000);
  raw().command({"HSET", keys_->trace_key(bad_created), "created_at", "yesterday"});

  sweeper s(conn(), options_, {}, logs_.make());
  sweep_summary summary = sweep(s);

  EXPECT_EQ(summary.scanned, GetParam() == layout_kind::compat ? 5u : 4u);
  EXPECT_EQ(summary.orphaned, 1u);
  EXPECT_EQ(summary.stale, 1u);
  EXPECT_EQ(summary.finished, 1u);
  EXPECT_EQ(summary.malformed, 1u);
  // The live trace is young by its id: the compat sweep leaves it unread,
  // and the sorted index of the sharded layout does not return it.
  EXPECT_EQ(summary.live, 0u);
  EXPECT_EQ(summary.skipped, GetParam() == layout_kind::compat ? 1u : 0u);
  EXPECT_GE(summary.batches, 1u);
  EXPECT_GT(summary.duration.count(), 0);
  EXPECT_FALSE(summary.stopped_early);
  ASSERT_EQ(summary.orphans.size(), 1u);
  EXPECT_EQ(summary.orphans[0].id, orphan);
  EXPECT_GE(summary.orphans[0].age_s, 3999.0);

  EXPECT_EQ(state_of(orphan), "ERRORED");
  EXPECT_EQ(raw().str({"HGET", keys_->trace_key(orphan), "error"}), "orphaned");
  EXPECT_FALSE(raw().command({"HGET", keys_->trace_key(orphan), "finished_at"}).is_nil());
  EXPECT_LE(raw().integer({"TTL", keys_->trace_key(orphan)}), 3600);
  EXPECT_FALSE(in_index(orphan));
  EXPECT_FALSE(in_index(completed));
  EXPECT_FALSE(in_index(stale));
  EXPECT_TRUE(in_index(live));
  EXPECT_TRUE(in_index(bad_created));
  EXPECT_EQ(state_of(live), "RECEIVED");
  EXPECT_EQ(state_of(completed), "COMPLETED");

  EXPECT_EQ(logs_.count("trace_orphaned", orphan), 1);
  EXPECT_EQ(logs_.count("trace_malformed", bad_created), 1);
}

TEST_P(SweeperTest, NeverMarksCompletedTraceErrored) {
  std::string id = create("RECEIVED", 100000);
  ASSERT_TRUE(run([&]() { return reg_->async_complete(id); }));
  index_only(id, 100000);
  sweeper s(conn(), options_);
  sweep_summary summary = sweep(s);
  EXPECT_EQ(summary.orphaned, 0u);
  EXPECT_EQ(summary.finished, 1u);
  EXPECT_EQ(state_of(id), "COMPLETED");
  EXPECT_FALSE(in_index(id));
}

TEST_P(SweeperTest, MalformedTracesAreCountedLoggedOnceAndKept) {
  std::string no_state = create("RECEIVED", 4000);
  raw().command({"HDEL", keys_->trace_key(no_state), "state"});
  std::string wrong_type = id_aged(4000);
  index_only(wrong_type, 4000);
  raw().command({"SET", keys_->trace_key(wrong_type), "not a hash"});
  std::string nan_created = create("RECEIVED", 4000);
  raw().command({"HSET", keys_->trace_key(nan_created), "created_at", "nan"});
  std::string orphan = create("RECEIVED", 4000);

  sweeper s(conn(), options_, {}, logs_.make());
  sweep_summary first = sweep(s);
  EXPECT_EQ(first.malformed, 3u);
  EXPECT_EQ(first.orphaned, 1u);
  sweep_summary second = sweep(s);
  EXPECT_EQ(second.malformed, 3u);
  EXPECT_EQ(second.orphaned, 0u);

  for (const auto& id : {no_state, wrong_type, nan_created}) {
    EXPECT_TRUE(in_index(id)) << id;
    EXPECT_EQ(logs_.count("trace_malformed", id), 1) << id;
  }
  EXPECT_EQ(raw().str({"GET", keys_->trace_key(wrong_type)}), "not a hash");
  EXPECT_EQ(state_of(orphan), "ERRORED");
}

TEST_P(SweeperTest, WalksManyBatches) {
  constexpr int kTraces = 1200;
  std::vector<std::string> orphans;
  for (int i = 0; i < kTraces; ++i) {
    if (i % 10 == 0) {
      orphans.push_back(create("RECEIVED", 4000));
    } else {
      create();
    }
  }
  sweep_options small;
  small.batch_size = 100;
  // Pages of 300 ids, each split into script calls of at most 100.
  small.scan_count = 300;
  small.read_every_id = true;
  sweeper s(conn(), options_, small);
  sweep_summary summary = sweep(s);
  EXPECT_EQ(summary.orphaned, orphans.size());
  if (GetParam() == layout_kind::compat) {
    EXPECT_GE(summary.scanned, static_cast<std::uint64_t>(kTraces));
    EXPECT_GE(summary.batches, static_cast<std::uint64_t>(kTraces / 100));
  } else {
    // The sorted index is read only below the cutoff.
    EXPECT_EQ(summary.scanned, orphans.size());
  }
  for (const auto& id : orphans) EXPECT_EQ(state_of(id), "ERRORED");
}

TEST_P(SweeperTest, StopPredicateEndsPassBetweenBatches) {
  for (int i = 0; i < 300; ++i) create("RECEIVED", 4000);
  sweep_options small;
  small.batch_size = 50;
  small.scan_count = 50;
  small.shard_parallelism = 1;
  sweeper s(conn(), options_, small);
  auto summary = run([&]() { return s.async_sweep([] { return true; }); });
  ASSERT_TRUE(summary);
  EXPECT_TRUE(summary->stopped_early);
  if (GetParam() == layout_kind::compat) {
    EXPECT_EQ(summary->batches, 1u);
  }
  EXPECT_LT(summary->orphaned, 300u);
}

TEST_P(SweeperTest, ThresholdIsRespected) {
  std::string young = create("RECEIVED", 10);
  sweep_options options;
  options.threshold = 60s;
  sweeper s(conn(), options_, options);
  sweep_summary summary = sweep(s);
  EXPECT_EQ(summary.orphaned, 0u);
  EXPECT_EQ(state_of(young), "RECEIVED");
  options.threshold = 5s;
  sweeper eager(conn(), options_, options);
  summary = sweep(eager);
  EXPECT_EQ(summary.orphaned, 1u);
  EXPECT_EQ(state_of(young), "ERRORED");
}

TEST_P(SweeperTest, YoungIdsStayUnreadByDefault) {
  // A fresh id with an old created_at: only a sweep that reads it finds an
  // orphan. The sorted index of the sharded layout goes by created_at.
  std::string id = create();
  age(id, 4000);
  sweeper s(conn(), options_);
  sweep_summary summary = sweep(s);
  if (GetParam() == layout_kind::compat) {
    EXPECT_EQ(summary.skipped, 1u);
    EXPECT_EQ(summary.orphaned, 0u);
    EXPECT_EQ(state_of(id), "RECEIVED");
    sweep_options every;
    every.read_every_id = true;
    sweeper reader(conn(), options_, every);
    summary = sweep(reader);
  }
  EXPECT_EQ(summary.orphaned, 1u);
  EXPECT_EQ(state_of(id), "ERRORED");
}

TEST_P(SweeperTest, VersionFourIdsAreAlwaysRead) {
  // Written the way the reference module writes on Python 3.11: a uuid4 id
  // and a client-side created_at.
  const std::string id = "3b241101-e2bb-4255-8caf-4136c566a962";
  raw().command({"HSET", keys_->trace_key(id), "state", "RECEIVED", "created_at",
                 fmt::format("{:.6f}", server_now() - 4000)});
  index_only(id, 4000);
  sweeper s(conn(), options_);
  sweep_summary summary = sweep(s);
  EXPECT_EQ(summary.orphaned, 1u);
  EXPECT_EQ(state_of(id), "ERRORED");
}

TEST_P(SweeperTest, IdsAheadOfTheServerClockAreRead) {
  std::string id = id_aged(-3600);
  ASSERT_TRUE(run([&]() { return reg_->async_create(id, "RECEIVED", {}); }));
  age(id, 4000);
  sweeper s(conn(), options_);
  sweep_summary summary = sweep(s);
  EXPECT_EQ(summary.orphaned, 1u);
  EXPECT_EQ(state_of(id), "ERRORED");
}

TEST_P(SweeperTest, SortedIndexKeepsRecentMissingHash) {
  // In a cluster slot migration the hash can move before its index entry,
  // so the sorted sweep drops an entry without a hash only when the hash
  // must have expired. The set index has no time to go by.
  std::string moving = id_aged(4000);
  index_only(moving, 4000);
  sweeper s(conn(), options_);
  sweep_summary summary = sweep(s);
  if (GetParam() == layout_kind::sharded) {
    EXPECT_EQ(summary.stale, 0u);
    EXPECT_TRUE(in_index(moving));
  } else {
    EXPECT_EQ(summary.stale, 1u);
    EXPECT_FALSE(in_index(moving));
  }
}

// Completions racing sweeps over traces at the threshold's edge: no
// completed trace becomes ERRORED and no finished trace stays indexed.
class SweeperConcurrency : public SweeperTest {};

INSTANTIATE_TEST_SUITE_P(Layouts, SweeperConcurrency,
                         ::testing::Values(layout_kind::compat, layout_kind::sharded),
                         [](const auto& param_info) { return std::string(to_string(param_info.param)); });

TEST_P(SweeperConcurrency, CompletionsRacingSweepsNeverLoseCompleted) {
  constexpr int kTraces = 2000;
  const auto threshold = 2s;
  std::vector<std::string> ids;
  // Every trace just below the threshold, so that it crosses it while the
  // completions are running.
  for (int i = 0; i < kTraces; ++i) ids.push_back(id_aged(1.9));
  for (const auto& id : ids) {
    ASSERT_TRUE(run([&]() { return reg_->async_create(id, "RECEIVED", {}); }));
  }
  for (const auto& id : ids) age(id, 1.9);

  redis::connection sweep_conn(io().get_executor(), redis::parse_url(server().unix_url()).value());
  sweep_conn.start();
  ASSERT_TRUE(run([&]() { return sweep_conn.async_wait_ready(10s); }));
  sweep_options options;
  options.threshold = threshold;
  options.batch_size = 100;
  sweeper s(sweep_conn, options_, options);

  std::vector<result<finish_outcome>> outcomes(kTraces, error(errc::closed));
  std::uint64_t orphaned_by_sweeps = 0;
  run([&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    bool completions_done = false;
    asio::co_spawn(executor, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < kTraces; ++i) {
        outcomes[i] = co_await reg_->async_complete(ids[i]);
      }
      completions_done = true;
    }, asio::detached);
    while (!completions_done) {
      auto summary = co_await s.async_sweep();
      if (summary) orphaned_by_sweeps += summary->orphaned;
    }
    auto last = co_await s.async_sweep();
    if (last) orphaned_by_sweeps += last->orphaned;
  });

  std::uint64_t completed = 0;
  std::uint64_t lost_to_sweep = 0;
  for (int i = 0; i < kTraces; ++i) {
    ASSERT_TRUE(outcomes[i]) << outcomes[i].error().what();
    const std::string stored = state_of(ids[i]);
    if (outcomes[i]->applied) {
      ++completed;
      EXPECT_EQ(stored, "COMPLETED") << ids[i];
    } else {
      ++lost_to_sweep;
      EXPECT_EQ(outcomes[i]->state, "ERRORED") << ids[i];
      EXPECT_EQ(stored, "ERRORED") << ids[i];
    }
    EXPECT_FALSE(in_index(ids[i])) << ids[i];
  }
  EXPECT_EQ(completed + lost_to_sweep, static_cast<std::uint64_t>(kTraces));
  EXPECT_EQ(lost_to_sweep, orphaned_by_sweeps);
  sweep_conn.close();
}

}  // namespace
}  // namespace tracewatch
