// An asynchronous Redis connection on Boost.Asio with C++20 coroutines.
//
// One connection multiplexes every request issued on it: requests issued
// while others are in flight are written together in one buffer (automatic
// pipelining) and their replies are matched in order. The connection
// reconnects by itself with capped exponential backoff and jitter.
//
// Example:
//   asio::io_context io;
//   auto cfg = redis::parse_url("redis://127.0.0.1:6379/0").value();
//   redis::connection conn(io.get_executor(), cfg);
//   conn.start();
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     redis::request req;
//     req.push("SET", "greeting", "hello");
//     req.push("GET", "greeting");
//     auto replies = co_await conn.async_exec(req);
//     // replies.value()[1].str == "hello"
//     conn.close();
//   }, asio::detached);
//   io.run();

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch {
namespace asio = boost::asio;
}  // namespace tracewatch

namespace tracewatch::redis {

// Guards on what a server may send. hiredis's reader trusts array headers
// and bulk lengths; these caps are checked before it allocates for them.
// A reply over any of them fails the requests in flight with
// errc::protocol_error and resets the connection.
struct parser_limits {
  std::size_t max_array_elements = 1u << 20;   // elements in one array header
  std::size_t max_bulk_bytes = 64u << 20;      // bytes in one bulk string
  std::size_t max_buffered_bytes = 256u << 20; // unparsed input held at once
  std::size_t read_chunk_bytes = 64u << 10;    // bytes fed to the parser per step
  std::size_t max_line_bytes = 1u << 20;       // one status, error or integer line
  std::size_t max_reply_bytes = 256u << 20;    // estimated memory of one parsed reply
};

// Where and how to connect. Build one with parse_url() or fill it in.
struct config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string unix_path;  // when set, host and port are ignored
  bool tls = false;       // rediss://; connecting fails with errc::tls_unsupported
  std::string username;   // ACL user; empty means AUTH with the password only
  std::string password;   // never logged and never part of an error message
  int database = 0;
  std::string client_name = "tracewatch";

  // Zero disables each of these time limits.
  std::chrono::milliseconds connect_timeout{2000};        // connect plus handshake
  std::chrono::milliseconds request_timeout{5000};        // default per request
  // After a whole interval with nothing read and nothing in flight, a PING
  // goes out. No reply within one more interval resets the connection.
  std::chrono::milliseconds health_check_interval{2000};
  // Reconnect delays: attempt n waits a random time in
  // [0, min(reconnect_max_delay, reconnect_min_delay * 2^n)].
  std::chrono::milliseconds reconnect_min_delay{50};
  std::chrono::milliseconds reconnect_max_delay{5000};
  bool reconnect = true;  // false: the first failure or drop stops the connection
  parser_limits limits;

  // The address in URL form with any password removed, for logs and errors.
  std::string display_address() const;
};

// Parses `redis://[[user]:password@]host[:port][/db]`, `rediss://…` and
// `unix:///path/to/socket[?db=N]`. Returns errc::invalid_url with a message
// that names the URL (password masked) and what is wrong.
result<config> parse_url(std::string_view url);

// Returns `url` with the password (or, when the user information has no
// ':', the whole user information) replaced by `***`, for messages about a
// URL that may not parse. Text that is not a URL is returned unchanged.
std::string redact_url(std::string_view url);

// A Lua script with its SHA1, computed once.
class script {
 public:
  explicit script(std::string source);
  const std::string& source() const noexcept { return source_; }
  const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;  // lowercase hex
};

// Anything that runs commands and scripts: a single connection, or a cluster
// client that routes each call by its keys. The registry and the sweeper are
// written against this interface.
class client {
 public:
  virtual ~client() = default;

  // Sends every command of `req` and returns one reply per command, in order.
  // `routing_key` names a key that every command of the request hashes with;
  // a single connection ignores it, a cluster client routes by it.
  virtual asio::awaitable<result<std::vector<reply>>> async_exec(
      const request& req, std::string_view routing_key = {}) = 0;

  // Runs `s` by EVALSHA, falling back to EVAL when the server answers
  // NOSCRIPT (scripts vanish after a restart or a failover). An error reply
  // from the script is returned as errc::server_error with the server's text.
  virtual asio::awaitable<result<reply>> async_eval(const script& s,
                                                    std::span<const std::string_view> keys,
                                                    std::span<const std::string_view> args) = 0;

