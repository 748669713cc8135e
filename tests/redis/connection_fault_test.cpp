// redis::connection when the server fails: killed and restarted under load,
// paused with SIGSTOP, or down for good. Also time limits, the health check,
// and close() and the destructor with requests pending. Each test starts its
// own redis-server, because it kills or pauses it.

#include <map>
#include <memory>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
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

// Log records kept as "event key=value ..." lines, with the level apart.
struct log_capture {
  std::mutex mutex;
  std::vector<std::string> lines;
  std::vector<log_level> levels;

  logger make() {
    return logger(
        [this](const log_record& r) {
          std::string line = fmt::format("{}", r.event);
          for (const auto& f : r.fields) line = fmt::format("{} {}={}", line, f.key, f.value);
          std::lock_guard lock(mutex);
          lines.push_back(std::move(line));
          levels.push_back(r.level);
        },
        log_level::debug);
  }

  std::size_t count(std::string_view event) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& l : lines) n += l.starts_with(event) ? 1 : 0;
    return n;
  }
};

class ConnectionFault : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = local_redis::start();
    ASSERT_TRUE(started.has_value()) << started.error().what();
    server_.emplace(std::move(*started));
  }

  redis::config fast_config() {
    auto cfg = redis::parse_url(server_->unix_url()).value();
    cfg.connect_timeout = 500ms;
    cfg.request_timeout = 2000ms;
    cfg.reconnect_min_delay = 10ms;
    cfg.reconnect_max_delay = 200ms;
    return cfg;
  }

  asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer timer(io_, d);
    co_await timer.async_wait(asio::use_awaitable);
  }

  // Waits until `condition` holds; the hang guard of run_coro bounds it.
  template <class Condition>
  asio::awaitable<void> until(Condition condition) {
    while (!condition()) co_await sleep(5ms);
  }

  asio::io_context io_;
  std::optional<local_redis> server_;
};

bool is_expected_failure(const error& e) {
  return e == errc::connection_lost || e == errc::not_connected || e == errc::timeout;
}

TEST_F(ConnectionFault, KilledAndRestartedUnderLoad) {
  log_capture logs;
  redis::connection conn(io_.get_executor(), fast_config(), logs.make());
  conn.start();

  constexpr int kWorkers = 200;
  std::uint64_t issued = 0;
  std::uint64_t completed = 0;
  std::uint64_t successes = 0;
  std::uint64_t successes_after_restart = 0;
  std::map<std::string, int> unexpected;  // error text -> count
  bool restarted = false;
  bool stop = false;
  int running = kWorkers;

  run_coro(io_, [&]() -> asio::awaitable<void> {
    auto worker = [&]() -> asio::awaitable<void> {
      while (!stop) {
        request req;
        req.push("INCR", "load");
        ++issued;
        auto replies = co_await conn.async_exec(req);
        ++completed;
        if (replies) {
          ++successes;
          if (restarted) ++successes_after_restart;
        } else if (!is_expected_failure(replies.error())) {
          ++unexpected[replies.error().what()];
        }
      }
      --running;
    };
    for (int i = 0; i < kWorkers; ++i) asio::co_spawn(io_, worker(), asio::detached);

    co_await until([&] { return successes >= 5000; });
    server_->kill_hard();
    co_await sleep(100ms);
    auto again = server_->restart();
    EXPECT_TRUE(again.has_value()) << again.error().what();
    restarted = true;
    co_await until([&] { return successes_after_restart >= 5000; });
    stop = true;
    co_await until([&] { return running == 0; });
  });

  EXPECT_EQ(completed, issued);  // every request completed exactly once
  EXPECT_TRUE(unexpected.empty()) << unexpected.begin()->first;
  EXPECT_GE(successes_after_restart, 5000u);
  EXPECT_GE(conn.stats().connects, 2u);
  EXPECT_EQ(conn.stats().requests, issued);
  EXPECT_GE(logs.count("redis_disconnected"), 1u);
  EXPECT_GE(logs.count("redis_connected"), 2u);
}

TEST_F(ConnectionFault, QueuedRequestsSurviveReconnect) {
  redis::connection conn(io_.get_executor(), fast_config());
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    co_await conn.async_wait_ready(10s);
    server_->kill_hard();
    co_await until([&] { return !conn.is_ready(); });

    // Issued while the server is down: queued, then sent after the restart.
    request req;
    req.push("SET", "queued", "yes");
    auto pending = asio::co_spawn(io_, conn.async_exec_for(req, 10s), asio::use_awaitable);
    co_await sleep(100ms);
    auto again = server_->restart();
    EXPECT_TRUE(again.has_value());
    co_return co_await std::move(pending);
  });
  ASSERT_TRUE(replies.has_value()) << replies.error().what();
  EXPECT_EQ(replies->front().str, "OK");
}

