#include "support/test_support.hpp"
using tracewatch::testing::RedisTest;
TEST_F(RedisTest, FixtureServerAnswers) { EXPECT_EQ(raw().str({"PING"}), "PONG"); }
