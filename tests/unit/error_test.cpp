#include <gtest/gtest.h>
#include "tracewatch/error.hpp"
TEST(Error, RetryableGroup) {
  EXPECT_TRUE(tracewatch::is_retryable(tracewatch::errc::timeout));
  EXPECT_FALSE(tracewatch::is_retryable(tracewatch::errc::invalid_trace_id));
}
