// The registry against a real redis-server: exact fields and TTLs after
// each call, checked with raw commands, and races between finishers.

#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/test_support.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using testing::RedisClientTest;

std::map<std::string, std::string> as_map(const std::vector<std::string>& flat) {
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

double server_now(testing::raw_redis& raw) {
  auto t = raw.strings({"TIME"});
  return std::stod(t[0]) + std::stod(t[1]) / 1e6;
}

class RegistryTest : public RedisClientTest {
 protected:
  registry& reg() {
    if (!reg_) reg_ = std::make_unique<registry>(conn(), options_);
    return *reg_;
  }
  std::string create(const std::string& state = "RECEIVED", metadata fields = {}) {
    std::string id = generate_trace_id();
    auto created = run([&]() { return reg().async_create(id, state, fields); });
    EXPECT_TRUE(created) << created.error().what();
    return id;
  }

  registry_options options_;
  std::unique_ptr<registry> reg_;
};

TEST_F(RegistryTest, CreateWritesFieldsTtlAndIndex) {
  const double before = server_now(raw());
  std::string id = create("RECEIVED", {{"platform", "web"}, {"channel", "api"}});
  const double after = server_now(raw());

  auto fields = as_map(raw().strings({"HGETALL", "sg:trace:" + id}));
  EXPECT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields["state"], "RECEIVED");
  EXPECT_EQ(fields["platform"], "web");
  EXPECT_EQ(fields["channel"], "api");
  const double created_at = std::stod(fields["created_at"]);
  EXPECT_GE(created_at, before);
  EXPECT_LE(created_at, after);
  EXPECT_NE(fields["created_at"].find('.'), std::string::npos);

  const long long ttl = raw().integer({"TTL", "sg:trace:" + id});
  EXPECT_GT(ttl, 86390);
  EXPECT_LE(ttl, 86400);
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 1);
}

TEST_F(RegistryTest, CreateExistingIdChangesNothing) {
  std::string id = create("RECEIVED", {{"platform", "web"}});
  auto before = raw().strings({"HGETALL", "sg:trace:" + id});
  auto again = run([&]() { return reg().async_create(id, "OTHER", {{"platform", "x"}}); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), errc::trace_exists);
  EXPECT_EQ(raw().strings({"HGETALL", "sg:trace:" + id}), before);
}

TEST_F(RegistryTest, InvalidInputWritesNothing) {
  std::string id = generate_trace_id();
  auto reserved = run([&]() { return reg().async_create(id, "RECEIVED", {{"state", "x"}}); });
  ASSERT_FALSE(reserved);
  EXPECT_EQ(reserved.error(), errc::reserved_field);
  auto created_at = run([&]() { return reg().async_create(id, "RECEIVED", {{"created_at", "1"}}); });
  ASSERT_FALSE(created_at);
  EXPECT_EQ(created_at.error(), errc::reserved_field);
  auto bad_id = run([&]() { return reg().async_create("not-a-uuid", "RECEIVED", {}); });
  ASSERT_FALSE(bad_id);
  EXPECT_EQ(bad_id.error(), errc::invalid_trace_id);
  auto bad_state = run([&]() { return reg().async_create(id, "", {}); });
  ASSERT_FALSE(bad_state);
  EXPECT_EQ(bad_state.error(), errc::invalid_argument);
  auto terminal = run([&]() { return reg().async_create(id, "COMPLETED", {}); });
  ASSERT_FALSE(terminal);
  EXPECT_EQ(terminal.error(), errc::invalid_argument);
  EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
}

TEST_F(RegistryTest, GetNamesTraceKeyOfWrongType) {
  const std::string id = generate_trace_id();
  raw().command({"SET", "sg:trace:" + id, "not a hash"});
  auto got = run([&]() { return reg().async_get(id); });
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().what().find("sg:trace:" + id), std::string::npos) << got.error().what();
  EXPECT_NE(got.error().what().find("not a hash"), std::string::npos) << got.error().what();
}

