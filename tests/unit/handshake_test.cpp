// detail::make_handshake and check_handshake: no server.

#include <gtest/gtest.h>

#include "tracewatch/redis/detail/handshake.hpp"

namespace tracewatch::redis::detail {
namespace {

reply status(std::string text) {
  reply r;
  r.type = reply::kind::status;
  r.str = std::move(text);
  return r;
}

reply error_reply(std::string text) {
  reply r;
  r.type = reply::kind::error;
  r.str = std::move(text);
  return r;
}

config plain() {
  config cfg;
  cfg.client_name.clear();
  return cfg;
}

TEST(Handshake, PlainConfigSendsOnlyPing) {
  EXPECT_EQ(make_handshake(plain()).payload(), "*1\r\n$4\r\nPING\r\n");
}

TEST(Handshake, FullConfigSendsAuthSelectSetnamePing) {
  config cfg;
  cfg.username = "alice";
  cfg.password = "pw";
  cfg.database = 2;
  cfg.client_name = "svc";
  request expected;
  expected.push("AUTH", "alice", "pw");
  expected.push("SELECT", 2);
  expected.push("CLIENT", "SETNAME", "svc");
  expected.push("PING");
  EXPECT_EQ(make_handshake(cfg).payload(), expected.payload());
}

TEST(Handshake, PasswordOnlyAuthHasOneArgument) {
  config cfg = plain();
  cfg.password = "pw";
  EXPECT_EQ(make_handshake(cfg).payload(), "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n");
}

TEST(Handshake, NeverSendsHello) {
  auto cfg = parse_url("redis://user:secret@h/1");
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(std::string(make_handshake(*cfg).payload()).find("HELLO"), std::string::npos);
}

TEST(Handshake, AllSuccessRepliesPass) {
  config cfg;
  cfg.password = "pw";
  cfg.database = 1;
  std::vector<reply> replies = {status("OK"), status("OK"), status("OK"), status("PONG")};
  EXPECT_TRUE(check_handshake(cfg, replies).has_value());
}

TEST(Handshake, AuthErrorIsAuthFailedWithoutPassword) {
  config cfg = plain();
  cfg.username = "alice";
  cfg.password = "hunter2";
  std::vector<reply> replies = {
      error_reply("WRONGPASS invalid username-password pair or user is disabled."),
      status("PONG")};
  auto checked = check_handshake(cfg, replies);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::auth_failed);
  EXPECT_NE(checked.error().message.find("WRONGPASS"), std::string::npos);
  EXPECT_NE(checked.error().message.find("alice"), std::string::npos);
  EXPECT_EQ(checked.error().message.find("hunter2"), std::string::npos);
}

TEST(Handshake, NoAuthReplyIsAuthFailed) {
  std::vector<reply> replies = {error_reply("NOAUTH Authentication required.")};
  auto checked = check_handshake(plain(), replies);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::auth_failed);
  EXPECT_NE(checked.error().message.find("redis://:PASSWORD@host"), std::string::npos);
}

TEST(Handshake, SelectErrorIsServerError) {
  config cfg = plain();
  cfg.database = 99;
  std::vector<reply> replies = {error_reply("ERR DB index is out of range"), status("PONG")};
  auto checked = check_handshake(cfg, replies);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::server_error);
  EXPECT_NE(checked.error().message.find("SELECT 99"), std::string::npos);
  EXPECT_NE(checked.error().message.find("out of range"), std::string::npos);
}

TEST(Handshake, LoadingIsRetryable) {
  std::vector<reply> replies = {error_reply("LOADING Redis is loading the dataset in memory")};
  auto checked = check_handshake(plain(), replies);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::not_connected);
  EXPECT_TRUE(is_retryable(checked.error().code));
}

TEST(Handshake, WrongReplyCountIsProtocolError) {
  std::vector<reply> replies = {status("PONG"), status("PONG")};
  auto checked = check_handshake(plain(), replies);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::protocol_error);
}

}  // namespace
}  // namespace tracewatch::redis::detail