TEST_F(ConnectionFault, ServerDownGivesNotConnected) {
  auto cfg = fast_config();
  server_->kill_hard();
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    request req;
    req.push("PING");
    co_return co_await conn.async_exec_for(req, 300ms);
  });
  ASSERT_FALSE(replies.has_value());
  EXPECT_EQ(replies.error(), errc::not_connected);
  EXPECT_NE(replies.error().message.find(server_->socket_path()), std::string::npos)
      << replies.error().message;
  EXPECT_GE(conn.stats().connect_failures, 1u);
}

TEST_F(ConnectionFault, PausedServerTimesOutWrittenRequestAndRecovers) {
  redis::connection conn(io_.get_executor(), fast_config());
  conn.start();
  auto outcome = run_coro(io_, [&]() -> asio::awaitable<std::pair<error, bool>> {
    co_await conn.async_wait_ready(10s);
    server_->pause();
    request req;
    req.push("PING");
    auto timed_out = co_await conn.async_exec_for(req, 200ms);
    server_->resume();
    auto ready = co_await conn.async_wait_ready(10s);
    auto later = co_await conn.async_exec(req);
    co_return std::make_pair(timed_out ? error() : timed_out.error(),
                             ready.has_value() && later.has_value());
  });
  EXPECT_EQ(outcome.first, errc::timeout);
  EXPECT_TRUE(outcome.second);
  EXPECT_GE(conn.stats().connects, 2u);  // the timeout reset the connection
}

TEST_F(ConnectionFault, TimeoutAfterWriteFailsOthersWithConnectionLost) {
  redis::connection conn(io_.get_executor(), fast_config());
  conn.start();
  auto outcome = run_coro(io_, [&]() -> asio::awaitable<std::pair<error, error>> {
    co_await conn.async_wait_ready(10s);
    // The server blocks on BLPOP, so the PING behind it waits too.
    request blocking;
    blocking.push("BLPOP", "nothing", "5");
    request ping;
    ping.push("PING");
    auto behind = asio::co_spawn(io_, conn.async_exec_for(ping, 10s), asio::use_awaitable);
    auto first = co_await conn.async_exec_for(blocking, 100ms);
    auto second = co_await std::move(behind);
    co_return std::make_pair(first ? error() : first.error(), second ? error() : second.error());
  });
  // The order of the two writes is not fixed: the PING may go out first and
  // get its reply before the BLPOP times out.
  EXPECT_EQ(outcome.first, errc::timeout);
  EXPECT_TRUE(!outcome.second.code || outcome.second == errc::connection_lost)
      << outcome.second.what();
}

TEST_F(ConnectionFault, ConnectTimeoutWhenServerPaused) {
  server_->pause();
  auto cfg = fast_config();
  cfg.connect_timeout = 100ms;
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(600ms); });
  server_->resume();
  ASSERT_FALSE(ready.has_value());
  EXPECT_EQ(ready.error(), errc::timeout);
  EXPECT_NE(ready.error().message.find("timed out"), std::string::npos) << ready.error().what();
}

TEST_F(ConnectionFault, HealthCheckDetectsPausedServerWhileIdle) {
  log_capture logs;
  auto cfg = fast_config();
  cfg.health_check_interval = 100ms;
  redis::connection conn(io_.get_executor(), cfg, logs.make());
  conn.start();
  run_coro(io_, [&]() -> asio::awaitable<void> {
    co_await conn.async_wait_ready(10s);
    server_->pause();
    co_await until([&] { return !conn.is_ready(); });  // no request was sent
    server_->resume();
    co_await conn.async_wait_ready(10s);
  });
  EXPECT_TRUE(conn.is_ready());
  std::lock_guard lock(logs.mutex);
  bool found = false;
  for (const auto& line : logs.lines) {
    found = found || (line.starts_with("redis_disconnected") &&
                      line.find("health check PING") != std::string::npos);
  }
  EXPECT_TRUE(found);
}

