// parse_url(), redact_url() and config::display_address(): no server.

#include <gtest/gtest.h>

#include "tracewatch/redis/connection.hpp"

namespace tracewatch::redis {
namespace {

struct valid_case {
  std::string url;
  std::string host;
  std::uint16_t port;
  std::string unix_path;
  std::string username;
  std::string password;
  int database;
  bool tls;
};

class UrlParseValid : public ::testing::TestWithParam<valid_case> {};

TEST_P(UrlParseValid, ParsesEveryField) {
  const valid_case& c = GetParam();
  auto cfg = parse_url(c.url);
  ASSERT_TRUE(cfg.has_value()) << c.url << ": " << cfg.error().what();
  EXPECT_EQ(cfg->host, c.host) << c.url;
  EXPECT_EQ(cfg->port, c.port) << c.url;
  EXPECT_EQ(cfg->unix_path, c.unix_path) << c.url;
  EXPECT_EQ(cfg->username, c.username) << c.url;
  EXPECT_EQ(cfg->password, c.password) << c.url;
  EXPECT_EQ(cfg->database, c.database) << c.url;
  EXPECT_EQ(cfg->tls, c.tls) << c.url;
}

INSTANTIATE_TEST_SUITE_P(
    Table, UrlParseValid,
    ::testing::Values(
        valid_case{"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", "", 0, false},
        valid_case{"redis://localhost", "localhost", 6379, "", "", "", 0, false},
        valid_case{"redis://cache.internal:7000/", "cache.internal", 7000, "", "", "", 0, false},
        valid_case{"redis://h:6380/5", "h", 6380, "", "", "", 5, false},
        valid_case{"redis://h?db=7", "h", 6379, "", "", "", 7, false},
        valid_case{"REDIS://H:1", "H", 1, "", "", "", 0, false},
        valid_case{"redis://[::1]:6390/2", "::1", 6390, "", "", "", 2, false},
        valid_case{"redis://:secret@h", "h", 6379, "", "", "secret", 0, false},
        valid_case{"redis://alice:secret@h:6379/1", "h", 6379, "", "alice", "secret", 1, false},
        valid_case{"redis://al%69ce:p%40ss%3Aw%2Fd@h", "h", 6379, "", "alice", "p@ss:w/d", 0,
                   false},
        valid_case{"redis://:@h", "h", 6379, "", "", "", 0, false},
        valid_case{"rediss://secure.example:6380", "secure.example", 6380, "", "", "", 0, true},
        valid_case{"unix:///run/redis/redis.sock", "127.0.0.1", 6379, "/run/redis/redis.sock",
                   "", "", 0, false},
        valid_case{"unix:///tmp/r%20dir/r.sock?db=3", "127.0.0.1", 6379, "/tmp/r dir/r.sock", "",
                   "", 3, false},
        valid_case{"unix://:pw@/tmp/r.sock", "127.0.0.1", 6379, "/tmp/r.sock", "", "pw", 0,
                   false}));

struct invalid_case {
  std::string url;
  std::string expected_fragment;  // part of the message
};

class UrlParseInvalid : public ::testing::TestWithParam<invalid_case> {};

TEST_P(UrlParseInvalid, RejectsWithReason) {
  const invalid_case& c = GetParam();
  auto cfg = parse_url(c.url);
  ASSERT_FALSE(cfg.has_value()) << c.url;
  EXPECT_EQ(cfg.error(), errc::invalid_url) << c.url;
  EXPECT_NE(cfg.error().message.find(c.expected_fragment), std::string::npos)
      << c.url << " -> " << cfg.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, UrlParseInvalid,
    ::testing::Values(
        invalid_case{"", "empty Redis URL"},
        invalid_case{"http://h:6379", "unsupported scheme 'http'"},
        invalid_case{"127.0.0.1:6379", "scheme is missing"},
        invalid_case{"redis:h", "scheme is missing"},
        invalid_case{"redis://", "host is missing"},
        invalid_case{"redis://:6379", "host is missing"},
        invalid_case{"redis://h:0", "port '0'"},
        invalid_case{"redis://h:65536", "port '65536'"},
        invalid_case{"redis://h:12ab", "neither :PORT nor /DB"},
        invalid_case{"redis://h:99999999999999999999", "port '99999999999999999999'"},
        invalid_case{"redis://h/abc", "database 'abc'"},
        invalid_case{"redis://h/-1", "database '-1'"},
        invalid_case{"redis://h/99999999999", "database '99999999999'"},
        invalid_case{"redis://h/1/2", "database '1/2'"},
        invalid_case{"redis://h/1?db=2", "both in the path"},
        invalid_case{"redis://h?timeout=5", "unknown parameter 'timeout'"},
        invalid_case{"redis://h?db", "db has no value"},
        invalid_case{"redis://h#frag", "fragment"},
        invalid_case{"redis://justapassword@h", "has no ':'"},
        invalid_case{"redis://alice:@h", "empty password"},
        invalid_case{"redis://h x", "not a valid URI"},
        invalid_case{"unix://", "socket path"},
        invalid_case{"unix://host/tmp/r.sock", "no host or port"},
        invalid_case{"unix:///tmp/r.sock?db=x", "database 'x'"}));

TEST(UrlParse, ErrorMessagesNeverContainThePassword) {
  const std::vector<std::string> urls = {
      "redis://alice:hunter2@h:70000",         // bad port after parsing the user info
      "redis://:hunter2@h/notanumber",         // bad database
      "redis://:hunter2@h#x",                  // fragment
      "redis://:hunt@er2@h",                   // unencoded '@' in the password
      "redis://hunter2@h",                     // no ':' in the user info
      "ftp://u:hunter2@h",                     // wrong scheme
  };
  for (const auto& url : urls) {
    auto cfg = parse_url(url);
    ASSERT_FALSE(cfg.has_value()) << url;
    EXPECT_EQ(cfg.error().message.find("hunter2"), std::string::npos) << cfg.error().message;
    EXPECT_EQ(cfg.error().message.find("er2"), std::string::npos) << cfg.error().message;
  }
}

TEST(UrlParse, DisplayAddressMasksPassword) {
  auto cfg = parse_url("redis://alice:hunter2@h:6380/4");
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->display_address(), "redis://alice:***@h:6380/4");

  auto password_only = parse_url("redis://:hunter2@h");
  ASSERT_TRUE(password_only.has_value());
  EXPECT_EQ(password_only->display_address(), "redis://:***@h:6379/0");
}

TEST(UrlParse, DisplayAddressOfUnixAndIpv6) {
  auto unix_cfg = parse_url("unix:///tmp/r.sock?db=2");
  ASSERT_TRUE(unix_cfg.has_value());
  EXPECT_EQ(unix_cfg->display_address(), "unix:///tmp/r.sock?db=2");

  auto v6 = parse_url("rediss://[::1]:7000");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->display_address(), "rediss://[::1]:7000/0");
}

TEST(RedactUrl, MasksPasswordOrWholeUserInfo) {
  EXPECT_EQ(redact_url("redis://alice:pw@h:1/2"), "redis://alice:***@h:1/2");
  EXPECT_EQ(redact_url("redis://:pw@h"), "redis://:***@h");
  EXPECT_EQ(redact_url("redis://pw@h"), "redis://***@h");
  EXPECT_EQ(redact_url("redis://:p@w@h/0"), "redis://:***@h/0");
  EXPECT_EQ(redact_url("redis://h:1/2?x=@"), "redis://h:1/2?x=@");
  EXPECT_EQ(redact_url("not a url"), "not a url");
}

}  // namespace
}  // namespace tracewatch::redis