TEST_F(RegistryTest, UppercaseIdIsStoredInCanonicalForm) {
  std::string id = generate_trace_id();
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto created = run([&]() { return reg().async_create(upper, "RECEIVED", {}); });
  if (!created) {
    // Parsing may reject non-canonical text; then nothing may be written.
    EXPECT_EQ(created.error(), errc::invalid_trace_id);
    EXPECT_EQ(raw().integer({"DBSIZE"}), 0);
    return;
  }
  EXPECT_EQ(raw().integer({"EXISTS", "sg:trace:" + id}), 1);
}

TEST_F(RegistryTest, AdvanceWritesStateAndUpdatedAt) {
  std::string id = create();
  auto previous = run([&]() { return reg().async_advance(id, "INFERENCE"); });
  ASSERT_TRUE(previous) << previous.error().what();
  EXPECT_EQ(*previous, "RECEIVED");
  auto fields = as_map(raw().strings({"HGETALL", "sg:trace:" + id}));
  EXPECT_EQ(fields["state"], "INFERENCE");
  EXPECT_TRUE(parse_timestamp(fields["updated_at"]).has_value());
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 1);
  EXPECT_GT(raw().integer({"TTL", "sg:trace:" + id}), 86390);
}

TEST_F(RegistryTest, AdvanceRejectsMissingAndFinishedTraces) {
  auto missing = run([&]() { return reg().async_advance(generate_trace_id(), "INFERENCE"); });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), errc::trace_not_found);

  std::string id = create();
  ASSERT_TRUE(run([&]() { return reg().async_complete(id); }));
  auto late = run([&]() { return reg().async_advance(id, "EGRESS"); });
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error(), errc::already_terminal);
  EXPECT_NE(late.error().message.find("COMPLETED"), std::string::npos);
  EXPECT_EQ(raw().str({"HGET", "sg:trace:" + id, "state"}), "COMPLETED");

  auto terminal = run([&]() { return reg().async_advance(id, "ERRORED"); });
  ASSERT_FALSE(terminal);
  EXPECT_EQ(terminal.error(), errc::invalid_argument);
}

TEST_F(RegistryTest, CompleteSetsTerminalFieldsTtlAndLeavesIndex) {
  std::string id = create();
  auto outcome = run([&]() { return reg().async_complete(id); });
  ASSERT_TRUE(outcome) << outcome.error().what();
  EXPECT_TRUE(outcome->applied);
  EXPECT_EQ(outcome->state, "COMPLETED");
  EXPECT_EQ(outcome->previous_state, "RECEIVED");

  auto fields = as_map(raw().strings({"HGETALL", "sg:trace:" + id}));
  EXPECT_EQ(fields["state"], "COMPLETED");
  EXPECT_TRUE(parse_timestamp(fields["finished_at"]).has_value());
  EXPECT_EQ(fields.count("error"), 0u);
  const long long ttl = raw().integer({"TTL", "sg:trace:" + id});
  EXPECT_GT(ttl, 3590);
  EXPECT_LE(ttl, 3600);
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

TEST_F(RegistryTest, FailStoresReason) {
  std::string id = create();
  auto outcome = run([&]() { return reg().async_fail(id, "model timeout"); });
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->applied);
  auto fields = as_map(raw().strings({"HGETALL", "sg:trace:" + id}));
  EXPECT_EQ(fields["state"], "ERRORED");
  EXPECT_EQ(fields["error"], "model timeout");
  EXPECT_LE(raw().integer({"TTL", "sg:trace:" + id}), 3600);
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

TEST_F(RegistryTest, FirstTerminalStateWins) {
  std::string id = create();
  ASSERT_TRUE(run([&]() { return reg().async_fail(id, "crash"); }));
  auto before = raw().strings({"HGETALL", "sg:trace:" + id});
  auto late = run([&]() { return reg().async_complete(id); });
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->applied);
  EXPECT_EQ(late->state, "ERRORED");
  EXPECT_EQ(raw().strings({"HGETALL", "sg:trace:" + id}), before);
}

TEST_F(RegistryTest, FinishingMissingTraceReportsNotFound) {
  std::string id = generate_trace_id();
  raw().command({"SADD", "sg:traces:active", id});
  auto outcome = run([&]() { return reg().async_complete(id); });
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error(), errc::trace_not_found);
  EXPECT_EQ(raw().integer({"EXISTS", "sg:trace:" + id}), 0);
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