TEST_F(ConnectionFault, CloseCompletesPendingWithClosed) {
  redis::connection conn(io_.get_executor(), fast_config());
  conn.start();
  std::vector<error> errors;
  run_coro(io_, [&]() -> asio::awaitable<void> {
    co_await conn.async_wait_ready(10s);
    int done = 0;
    for (int i = 0; i < 50; ++i) {
      asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
        request req;
        req.push("BLPOP", "nothing", "5");
        auto replies = co_await conn.async_exec(req);
        errors.push_back(replies ? error() : replies.error());
        ++done;
      }, asio::detached);
    }
    co_await sleep(50ms);
    conn.close();
    co_await until([&] { return done == 50; });
  });
  ASSERT_EQ(errors.size(), 50u);
  for (const auto& e : errors) EXPECT_EQ(e, errc::closed);
}

TEST_F(ConnectionFault, DestructorCompletesPendingWithClosed) {
  auto conn = std::make_unique<redis::connection>(io_.get_executor(), fast_config());
  conn->start();
  std::vector<error> errors;
  run_coro(io_, [&]() -> asio::awaitable<void> {
    co_await conn->async_wait_ready(10s);
    int done = 0;
    // Some requests are written (blocked in the server), others still queued.
    for (int i = 0; i < 100; ++i) {
      asio::co_spawn(io_, [&, i]() -> asio::awaitable<void> {
        request req;
        if (i % 2 == 0) {
          req.push("BLPOP", "nothing", "5");
        } else {
          req.push("PING");
        }
        auto replies = co_await conn->async_exec(req);
        errors.push_back(replies ? error() : replies.error());
        ++done;
      }, asio::detached);
    }
    co_await sleep(50ms);
    conn.reset();
    co_await until([&] { return done == 100; });
  });
  ASSERT_EQ(errors.size(), 100u);
  for (const auto& e : errors) EXPECT_EQ(e, errc::closed);
}

TEST_F(ConnectionFault, DestructorWakesReadyWaiterWithClosed) {
  server_->kill_hard();
  auto conn = std::make_unique<redis::connection>(io_.get_executor(), fast_config());
  conn->start();
  std::optional<result<void>> ready;
  run_coro(io_, [&]() -> asio::awaitable<void> {
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> {
      ready = co_await conn->async_wait_ready(60s);
    }, asio::detached);
    co_await sleep(50ms);
    EXPECT_FALSE(ready.has_value());  // still waiting
    conn.reset();
    co_await until([&] { return ready.has_value(); });
  });
  ASSERT_FALSE(ready->has_value());
  EXPECT_EQ(ready->error(), errc::closed);
}

TEST_F(ConnectionFault, ReconnectDisabledStopsForGood) {
  auto cfg = fast_config();
  cfg.reconnect = false;
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();
  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    co_await conn.async_wait_ready(10s);
    server_->kill_hard();
    co_await until([&] { return !conn.is_ready(); });
    auto again = server_->restart();
    EXPECT_TRUE(again.has_value());
    co_await sleep(100ms);
    request req;
    req.push("PING");
    co_return co_await conn.async_exec(req);
  });
  ASSERT_FALSE(replies.has_value());
  EXPECT_EQ(replies.error(), errc::not_connected);
  EXPECT_EQ(conn.stats().connects, 1u);
}

TEST_F(ConnectionFault, ConnectFailuresAreLoggedSparingly) {
  log_capture logs;
  server_->kill_hard();
  auto cfg = fast_config();
  cfg.reconnect_min_delay = 1ms;
  cfg.reconnect_max_delay = 2ms;
  redis::connection conn(io_.get_executor(), cfg, logs.make());
  conn.start();
  run_coro(io_, [&]() -> asio::awaitable<void> {
    co_await until([&] { return conn.stats().connect_failures >= 40; });
  });
  const auto failures = conn.stats().connect_failures;
  std::size_t warnings = 0;
  std::size_t records = 0;
  {
    std::lock_guard lock(logs.mutex);
    for (std::size_t i = 0; i < logs.lines.size(); ++i) {
      if (!logs.lines[i].starts_with("redis_connect_failed")) continue;
      ++records;
      warnings += logs.levels[i] == log_level::warn ? 1 : 0;
    }
  }
  // Attempts 1, 2, 4, 8, ... are warnings; the rest go to debug.
  std::size_t powers_of_two = 0;
  for (std::uint64_t p = 1; p <= failures; p *= 2) ++powers_of_two;
  EXPECT_EQ(records, failures);
  EXPECT_EQ(warnings, powers_of_two);
}

}  // namespace
}  // namespace tracewatch
