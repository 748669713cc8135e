// The commands a connection sends right after it connects, and how their
// replies are judged. Pure functions, so the rules are tested without a
// server.
//
// The handshake is one pipelined request:
//   AUTH [user] password   when a password is configured
//   SELECT db              when the database is not 0
//   CLIENT SETNAME name    when a client name is configured
//   PING                   always: proves the server answers, and reports
//                          NOAUTH when it needs a password we lack
// It never sends HELLO: the connection speaks RESP2 only.

#pragma once

#include <span>

#include "tracewatch/error.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch::redis::detail {

request make_handshake(const config& cfg);

// Returns success when every reply of the handshake is a success, else:
//   - errc::auth_failed for an AUTH error or a NOAUTH reply to any command;
//   - errc::not_connected (retryable) when the server is still loading its
//     dataset (LOADING);
//   - errc::server_error for any other error reply (SELECT out of range,
//     ...), with the server's text;
//   - errc::protocol_error when the number of replies does not match.
// Messages name cfg.display_address(), which never contains the password.
result<void> check_handshake(const config& cfg, std::span<const reply> replies);

}  // namespace tracewatch::redis::detail