  // True when the deployment is a Redis Cluster.
  virtual bool is_cluster() const noexcept { return false; }
};

// Counters of one connection, for metrics and tests.
struct connection_stats {
  std::uint64_t connects = 0;        // successful handshakes, including reconnects
  std::uint64_t connect_failures = 0;
  std::uint64_t requests = 0;        // requests completed, successfully or not
  std::uint64_t writes = 0;          // socket writes; requests / writes is the pipelining factor
  std::uint64_t errors = 0;          // requests completed with an error
};

// A single multiplexed connection.
//
// Thread safety: every member function must be called from the executor
// passed to the constructor (use a strand on a multi-threaded io_context),
// and the coroutines that await it must run on that executor too. Any
// number of coroutines may call async_exec() at once.
//
// Lifetime: destroying the connection (or close()) completes every pending
// request with errc::closed. The awaiting coroutines resume later, from the
// executor, and must not touch a destroyed connection. The execution
// context of the executor must outlive the connection.
//
// Cancellation: async_exec() honours the awaiting coroutine's cancellation
// slot (as set by asio's awaitable operators or bind_cancellation_slot).
// A request not yet written is dropped and completes with
// std::errc::operation_canceled, for any cancellation type. A request
// already written completes that way only on terminal cancellation: its
// commands may still run, and its replies are read and discarded so that
// later replies still match their requests.
class connection final : public client {
 public:
  connection(asio::any_io_executor executor, config cfg, logger log = {});
  ~connection() override;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Starts connecting in the background and keeps the connection up until
  // close(). Requests issued before the first connect wait for it, up to
  // their time limit.
  void start();

  // Waits until the connection is ready (handshake done) or `timeout`
  // passes. Returns the last connect error on timeout (errc::timeout when
  // no attempt has finished yet). Returns early with a connect error that
  // is_retryable() rejects, since waiting does not cure it: auth_failed, a
  // rejected SELECT (server_error), protocol_error, invalid_argument (a
  // socket path too long), tls_unsupported; also with errc::closed, or
  // not_connected once reconnecting is disabled and the connection is gone.
  asio::awaitable<result<void>> async_wait_ready(std::chrono::milliseconds timeout);

  // Sends `req` and returns its replies. `req` must stay alive until the
  // call completes. Every call completes exactly once:
  //   - with the replies (error replies included as values);
  //   - errc::not_connected when the request was never written and the
  //     connection could not be established before its time limit (the
  //     message carries the last connect error);
  //   - errc::connection_lost when it was written but no reply arrived
  //     before the connection broke (the commands may have run);
  //   - errc::protocol_error when the server sent invalid RESP2 or broke a
  //     parser limit while the request was in flight; the connection is
  //     reset;
  //   - errc::timeout when no reply arrived within `timeout` (zero means
  //     config.request_timeout); the connection is then reset, because a
  //     server that does not answer in time would hold every later reply
  //     behind it; the other written requests get errc::connection_lost;
  //   - errc::tls_unsupported for a rediss:// configuration;
  //   - errc::closed after close();
  //   - std::errc::operation_canceled when cancelled (see above).
  // Requests not yet written when the connection drops stay queued and go
  // out after the reconnect.
  asio::awaitable<result<std::vector<reply>>> async_exec(
      const request& req, std::string_view routing_key = {}) override;
  asio::awaitable<result<std::vector<reply>>> async_exec_for(const request& req,
                                                             std::chrono::milliseconds timeout);

  // EVALSHA, then EVAL on NOSCRIPT. Errors as for async_exec(), plus
  // errc::server_error with the server's text when the script fails.
  asio::awaitable<result<reply>> async_eval(const script& s,
                                            std::span<const std::string_view> keys,
                                            std::span<const std::string_view> args) override;

  // Stops reconnecting, closes the socket and completes every pending
  // request with errc::closed. Safe to call more than once.
  void close();

  bool is_ready() const noexcept;
  const config& get_config() const noexcept;
  connection_stats stats() const noexcept;
  asio::any_io_executor get_executor() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace tracewatch::redis