TEST_F(RegistryTest, GetReturnsTypedFieldsAndTtl) {
  std::string id = create("RECEIVED", {{"platform", "web"}});
  ASSERT_TRUE(run([&]() { return reg().async_advance(id, "INFERENCE"); }));
  auto info = run([&]() { return reg().async_get(id); });
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(info->id, id);
  EXPECT_EQ(info->state, "INFERENCE");
  EXPECT_TRUE(info->created_at.has_value());
  EXPECT_TRUE(info->updated_at.has_value());
  EXPECT_FALSE(info->finished_at.has_value());
  EXPECT_EQ(info->metadata.at("platform"), "web");
  EXPECT_EQ(info->metadata.size(), 1u);
  ASSERT_TRUE(info->ttl.has_value());
  EXPECT_GT(info->ttl->count(), 86390);

  auto missing = run([&]() { return reg().async_get(generate_trace_id()); });
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), errc::trace_not_found);
}

TEST_F(RegistryTest, ReadsAndFinishesReferenceWrittenTrace) {
  // Written as the reference module does: a uuid4 id, a client-side
  // created_at from Python's str(time.time()), metadata, EXPIRE and SADD.
  const std::string id = "9f1c2e4a-3b5d-4c6e-8f70-1a2b3c4d5e6f";
  const std::string key = "sg:trace:" + id;
  raw().command({"HSET", key, "state", "RECEIVED", "created_at", "1764876000.1234567",
                 "platform", "web"});
  raw().command({"EXPIRE", key, "86400"});
  raw().command({"SADD", "sg:traces:active", id});

  auto info = run([&]() { return reg().async_get(id); });
  ASSERT_TRUE(info) << info.error().what();
  EXPECT_EQ(info->state, "RECEIVED");
  ASSERT_TRUE(info->created_at.has_value());
  EXPECT_NEAR(*info->created_at, 1764876000.1234567, 1e-6);
  EXPECT_EQ(info->metadata.at("platform"), "web");

  ASSERT_TRUE(run([&]() { return reg().async_advance(id, "INFERENCE"); }));
  auto done = run([&]() { return reg().async_complete(id); });
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->applied);
  auto fields = as_map(raw().strings({"HGETALL", key}));
  EXPECT_EQ(fields["state"], "COMPLETED");
  EXPECT_EQ(fields["created_at"], "1764876000.1234567");
  EXPECT_EQ(fields["platform"], "web");
  EXPECT_EQ(raw().integer({"SISMEMBER", "sg:traces:active", id}), 0);
}

TEST_F(RegistryTest, ListsEveryActiveIdWithCursor) {
  std::set<std::string> created;
  for (int i = 0; i < 250; ++i) created.insert(create());
  auto count = run([&]() { return reg().async_count_active(); });
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 250u);

  std::set<std::string> listed;
  std::string cursor = "0";
  int pages = 0;
  do {
    auto page = run([&]() { return reg().async_list_active(cursor, 50); });
    ASSERT_TRUE(page) << page.error().what();
    listed.insert(page->ids.begin(), page->ids.end());
    cursor = page->cursor;
    ASSERT_LT(++pages, 1000);
  } while (cursor != "0");
  EXPECT_EQ(listed, created);
}

TEST_F(RegistryTest, ListRejectsBadCursor) {
  auto page = run([&]() { return reg().async_list_active("abc", 10); });
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error(), errc::invalid_argument);
}

TEST_F(RegistryTest, StatsCountsByStateAndOldest) {
  create("RECEIVED");
  create("RECEIVED");
  std::string id = create("RECEIVED");
  ASSERT_TRUE(run([&]() { return reg().async_advance(id, "INFERENCE"); }));
  raw().command({"HSET", "sg:trace:" + id, "created_at", std::to_string(server_now(raw()) - 100)});
  auto stats = run([&]() { return reg().async_stats(); });
  ASSERT_TRUE(stats) << stats.error().what();
  EXPECT_EQ(stats->active, 3u);
  EXPECT_EQ(stats->by_state["RECEIVED"], 2u);
  EXPECT_EQ(stats->by_state["INFERENCE"], 1u);
  ASSERT_TRUE(stats->oldest_age_s.has_value());
  EXPECT_GE(*stats->oldest_age_s, 99.0);
}

