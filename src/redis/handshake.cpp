#include "tracewatch/redis/detail/handshake.hpp"

#include <fmt/format.h>

namespace tracewatch::redis::detail {

request make_handshake(const config& cfg) {
  request req;
  if (!cfg.password.empty()) {
    if (cfg.username.empty()) {
      req.push("AUTH", cfg.password);
    } else {
      req.push("AUTH", cfg.username, cfg.password);
    }
  }
  if (cfg.database != 0) req.push("SELECT", cfg.database);
  if (!cfg.client_name.empty()) req.push("CLIENT", "SETNAME", cfg.client_name);
  req.push("PING");
  return req;
}

result<void> check_handshake(const config& cfg, std::span<const reply> replies) {
  const std::size_t expected = make_handshake(cfg).size();
  if (replies.size() != expected) {
    return error(errc::protocol_error,
                 fmt::format("handshake with {} returned {} replies for {} commands",
                             cfg.display_address(), replies.size(), expected));
  }

  std::size_t index = 0;
  if (!cfg.password.empty()) {
    const reply& auth = replies[index++];
    if (auth.is_error()) {
      const std::string who =
          cfg.username.empty() ? std::string("with the password") : "as user '" + cfg.username + "'";
      return error(errc::auth_failed,
                   fmt::format("AUTH {} failed on {}: {}; check the user and password in the URL",
                               who, cfg.display_address(), auth.str));
    }
  }

  // A server that needs a password replies NOAUTH to every other command.
  for (const reply& r : replies) {
    if (r.is_error() && r.str.starts_with("NOAUTH")) {
      return error(errc::auth_failed,
                   fmt::format("{} requires authentication ({}); put the password in the URL "
                               "as redis://:PASSWORD@host or redis://USER:PASSWORD@host",
                               cfg.display_address(), r.str));
    }
  }

  // A server loading its dataset replies LOADING until it is done, which is
  // worth retrying, unlike the errors below.
  for (const reply& r : replies) {
    if (r.is_error() && r.str.starts_with("LOADING")) {
      return error(errc::not_connected, fmt::format("{} is loading its dataset ({})",
                                                    cfg.display_address(), r.str));
    }
  }

  if (cfg.database != 0) {
    const reply& select = replies[index++];
    if (select.is_error()) {
      return error(errc::server_error, fmt::format("SELECT {} failed on {}: {}", cfg.database,
                                                   cfg.display_address(), select.str));
    }
  }
  if (!cfg.client_name.empty()) {
    const reply& setname = replies[index++];
    if (setname.is_error()) {
      return error(errc::server_error,
                   fmt::format("CLIENT SETNAME '{}' failed on {}: {}", cfg.client_name,
                               cfg.display_address(), setname.str));
    }
  }
  const reply& ping = replies[index];
  if (ping.is_error()) {
    return error(errc::server_error,
                 fmt::format("PING failed on {}: {}", cfg.display_address(), ping.str));
  }
  return {};
}

}  // namespace tracewatch::redis::detail
