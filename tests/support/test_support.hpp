// Helpers shared by the test suites: running a coroutine to completion, a
// redis-server per test suite, and a blocking hiredis client used as an
// independent oracle for what is really stored in Redis.

#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "tracewatch/local_redis.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch::testing {

namespace asio = boost::asio;

// Runs the coroutine made by `make()` on `io` until it finishes and returns
// its value. Fails the test (by throwing) if it has not finished after
// `limit`, which only guards against hangs: it is no timing assertion.
template <class Make>
auto run_coro(asio::io_context& io, Make make, std::chrono::seconds limit = std::chrono::seconds(120)) {
  auto future = asio::co_spawn(io, make(), asio::use_future);
  io.restart();
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("coroutine did not finish within the test's hang guard");
    }
    // One handler at a time: a connection always has work pending (its
    // reader and timers), so run_for() would use up every 50 ms slice.
    io.run_one_for(std::chrono::milliseconds(50));
  }
  return future.get();
}

// A blocking client on hiredis's synchronous API. Tests use it to read and
// write Redis independently of the client under test.
class raw_redis {
 public:
  explicit raw_redis(const std::string& socket_path);
  ~raw_redis();
  raw_redis(const raw_redis&) = delete;
  raw_redis& operator=(const raw_redis&) = delete;

  redis::reply command(const std::vector<std::string>& args);
  // Shorthands that return the string, integer or array of strings.
  std::string str(const std::vector<std::string>& args);
  long long integer(const std::vector<std::string>& args);
  std::vector<std::string> strings(const std::vector<std::string>& args);

 private:
  void* context_;  // redisContext*
};

// A fixture with one redis-server per test suite, flushed before each test.
class RedisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  static local_redis& server() { return *server_; }
  raw_redis& raw() { return *raw_; }

 private:
  static inline std::optional<local_redis> server_;
  std::unique_ptr<raw_redis> raw_;
};

// RedisTest plus a started redis::connection to the suite's server on an
// io_context owned by the test. run() drives a coroutine to completion.
class RedisClientTest : public RedisTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  template <class Make>
  auto run(Make make) {
    return run_coro(io_, std::move(make));
  }

  redis::connection& conn() { return *conn_; }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  std::unique_ptr<redis::connection> conn_;
};

}  // namespace tracewatch::testing
