// detail::backoff_ceiling and backoff_delay: no server.

#include <gtest/gtest.h>

#include "tracewatch/redis/detail/backoff.hpp"

namespace tracewatch::redis::detail {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, CeilingDoublesFromMinimum) {
  EXPECT_EQ(backoff_ceiling(0, 50ms, 5000ms), 50ms);
  EXPECT_EQ(backoff_ceiling(1, 50ms, 5000ms), 100ms);
  EXPECT_EQ(backoff_ceiling(3, 50ms, 5000ms), 400ms);
  EXPECT_EQ(backoff_ceiling(6, 50ms, 5000ms), 3200ms);
}

TEST(Backoff, CeilingIsCapped) {
  EXPECT_EQ(backoff_ceiling(7, 50ms, 5000ms), 5000ms);
  EXPECT_EQ(backoff_ceiling(1000, 50ms, 5000ms), 5000ms);
  EXPECT_EQ(backoff_ceiling(4000000000u, 1ms, 10000ms), 10000ms);
}

TEST(Backoff, CapBelowMinimumWins) {
  EXPECT_EQ(backoff_ceiling(0, 500ms, 100ms), 100ms);
}

TEST(Backoff, ZeroMinimumMeansNoDelay) {
  EXPECT_EQ(backoff_ceiling(30, 0ms, 5000ms), 0ms);
  EXPECT_EQ(backoff_delay(30, 0ms, 5000ms, 0.9), 0ms);
}

TEST(Backoff, FullJitterSpansZeroToCeiling) {
  EXPECT_EQ(backoff_delay(3, 50ms, 5000ms, 0.0), 0ms);
  EXPECT_EQ(backoff_delay(3, 50ms, 5000ms, 0.5), 200ms);
  EXPECT_EQ(backoff_delay(3, 50ms, 5000ms, 0.999999), 399ms);
  EXPECT_EQ(backoff_delay(20, 50ms, 5000ms, 0.5), 2500ms);
}

TEST(Backoff, RandomInputIsClamped) {
  EXPECT_EQ(backoff_delay(0, 100ms, 5000ms, -3.0), 0ms);
  EXPECT_EQ(backoff_delay(0, 100ms, 5000ms, 1.0), 99ms);
  EXPECT_EQ(backoff_delay(0, 100ms, 5000ms, 7.5), 99ms);
  EXPECT_EQ(backoff_delay(0, 100ms, 5000ms, std::numeric_limits<double>::quiet_NaN()), 0ms);
}

}  // namespace
}  // namespace tracewatch::redis::detail
