// parse_url(), redact_url() and config::display_address().

#include <charconv>
#include <climits>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include "tracewatch/redis/connection.hpp"

namespace tracewatch::redis {
namespace {

namespace urls = boost::urls;

constexpr std::uint16_t kDefaultPort = 6379;
constexpr std::string_view kExpectedForms =
    "expected redis://[[user]:password@]host[:port][/db], rediss://... or "
    "unix://[[user]:password@]/path/to/socket[?db=N]";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Parses a whole decimal string into [0, max]; nothing else is accepted.
bool parse_decimal(std::string_view text, long long max, long long& out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

error invalid(std::string_view url, std::string_view what) {
  return error(errc::invalid_url, fmt::format("invalid Redis URL '{}': {}", redact_url(url), what));
}

result<void> parse_userinfo(std::string_view url, const urls::url_view& u, config& cfg) {
  if (!u.has_userinfo()) return {};
  if (!u.has_password()) {
    return invalid(url,
                   "the user information has no ':'; write redis://:PASSWORD@host for a "
                   "password, or redis://USER:PASSWORD@host for an ACL user, and "
                   "percent-encode reserved characters (for example '@' as %40)");
  }
  cfg.username = u.user();
  cfg.password = u.password();
  if (!cfg.username.empty() && cfg.password.empty()) {
    return invalid(url, fmt::format("user '{}' has an empty password; put it after the ':'",
                                    cfg.username));
  }
  return {};
}

result<void> parse_database(std::string_view url, std::string_view text, config& cfg) {
  long long db = 0;
  if (!parse_decimal(text, INT_MAX, db)) {
    return invalid(url, fmt::format("database '{}' is not a non-negative integer; "
                                    "write the database index, such as /0 or ?db=0",
                                    text));
  }
  cfg.database = static_cast<int>(db);
  return {};
}

// Reads the query: only `db` is known. A database given twice is rejected.
result<void> parse_query(std::string_view url, const urls::url_view& u, bool database_in_path,
                         config& cfg) {
  if (!u.has_query()) return {};
  for (auto param : u.params()) {
    if (param.key != "db") {
      return invalid(url, fmt::format("unknown parameter '{}'; the only parameter is db",
                                      std::string_view(param.key)));
    }
    if (database_in_path) {
      return invalid(url, "the database is given both in the path and as ?db=; keep one");
    }
    if (!param.has_value) return invalid(url, "parameter db has no value; write ?db=N");
    auto parsed = parse_database(url, param.value, cfg);
    if (!parsed) return parsed;
  }
  return {};
}

result<void> parse_tcp(std::string_view url, const urls::url_view& u, config& cfg) {
  if (u.host_type() == urls::host_type::ipv6) {
    cfg.host = u.host_ipv6_address().to_string();
  } else {
    cfg.host = u.host_address();
  }
  if (cfg.host.empty()) return invalid(url, "the host is missing; write redis://HOST:PORT");

  // NOTE: Boost.URL 1.81 accepts a path without a leading '/' after the
  // authority. "h:12ab" gives port "12" and path "ab", and an unencoded '@'
  // in a password gives a path starting with '@'. Such a path is rejected
  // here without echoing it, because it may contain part of the password.
  std::string path = u.path();
  if (!path.empty() && path.front() != '/') {
    return invalid(url, "the text after the host is neither :PORT nor /DB; percent-encode "
                        "reserved characters in the password (for example '@' as %40)");
  }
  const std::string port_text(u.port());

  cfg.port = kDefaultPort;
  if (u.has_port() && !port_text.empty()) {
    long long port = 0;
    if (!parse_decimal(port_text, 65535, port) || port == 0) {
      return invalid(url, fmt::format("port '{}' is not a number from 1 to 65535", port_text));
    }
    cfg.port = static_cast<std::uint16_t>(port);
  }

  bool database_in_path = false;
  if (!path.empty() && path != "/") {
    database_in_path = true;
    auto parsed = parse_database(url, std::string_view(path).substr(1), cfg);
    if (!parsed) return parsed;
  }
  return parse_query(url, u, database_in_path, cfg);
}

result<void> parse_unix(std::string_view url, const urls::url_view& u, config& cfg) {
  if (!u.encoded_host().empty() || u.has_port()) {
    return invalid(url, "a unix URL takes no host or port; write unix:///path/to/redis.sock");
  }
  cfg.unix_path = u.path();
  if (cfg.unix_path.empty() || cfg.unix_path.front() != '/') {
    return invalid(url, "the socket path is missing or not absolute; "
                        "write unix:///path/to/redis.sock");
  }
  return parse_query(url, u, false, cfg);
}

}  // namespace

std::string redact_url(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const auto authority_begin = scheme_end + 3;
  auto authority_end = url.find_first_of("/?#", authority_begin);
  if (authority_end == std::string_view::npos) authority_end = url.size();

  // The last '@' ends the user information: an unencoded '@' in a password
  // is then masked with it.
  const auto authority = url.substr(authority_begin, authority_end - authority_begin);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const auto userinfo = authority.substr(0, at);
  const auto colon = userinfo.find(':');

  std::string out(url.substr(0, authority_begin));
  if (colon == std::string_view::npos) {
    out += "***";
  } else {
    out += userinfo.substr(0, colon);
    out += ":***";
  }
  out += url.substr(authority_begin + at);
  return out;
}

result<config> parse_url(std::string_view url) {
  if (url.empty()) return error(errc::invalid_url, fmt::format("empty Redis URL; {}", kExpectedForms));

  if (url.find("://") == std::string_view::npos) {
    return invalid(url, fmt::format("the scheme is missing; {}", kExpectedForms));
  }
  auto parsed = urls::parse_uri(url);
  if (!parsed) {
    return invalid(url, fmt::format("it is not a valid URI ({}); {}; percent-encode reserved "
                                    "characters in the password (for example '@' as %40)",
                                    parsed.error().message(), kExpectedForms));
  }
  const urls::url_view& u = *parsed;
  if (u.has_fragment()) return invalid(url, "a Redis URL takes no '#' fragment");

  config cfg;
  const std::string_view scheme = u.scheme();
  const bool is_unix = iequals(scheme, "unix");
  if (iequals(scheme, "rediss")) {
    cfg.tls = true;
  } else if (!is_unix && !iequals(scheme, "redis")) {
    return invalid(url, fmt::format("unsupported scheme '{}'; {}", scheme, kExpectedForms));
  }

  auto user = parse_userinfo(url, u, cfg);
  if (!user) return user.error();
  auto rest = is_unix ? parse_unix(url, u, cfg) : parse_tcp(url, u, cfg);
  if (!rest) return rest.error();
  return cfg;
}

std::string config::display_address() const {
  std::string userinfo;
  if (!username.empty()) {
    userinfo = username + ":***@";
  } else if (!password.empty()) {
    userinfo = ":***@";
  }

  if (!unix_path.empty()) {
    std::string out = "unix://" + userinfo + unix_path;
    if (database != 0) out += fmt::format("?db={}", database);
    return out;
  }
  const bool ipv6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}{}:{}/{}", tls ? "rediss" : "redis", userinfo, ipv6 ? "[" : "",
                     host, ipv6 ? "]" : "", port, database);
}

}  // namespace tracewatch::redis
