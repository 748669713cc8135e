// redis::script: the SHA1 that EVALSHA names a script by. No server.

#include <gtest/gtest.h>

#include "tracewatch/redis/connection.hpp"

namespace tracewatch::redis {
namespace {

TEST(Script, Sha1OfEmptySource) {
  EXPECT_EQ(script("").sha1(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(Script, Sha1MatchesRedisScriptLoad) {
  // `redis-cli SCRIPT LOAD "return 1"` prints this digest.
  EXPECT_EQ(script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(Script, KeepsSource) {
  script s("return redis.call('GET', KEYS[1])");
  EXPECT_EQ(s.source(), "return redis.call('GET', KEYS[1])");
  EXPECT_EQ(s.sha1().size(), 40u);
}

}  // namespace
}  // namespace tracewatch::redis
