// detail::resp_reader: RESP2 parsing and its limits, fed bytes directly.

#include <gtest/gtest.h>

#include "tracewatch/redis/detail/resp_reader.hpp"

namespace tracewatch::redis::detail {
namespace {

// Feeds `bytes` and collects every complete reply; stops at the first error.
struct parse_outcome {
  std::vector<reply> replies;
  std::optional<error> failure;
};

parse_outcome parse_all(resp_reader& reader, std::string_view bytes) {
  parse_outcome out;
  auto fed = reader.feed(bytes);
  if (!fed) {
    out.failure = fed.error();
    return out;
  }
  for (;;) {
    reply r;
    auto next = reader.next(r);
    if (!next) {
      out.failure = next.error();
      return out;
    }
    if (!*next) return out;
    out.replies.push_back(std::move(r));
  }
}

// Joins pieces; `"x" + std::string(...)` trips a false GCC 12 -Warray-bounds.
std::string cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (auto piece : pieces) out.append(piece);
  return out;
}

parse_outcome parse_all(std::string_view bytes, parser_limits limits = {}) {
  resp_reader reader(limits);
  return parse_all(reader, bytes);
}

TEST(RespReader, ParsesEveryReplyType) {
  auto out = parse_all("+OK\r\n-ERR bad thing\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*0\r\n");
  ASSERT_FALSE(out.failure) << out.failure->what();
  ASSERT_EQ(out.replies.size(), 7u);
  EXPECT_EQ(out.replies[0].type, reply::kind::status);
  EXPECT_EQ(out.replies[0].str, "OK");
  EXPECT_EQ(out.replies[1].type, reply::kind::error);
  EXPECT_EQ(out.replies[1].str, "ERR bad thing");
  EXPECT_EQ(out.replies[2].integer, -42);
  EXPECT_EQ(out.replies[3].str, "hello");
  EXPECT_TRUE(out.replies[4].is_nil());
  EXPECT_TRUE(out.replies[5].is_nil());
  EXPECT_TRUE(out.replies[6].is_array());
  EXPECT_TRUE(out.replies[6].elements.empty());
}

TEST(RespReader, ParsesNestedArrays) {
  auto out = parse_all("*3\r\n:1\r\n*2\r\n$1\r\na\r\n*1\r\n+x\r\n$-1\r\n");
  ASSERT_FALSE(out.failure) << out.failure->what();
  ASSERT_EQ(out.replies.size(), 1u);
  const reply& r = out.replies[0];
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 1);
  ASSERT_EQ(r.elements[1].elements.size(), 2u);
  EXPECT_EQ(r.elements[1].elements[0].str, "a");
  EXPECT_EQ(r.elements[1].elements[1].elements[0].str, "x");
  EXPECT_TRUE(r.elements[2].is_nil());
}

TEST(RespReader, BinarySafeBulk) {
  const std::string body("a\0\r\n\xff", 5);
  auto out = parse_all(cat({"$5\r\n", body, "\r\n"}));
  ASSERT_FALSE(out.failure);
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].str, body);
}

