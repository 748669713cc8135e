// connection::async_eval against a real redis-server: EVALSHA, the EVAL
// fallback when the script cache is empty, and script errors.

#include <boost/asio/io_context.hpp>

#include "support/test_support.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

namespace asio = boost::asio;
using redis::reply;
using redis::script;
using testing::run_coro;

class ConnectionScript : public testing::RedisTest {
 protected:
  void SetUp() override {
    RedisTest::SetUp();
    conn_.emplace(io_.get_executor(), redis::parse_url(server().unix_url()).value());
    conn_->start();
  }

  result<reply> eval(const script& s, std::vector<std::string_view> keys,
                     std::vector<std::string_view> args) {
    return run_coro(io_, [&]() -> asio::awaitable<result<reply>> {
      co_return co_await conn_->async_eval(s, keys, args);
    });
  }

  asio::io_context io_;
  std::optional<redis::connection> conn_;
};

TEST_F(ConnectionScript, RunsScriptWithKeysAndArgs) {
  script s("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1]) .. ARGV[2]");
  auto out = eval(s, {"script:key"}, {"value", "!"});
  ASSERT_TRUE(out.has_value()) << out.error().what();
  EXPECT_EQ(out->str, "value!");
  EXPECT_EQ(raw().str({"GET", "script:key"}), "value");
}

TEST_F(ConnectionScript, RunsScriptWithoutKeysOrArgs) {
  script s("return {1, 'two', {3}}");
  auto out = eval(s, {}, {});
  ASSERT_TRUE(out.has_value()) << out.error().what();
  ASSERT_EQ(out->elements.size(), 3u);
  EXPECT_EQ(out->elements[1].str, "two");
  EXPECT_EQ(out->elements[2].elements[0].integer, 3);
}

TEST_F(ConnectionScript, FallsBackToEvalAfterScriptFlush) {
  script s("return 'hello from lua'");
  ASSERT_TRUE(eval(s, {}, {}).has_value());
  EXPECT_EQ(raw().command({"SCRIPT", "EXISTS", s.sha1()}).elements.at(0).integer, 1);

  raw().command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(raw().command({"SCRIPT", "EXISTS", s.sha1()}).elements.at(0).integer, 0);

  auto out = eval(s, {}, {});
  ASSERT_TRUE(out.has_value()) << out.error().what();
  EXPECT_EQ(out->str, "hello from lua");
  // EVAL cached it again, so the next call finds it by its SHA1.
  EXPECT_EQ(raw().command({"SCRIPT", "EXISTS", s.sha1()}).elements.at(0).integer, 1);
}

TEST_F(ConnectionScript, ErrorReplyBecomesServerError) {
  script s("return redis.error_reply('ALREADY_TERMINAL trace finished')");
  auto out = eval(s, {}, {});
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error(), errc::server_error);
  EXPECT_EQ(out.error().message, "ALREADY_TERMINAL trace finished");
}

TEST_F(ConnectionScript, RuntimeErrorKeepsServerText) {
  script s("return redis.call('INCR', KEYS[1])");
  raw().command({"SET", "not-a-number", "abc"});
  auto out = eval(s, {"not-a-number"}, {});
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error(), errc::server_error);
  EXPECT_NE(out.error().message.find("not an integer"), std::string::npos) << out.error().message;
}

TEST_F(ConnectionScript, SyntaxErrorIsServerError) {
  script s("this is not lua");
  auto out = eval(s, {}, {});
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error(), errc::server_error);
  EXPECT_NE(out.error().message.find("Error compiling script"), std::string::npos)
      << out.error().message;
}

}  // namespace
}  // namespace tracewatch
