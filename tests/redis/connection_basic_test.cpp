// redis::connection against a real redis-server: commands, pipelines, error
// replies, large values, scripts and set-up from a URL.

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "support/test_support.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using redis::reply;
using redis::request;
using testing::run_coro;

class Connection : public testing::RedisTest {
 protected:
  redis::config config_for_server() {
    auto cfg = redis::parse_url(server().unix_url());
    EXPECT_TRUE(cfg.has_value());
    return cfg.value();
  }

  asio::io_context io_;
};

TEST_F(Connection, SetThenGetInOneRequest) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("SET", "greeting", "hello");
    req.push("GET", "greeting");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  ASSERT_EQ(replies->size(), 2u);
  EXPECT_EQ((*replies)[0].str, "OK");
  EXPECT_EQ((*replies)[0].type, reply::kind::status);
  EXPECT_EQ((*replies)[1].str, "hello");
  EXPECT_EQ((*replies)[1].type, reply::kind::string);
  EXPECT_EQ(raw().str({"GET", "greeting"}), "hello");
}

TEST_F(Connection, RequestsBeforeStartWaitForConnect) {
  redis::connection conn(io_.get_executor(), config_for_server());
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("INCR", "counter");
    auto pending = conn.async_exec(req);
    conn.start();
    co_return co_await std::move(pending);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_EQ(replies->front().integer, 1);
}

TEST_F(Connection, ReplyTypesAreMapped) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  raw().command({"RPUSH", "list", "a", "b"});
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("GET", "missing");
    req.push("LRANGE", "list", 0, -1);
    req.push("INCRBY", "n", -5);
    req.push("PING");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_TRUE((*replies)[0].is_nil());
  ASSERT_TRUE((*replies)[1].is_array());
  ASSERT_EQ((*replies)[1].elements.size(), 2u);
  EXPECT_EQ((*replies)[1].elements[1].str, "b");
  EXPECT_EQ((*replies)[2].integer, -5);
  EXPECT_EQ((*replies)[3].str, "PONG");
}

TEST_F(Connection, ErrorReplyIsAValueAndKeepsServerText) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  raw().command({"SET", "text", "abc"});
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("INCR", "text");
    req.push("SET", "after", "1");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_TRUE((*replies)[0].is_error());
  EXPECT_EQ((*replies)[0].str, "ERR value is not an integer or out of range");
  EXPECT_EQ((*replies)[1].str, "OK");
}

TEST_F(Connection, BinaryValuesRoundTrip) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  const std::string value("a\0b\r\n$3\r\n*1\xff", 13);
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("SET", std::string("k\0ey", 4), value);
    req.push("GET", std::string("k\0ey", 4));
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_EQ((*replies)[1].str, value);
}

TEST_F(Connection, LargeValuesRoundTrip) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  std::string value(6u << 20, 'x');
  for (std::size_t i = 0; i < value.size(); i += 4099) value[i] = static_cast<char>('a' + i % 26);
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("SET", "big", value);
    req.push("GET", "big");
    req.push("STRLEN", "big");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_EQ((*replies)[1].str, value);
  EXPECT_EQ((*replies)[2].integer, static_cast<std::int64_t>(value.size()));
}

TEST_F(Connection, ExplicitPipelineOfManyCommands) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  constexpr int kCommands = 5000;
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    for (int i = 0; i < kCommands; ++i) req.push("RPUSH", "seq", i);
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  ASSERT_EQ(replies->size(), static_cast<std::size_t>(kCommands));
  EXPECT_EQ(replies->back().integer, kCommands);
  EXPECT_EQ(raw().str({"LINDEX", "seq", "4321"}), "4321");
}

TEST_F(Connection, EmptyRequestReturnsNoReplies) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    co_return co_await conn.async_exec(request{});
  });
  ASSERT_TRUE(replies.has_value());
  EXPECT_TRUE(replies->empty());
}

TEST_F(Connection, SelectsDatabaseFromUrl) {
  auto cfg = redis::parse_url(server().unix_url() + "?db=3");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().what();
  redis::connection conn(io_.get_executor(), *cfg);
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("SET", "in-db-3", "yes");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_TRUE(raw().command({"GET", "in-db-3"}).is_nil());
  raw().command({"SELECT", "3"});
  EXPECT_EQ(raw().str({"GET", "in-db-3"}), "yes");
}

TEST_F(Connection, SetsClientName) {
  auto cfg = config_for_server();
  cfg.client_name = "tracewatch-test";
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("CLIENT", "GETNAME");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_EQ(replies->front().str, "tracewatch-test");
}

TEST_F(Connection, DatabaseOutOfRangeFailsReady) {
  auto cfg = config_for_server();
  cfg.database = 999;
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(10s); });
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error(), errc::server_error);
  EXPECT_NE(ready.error().message.find("SELECT 999"), std::string::npos) << ready.error().what();
}

TEST_F(Connection, WaitReadySucceedsOnceConnected) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(10s); });
  EXPECT_TRUE(ready.has_value()) << ready.error().what();
  EXPECT_TRUE(conn.is_ready());
  EXPECT_EQ(conn.stats().connects, 1u);
}

TEST_F(Connection, CloseCompletesLaterRequestsWithClosed) {
  redis::connection conn(io_.get_executor(), config_for_server());
  conn.start();
  conn.close();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("PING");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_FALSE(replies.has_value());
  EXPECT_EQ(replies.error(), errc::closed);
}

TEST_F(Connection, OverlongSocketPathFailsReady) {
  auto cfg = config_for_server();
  cfg.unix_path = "/tmp/" + std::string(200, 'p') + ".sock";
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(10s); });
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error(), errc::invalid_argument);
  EXPECT_NE(ready.error().message.find("longer than"), std::string::npos) << ready.error().what();
}

TEST_F(Connection, TlsUrlFailsWithTlsUnsupported) {
  auto cfg = redis::parse_url("rediss://127.0.0.1:6380");
  ASSERT_TRUE(cfg.has_value());
  redis::connection conn(io_.get_executor(), *cfg);
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("PING");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_FALSE(replies.has_value());
  EXPECT_EQ(replies.error(), errc::tls_unsupported);
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(1s); });
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error(), errc::tls_unsupported);
}

}  // namespace
}  // namespace tracewatch
