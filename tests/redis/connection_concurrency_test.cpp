// Many coroutines on one redis::connection: automatic pipelining, reply
// matching, cancellation placeholders and a strand on two threads. The
// suite name contains "Concurrency", so CI also runs it under
// ThreadSanitizer.

#include <atomic>
#include <thread>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "support/test_support.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using redis::reply;
using redis::request;
using testing::run_coro;

class ConnectionConcurrency : public testing::RedisTest {
 protected:
  redis::config config_for_server() { return redis::parse_url(server().unix_url()).value(); }

  asio::io_context io_;
};

TEST_F(ConnectionConcurrency, ThousandCoroutinesEachGetTheirOwnReplies) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  constexpr int kCoroutines = 1000;
  constexpr int kRounds = 10;
  int mismatches = 0;
  int failures = 0;
  int finished = 0;

  run_coro(io_, [&]() -> asio::awaitable<void> {
    auto worker = [&](int id) -> asio::awaitable<void> {
      for (int round = 0; round < kRounds; ++round) {
        const std::string key = "k:" + std::to_string(id);
        const std::string value = std::to_string(id * 1000 + round);
        request req;
        req.push("SET", key, value);
        req.push("GET", key);
        auto replies = co_await conn.async_exec(req);
        if (!replies || replies->size() != 2) {
          ++failures;
          continue;
        }
        if ((*replies)[1].str != value) ++mismatches;
      }
      ++finished;
    };
    for (int id = 0; id < kCoroutines; ++id) asio::co_spawn(io_, worker(id), asio::detached);
    asio::steady_timer poll(io_);
    while (finished < kCoroutines) {
      poll.expires_after(5ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
  });

  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mismatches, 0);
  const auto stats = conn.stats();
  EXPECT_EQ(stats.requests, static_cast<std::uint64_t>(kCoroutines * kRounds));
  EXPECT_EQ(stats.errors, 0u);
  // Automatic pipelining: far fewer socket writes than requests.
  EXPECT_LT(stats.writes, stats.requests / 4);
}

TEST_F(ConnectionConcurrency, StrandOnTwoThreads) {
  auto strand = asio::make_strand(io_);
  redis::connection conn(strand, config_for_server());
  constexpr int kCoroutines = 200;
  constexpr int kRounds = 20;
  std::atomic<int> failures{0};
  std::atomic<int> finished{0};

  asio::dispatch(strand, [&] { conn.start(); });
  for (int id = 0; id < kCoroutines; ++id) {
    asio::co_spawn(
        strand,
        [&, id]() -> asio::awaitable<void> {
          for (int round = 0; round < kRounds; ++round) {
            request req;
            req.push("INCR", "counter:" + std::to_string(id % 10));
            auto replies = co_await conn.async_exec(req);
            if (!replies || !replies->front().is_integer()) ++failures;
          }
          ++finished;
        },
        asio::detached);
  }

  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      const auto guard = std::chrono::steady_clock::now() + 60s;
      while (finished.load() < kCoroutines && std::chrono::steady_clock::now() < guard) {
        io_.run_for(20ms);
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(finished.load(), kCoroutines);
  EXPECT_EQ(failures.load(), 0);
  long long total = 0;
  for (int i = 0; i < 10; ++i) total += std::stoll(raw().str({"GET", "counter:" + std::to_string(i)}));
  EXPECT_EQ(total, kCoroutines * kRounds);

  auto closed = asio::post(strand, asio::use_future([&] { conn.close(); }));
  io_.restart();
  io_.run_for(100ms);
  closed.get();
}

// A caller cancelled after its request was written leaves a placeholder, so
// the late reply is dropped and the next reply still reaches its own caller.
TEST_F(ConnectionConcurrency, CancelledWrittenRequestKeepsRepliesMatched) {
  using namespace asio::experimental::awaitable_operators;
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  raw().command({"SET", "after", "expected"});

  auto outcome = run_coro(io_, [&]() -> asio::awaitable<std::pair<bool, std::string>> {
    co_await conn.async_wait_ready(10s);
    request slow;
    slow.push("BLPOP", "never-filled", "0.3");
    asio::steady_timer timer(io_, 20ms);
    auto first = co_await (conn.async_exec(slow) || timer.async_wait(asio::use_awaitable));
    const bool timer_won = first.index() == 1;

    request next;
    next.push("GET", "after");
    auto replies = co_await conn.async_exec(next);
    co_return std::make_pair(timer_won, replies ? replies->front().str : replies.error().what());
  });

  EXPECT_TRUE(outcome.first);
  EXPECT_EQ(outcome.second, "expected");
  EXPECT_EQ(conn.stats().connects, 1u);  // no reset was needed
}

TEST_F(ConnectionConcurrency, CancelledQueuedRequestIsNeverSent) {
  // Not started: the request stays queued until it is cancelled. A
  // coroutine lets only terminal cancellation through by default.
  redis::connection conn(io_.get_executor(), config_for_server());
  asio::cancellation_signal signal;

  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("SET", "cancelled", "1");
    asio::steady_timer timer(io_, 10ms);
    timer.async_wait([&](boost::system::error_code) { signal.emit(asio::cancellation_type::terminal); });
    co_return co_await asio::co_spawn(
        io_, conn.async_exec(req),
        asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
  });

  ASSERT_FALSE(replies.has_value());
  EXPECT_EQ(replies.error().code, std::make_error_code(std::errc::operation_canceled));

  conn.start();
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(10s); });
  ASSERT_TRUE(ready.has_value());
  auto check = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("EXISTS", "cancelled");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(check.has_value());
  EXPECT_EQ(check->front().integer, 0);
}

}  // namespace
}  // namespace tracewatch