TEST(RespReader, ReassemblesRepliesSplitAcrossFeeds) {
  const std::string stream = "*2\r\n$11\r\nhello world\r\n:7\r\n+PONG\r\n";
  resp_reader reader(parser_limits{});
  std::vector<reply> replies;
  for (char c : stream) {
    auto out = parse_all(reader, std::string_view(&c, 1));
    ASSERT_FALSE(out.failure) << out.failure->what();
    for (auto& r : out.replies) replies.push_back(std::move(r));
  }
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].elements[0].str, "hello world");
  EXPECT_EQ(replies[0].elements[1].integer, 7);
  EXPECT_EQ(replies[1].str, "PONG");
  EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(RespReader, RejectsHugeArrayHeaderBeforeAllocating) {
  auto out = parse_all("*2147483647\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
  EXPECT_NE(out.failure->message.find("max_array_elements"), std::string::npos)
      << out.failure->message;
}

TEST(RespReader, RejectsArrayHeaderOverInt) {
  auto out = parse_all("*4294967297\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
}

TEST(RespReader, RejectsArrayOverConfiguredLimit) {
  parser_limits limits;
  limits.max_array_elements = 3;
  EXPECT_FALSE(parse_all("*3\r\n:1\r\n:2\r\n:3\r\n", limits).failure);
  EXPECT_TRUE(parse_all("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", limits).failure);
}

TEST(RespReader, RejectsBulkLengthBeforeBodyArrives) {
  parser_limits limits;
  limits.max_bulk_bytes = 1000;
  // Only the length line is here: the body is never waited for.
  auto out = parse_all("$1001\r\nxx", limits);
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
  EXPECT_NE(out.failure->message.find("max_bulk_bytes"), std::string::npos)
      << out.failure->message;
}

TEST(RespReader, RejectsHugeBulkLengthInsideArray) {
  auto out = parse_all("*2\r\n:1\r\n$99999999999\r\nabc");
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->message.find("max_bulk_bytes"), std::string::npos)
      << out.failure->message;
}

TEST(RespReader, RejectsEndlessLine) {
  parser_limits limits;
  limits.max_line_bytes = 100;
  resp_reader reader(limits);
  auto first = parse_all(reader, cat({"+", std::string(50, 'a')}));
  EXPECT_FALSE(first.failure);
  auto second = parse_all(reader, std::string(60, 'a'));
  ASSERT_TRUE(second.failure);
  EXPECT_NE(second.failure->message.find("max_line_bytes"), std::string::npos)
      << second.failure->message;
}

TEST(RespReader, RejectsLongBulkLengthLine) {
  auto out = parse_all(cat({"$", std::string(40, '1')}));
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
}

TEST(RespReader, RejectsInputOverBufferLimit) {
  parser_limits limits;
  limits.max_buffered_bytes = 64;
  limits.max_bulk_bytes = 1000;
  resp_reader reader(limits);
  EXPECT_FALSE(parse_all(reader, cat({"$500\r\n", std::string(50, 'x')})).failure);
  auto out = parse_all(reader, std::string(50, 'x'));
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->message.find("max_buffered_bytes"), std::string::npos)
      << out.failure->message;
}

TEST(RespReader, RejectsReplyOverMemoryLimit) {
  parser_limits limits;
  limits.max_reply_bytes = 4096;
  std::string many = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) many += ":1\r\n";
  auto out = parse_all(many, limits);
  ASSERT_TRUE(out.failure);
  EXPECT_NE(out.failure->message.find("max_reply_bytes"), std::string::npos)
      << out.failure->message;
}

TEST(RespReader, AcceptsNestingSevenDeep) {
  std::string seven;
  for (int i = 0; i < 7; ++i) seven += "*1\r\n";
  seven += ":5\r\n";
  auto out = parse_all(seven);
  ASSERT_FALSE(out.failure) << out.failure->what();
  const reply* r = &out.replies.at(0);
  for (int i = 0; i < 7; ++i) r = &r->elements.at(0);
  EXPECT_EQ(r->integer, 5);
}

TEST(RespReader, RejectsNestingDeeperThanHiredisSupports) {
  std::string deep;
  for (int i = 0; i < 64; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  auto out = parse_all(deep);
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
  EXPECT_NE(out.failure->message.find("nested"), std::string::npos) << out.failure->message;
}

TEST(RespReader, RejectsBulkLongerThanDeclared) {
  auto out = parse_all("$3\r\nabcXY\r\n:1\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
  EXPECT_NE(out.failure->message.find("CRLF"), std::string::npos) << out.failure->message;
}

TEST(RespReader, RejectsGarbageTypeByte) {
  auto out = parse_all("hello\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(*out.failure, errc::protocol_error);
}

TEST(RespReader, RejectsBadIntegerAndBulkLength) {
  EXPECT_TRUE(parse_all(":12x\r\n").failure);
  EXPECT_TRUE(parse_all("$abc\r\n").failure);
  EXPECT_TRUE(parse_all("$-5\r\n").failure);
  EXPECT_TRUE(parse_all("*-7\r\n").failure);
}

TEST(RespReader, StaysFailedUntilReset) {
  resp_reader reader(parser_limits{});
  EXPECT_TRUE(parse_all(reader, "?\r\n").failure);
  EXPECT_TRUE(parse_all(reader, "+OK\r\n").failure);
  reader.reset();
  auto out = parse_all(reader, "+OK\r\n");
  ASSERT_FALSE(out.failure);
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].str, "OK");
}

TEST(RespReader, ErrorInsidePartialArrayFreesIt) {
  // Runs under AddressSanitizer in CI: the partial tree must not leak.
  resp_reader reader(parser_limits{});
  auto out = parse_all(reader, "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n!");
  EXPECT_TRUE(out.failure);
  reader.reset();
  EXPECT_FALSE(parse_all(reader, ":1\r\n").failure);
}

}  // namespace
}  // namespace tracewatch::redis::detail
