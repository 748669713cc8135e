// redis::request: RESP2 encoding of commands, no server.

#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tracewatch/redis/reply.hpp"

namespace tracewatch::redis {
namespace {

TEST(RespEncoding, EncodesCommandAsArrayOfBulks) {
  request req;
  req.push("SET", "key", "value");
  EXPECT_EQ(req.payload(), "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
  EXPECT_EQ(req.size(), 1u);
}

TEST(RespEncoding, EncodesIntegersAsDecimalBulks) {
  request req;
  req.push("EXPIRE", "k", 86400);
  req.push("INCRBY", "k", -3);
  req.push("X", std::uint64_t{18446744073709551615u});
  EXPECT_EQ(req.payload(),
            "*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$5\r\n86400\r\n"
            "*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$2\r\n-3\r\n"
            "*2\r\n$1\r\nX\r\n$20\r\n18446744073709551615\r\n");
  EXPECT_EQ(req.size(), 3u);
}

TEST(RespEncoding, BinarySafeArguments) {
  request req;
  const std::string value("a\0b\r\n", 5);
  req.push("SET", std::string_view("k\0", 2), value);
  EXPECT_EQ(req.payload(), std::string("*3\r\n$3\r\nSET\r\n$2\r\nk\0\r\n$5\r\na\0b\r\n\r\n", 32));
}

TEST(RespEncoding, EmptyArgument) {
  request req;
  req.push("SET", "k", "");
  EXPECT_EQ(req.payload(), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

TEST(RespEncoding, PushRangeAppendsHeadThenRange) {
  request req;
  const std::vector<std::string> members = {"a", "bb"};
  req.push_range("SADD", members, "set");
  EXPECT_EQ(req.payload(), "*4\r\n$4\r\nSADD\r\n$3\r\nset\r\n$1\r\na\r\n$2\r\nbb\r\n");

  request empty_range;
  empty_range.push_range("EVALSHA", std::array<std::string_view, 0>{}, "abc", 0);
  EXPECT_EQ(empty_range.payload(), "*3\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n0\r\n");
}

TEST(RespEncoding, ClearKeepsNothing) {
  request req;
  req.push("PING");
  req.clear();
  EXPECT_TRUE(req.empty());
  EXPECT_EQ(req.payload(), "");
}

}  // namespace
}  // namespace tracewatch::redis