TEST_F(RegistryTest, HonoursPrefix) {
  options_.prefix = "edge";
  std::string id = create();
  EXPECT_EQ(raw().integer({"EXISTS", "edge:trace:" + id}), 1);
  EXPECT_EQ(raw().integer({"SISMEMBER", "edge:traces:active", id}), 1);
  EXPECT_EQ(raw().integer({"EXISTS", "sg:traces:active"}), 0);
}

TEST_F(RegistryTest, ShardedLayoutUsesSortedIndexScoredInMilliseconds) {
  options_.layout = layout_kind::sharded;
  std::string id = create();
  auto keys = make_layout(options_);
  const std::string trace_key = keys->trace_key(id);
  const std::string index_key = keys->index_key_for(id);
  const double created_at = std::stod(raw().str({"HGET", trace_key, "created_at"}));
  const double score = std::stod(raw().str({"ZSCORE", index_key, id}));
  EXPECT_NEAR(score, created_at * 1000, 1.0);

  auto outcome = run([&]() { return reg().async_complete(id); });
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->applied);
  EXPECT_EQ(raw().integer({"ZSCORE", index_key, id}), 0);
  EXPECT_TRUE(raw().command({"ZSCORE", index_key, id}).is_nil());
  auto count = run([&]() { return reg().async_count_active(); });
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 0u);
}

// complete and fail race on the same ids, from two connections so that
// Redis sees them in either order: exactly one wins each time, and the
// stored state is the winner's.
class RegistryConcurrency : public RegistryTest {};

TEST_F(RegistryConcurrency, CompleteRacingFailHasOneWinner) {
  constexpr int kTraces = 500;
  std::vector<std::string> ids;
  for (int i = 0; i < kTraces; ++i) ids.push_back(create());

  redis::connection other(io().get_executor(), redis::parse_url(server().unix_url()).value());
  other.start();
  ASSERT_TRUE(run([&]() { return other.async_wait_ready(std::chrono::seconds(10)); }));
  registry other_reg(other, options_);

  std::vector<result<finish_outcome>> completes(kTraces, error(errc::closed));
  std::vector<result<finish_outcome>> fails(kTraces, error(errc::closed));
  run([&]() -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    int remaining = 2 * kTraces;
    asio::steady_timer done(executor, std::chrono::steady_clock::time_point::max());
    for (int i = 0; i < kTraces; ++i) {
      // Alternate which call is issued first so both orders occur.
      auto spawn_complete = [&, i] {
        asio::co_spawn(executor, [&, i]() -> asio::awaitable<void> {
          completes[i] = co_await reg().async_complete(ids[i]);
          if (--remaining == 0) done.cancel();
        }, asio::detached);
      };
      auto spawn_fail = [&, i] {
        asio::co_spawn(executor, [&, i]() -> asio::awaitable<void> {
          fails[i] = co_await other_reg.async_fail(ids[i], "race");
          if (--remaining == 0) done.cancel();
        }, asio::detached);
      };
      if (i % 2 == 0) {
        spawn_complete();
        spawn_fail();
      } else {
        spawn_fail();
        spawn_complete();
      }
    }
    boost::system::error_code ignored;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  });

  for (int i = 0; i < kTraces; ++i) {
    ASSERT_TRUE(completes[i]) << completes[i].error().what();
    ASSERT_TRUE(fails[i]) << fails[i].error().what();
    EXPECT_NE(completes[i]->applied, fails[i]->applied) << ids[i];
    const std::string winner = completes[i]->applied ? "COMPLETED" : "ERRORED";
    EXPECT_EQ(completes[i]->state, winner);
    EXPECT_EQ(fails[i]->state, winner);
    EXPECT_EQ(raw().str({"HGET", "sg:trace:" + ids[i], "state"}), winner);
  }
  EXPECT_EQ(raw().integer({"SCARD", "sg:traces:active"}), 0);
  other.close();
}

}  // namespace
}  // namespace tracewatch
