// AUTH during the handshake: a password, an ACL user, wrong and missing
// credentials, and no password in any log record or error message. The
// suite starts its own redis-server with --requirepass.

#include <mutex>

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include "support/test_support.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using redis::reply;
using redis::request;
using testing::run_coro;

constexpr const char* kPassword = "s3cret-default";
constexpr const char* kAclPassword = "s3cret-alice";

class ConnectionAuth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    local_redis::options opts;
    opts.extra_args = {"--requirepass", kPassword};
    auto started = local_redis::start(opts);
    if (!started) throw std::runtime_error(started.error().what());
    server_.emplace(std::move(*started));

    testing::raw_redis admin(server_->socket_path());
    admin.command({"AUTH", kPassword});
    admin.command({"ACL", "SETUSER", "alice", "on", std::string(">") + kAclPassword, "~*",
                   "&*", "+@all"});
  }
  static void TearDownTestSuite() { server_.reset(); }

  // unix://[user:password@]/path
  static std::string url(std::string_view userinfo) {
    return fmt::format("unix://{}{}", userinfo, server_->socket_path());
  }

  logger capture_logs() {
    return logger(
        [this](const log_record& r) {
          std::string line = fmt::format("{}", r.event);
          for (const auto& f : r.fields) line = fmt::format("{} {}={}", line, f.key, f.value);
          std::lock_guard lock(mutex_);
          log_text_ += line + "\n";
        },
        log_level::debug);
  }

  result<void> connect_and_wait(const std::string& target, logger log = {}) {
    auto cfg = redis::parse_url(target);
    if (!cfg) return cfg.error();
    cfg->reconnect_min_delay = 10ms;
    cfg->reconnect_max_delay = 50ms;
    redis::connection conn(io_.get_executor(), *cfg, std::move(log));
    conn.start();
    auto ready = run_coro(io_, [&]() { return conn.async_wait_ready(10s); });
    if (!ready) return ready.error();

    // The connection runs commands as its user.
    auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
      request req;
      req.push("SET", "auth-test", "ok");
      co_return co_await conn.async_exec(req);
    });
    if (!replies) return replies.error();
    if (replies->front().is_error()) return error(errc::server_error, replies->front().str);
    return {};
  }

  static inline std::optional<local_redis> server_;
  asio::io_context io_;
  std::mutex mutex_;
  std::string log_text_;
};

TEST_F(ConnectionAuth, PasswordConnects) {
  auto connected = connect_and_wait(url(fmt::format(":{}@", kPassword)));
  EXPECT_TRUE(connected.has_value()) << connected.error().what();
}

TEST_F(ConnectionAuth, AclUserConnects) {
  auto connected = connect_and_wait(url(fmt::format("alice:{}@", kAclPassword)));
  EXPECT_TRUE(connected.has_value()) << connected.error().what();
}

TEST_F(ConnectionAuth, PercentEncodedPasswordIsDecoded) {
  testing::raw_redis admin(server_->socket_path());
  admin.command({"AUTH", kPassword});
  admin.command({"ACL", "SETUSER", "bob", "on", ">p@ss:w/rd", "~*", "&*", "+@all"});
  auto connected = connect_and_wait(url("bob:p%40ss%3Aw%2Frd@"));
  EXPECT_TRUE(connected.has_value()) << connected.error().what();
}

TEST_F(ConnectionAuth, WrongPasswordFailsWithAuthFailed) {
  auto connected = connect_and_wait(url(":wrong-password@"), capture_logs());
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error(), errc::auth_failed);
  EXPECT_NE(connected.error().message.find("WRONGPASS"), std::string::npos)
      << connected.error().message;
  EXPECT_EQ(connected.error().message.find("wrong-password"), std::string::npos);
  std::lock_guard lock(mutex_);
  EXPECT_NE(log_text_.find("redis_connect_failed"), std::string::npos);
  EXPECT_EQ(log_text_.find("wrong-password"), std::string::npos) << log_text_;
}

TEST_F(ConnectionAuth, AclUserWrongPasswordFailsWithAuthFailed) {
  auto connected = connect_and_wait(url("alice:not-her-password@"), capture_logs());
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error(), errc::auth_failed);
  EXPECT_NE(connected.error().message.find("alice"), std::string::npos);
  EXPECT_EQ(connected.error().message.find("not-her-password"), std::string::npos);
  std::lock_guard lock(mutex_);
  EXPECT_EQ(log_text_.find("not-her-password"), std::string::npos) << log_text_;
}

TEST_F(ConnectionAuth, MissingPasswordFailsWithAuthFailed) {
  auto connected = connect_and_wait(url(""));
  ASSERT_FALSE(connected.has_value());
  EXPECT_EQ(connected.error(), errc::auth_failed);
  EXPECT_NE(connected.error().message.find("NOAUTH"), std::string::npos)
      << connected.error().message;
}

TEST_F(ConnectionAuth, SuccessfulConnectLogsNoPassword) {
  auto connected = connect_and_wait(url(fmt::format("alice:{}@", kAclPassword)), capture_logs());
  ASSERT_TRUE(connected.has_value()) << connected.error().what();
  std::lock_guard lock(mutex_);
  EXPECT_NE(log_text_.find("redis_connected"), std::string::npos);
  EXPECT_NE(log_text_.find("alice:***@"), std::string::npos) << log_text_;
  EXPECT_EQ(log_text_.find(kAclPassword), std::string::npos) << log_text_;
}

}  // namespace
}  // namespace tracewatch
