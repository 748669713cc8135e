#include "tracewatch/log_rate_limiter.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using clock = log_rate_limiter::clock;

TEST(LogRateLimiter, HeaderExample) {
  log_rate_limiter limiter({.max_lines = 2, .interval = std::chrono::seconds(10)});
  const auto now = clock::now();

  const auto first = limiter.admit("redis.timeout", now);
  EXPECT_TRUE(first.allowed);
  EXPECT_EQ(first.suppressed, 0u);
  EXPECT_TRUE(limiter.admit("redis.timeout", now).allowed);
  EXPECT_FALSE(limiter.admit("redis.timeout", now).allowed);

  const auto next_window = limiter.admit("redis.timeout", now + 10s);
  EXPECT_TRUE(next_window.allowed);
  EXPECT_EQ(next_window.suppressed, 1u);
}

TEST(LogRateLimiter, SuppressedCountReportedOnce) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s});
  const auto now = clock::now();
  limiter.admit("k", now);
  limiter.admit("k", now + 1ms);
  limiter.admit("k", now + 2ms);

  EXPECT_EQ(limiter.admit("k", now + 1s).suppressed, 2u);
  EXPECT_EQ(limiter.admit("k", now + 2s).suppressed, 0u);
}

TEST(LogRateLimiter, WindowLastsTheInterval) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s});
  const auto now = clock::now();
  EXPECT_TRUE(limiter.admit("k", now).allowed);
  EXPECT_FALSE(limiter.admit("k", now + 999ms).allowed);
  EXPECT_TRUE(limiter.admit("k", now + 1s).allowed);
}

TEST(LogRateLimiter, KeysAreIndependent) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s});
  const auto now = clock::now();
  EXPECT_TRUE(limiter.admit("a", now).allowed);
  EXPECT_TRUE(limiter.admit("b", now).allowed);
  EXPECT_FALSE(limiter.admit("a", now).allowed);
}

TEST(LogRateLimiter, TakeSuppressedReportsAndResets) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s});
  const auto now = clock::now();
  limiter.admit("a", now);
  limiter.admit("a", now);
  limiter.admit("a", now);
  limiter.admit("b", now);

  const auto reports = limiter.take_suppressed();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].first, "a");
  EXPECT_EQ(reports[0].second, 2u);
  EXPECT_TRUE(limiter.take_suppressed().empty());
  EXPECT_EQ(limiter.admit("a", now + 1s).suppressed, 0u);
}

TEST(LogRateLimiter, FullTableDropsEndedWindows) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s, .max_keys = 2});
  const auto now = clock::now();
  limiter.admit("a", now);
  limiter.admit("b", now);

  // Both windows ended and owe no report, so "c" gets an entry of its own
  // and is limited on its own.
  EXPECT_TRUE(limiter.admit("c", now + 1s).allowed);
  EXPECT_FALSE(limiter.admit("c", now + 1s).allowed);
  EXPECT_TRUE(limiter.admit("d", now + 1s).allowed);
}

TEST(LogRateLimiter, FullTableSharesOverflowEntry) {
  log_rate_limiter limiter({.max_lines = 1, .interval = 1s, .max_keys = 2});
  const auto now = clock::now();
  limiter.admit("a", now);
  limiter.admit("b", now);

  // No room: "c" and "d" share the overflow entry and its limit.
  EXPECT_TRUE(limiter.admit("c", now).allowed);
  EXPECT_FALSE(limiter.admit("d", now).allowed);
}

// Every line is either allowed or counted as suppressed, whatever the
// interleaving of threads.
TEST(LogRateLimiterConcurrency, EveryLineIsAccounted) {
  log_rate_limiter limiter({.max_lines = 5, .interval = 1h});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10'000;
  std::atomic<std::uint64_t> allowed{0};
  std::atomic<std::uint64_t> reported{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto d = limiter.admit(i % 2 == 0 ? "even" : "odd", clock::now());
        if (d.allowed) ++allowed;
        reported += d.suppressed;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& [key, count] : limiter.take_suppressed()) reported += count;

  EXPECT_EQ(allowed.load(), 10u);  // 5 per key in one window
  EXPECT_EQ(allowed.load() + reported.load(), std::uint64_t{kThreads} * kPerThread);
}

}  // namespace
}  // namespace tracewatch
