// An HTTP/1.1 endpoint for Prometheus on Boost.Beast:
//   GET /metrics  -> 200, the registry in the text format 0.0.4
//   GET /healthz  -> 200, "ok"
//   other paths   -> 404;  methods other than GET and HEAD -> 405
// A query string is ignored. A malformed request gets 400 (431 when the
// header is over its limit, 413 for a body), and the connection is closed.
//
// Limits: a request header over max_header_bytes or a body over
// max_body_bytes is rejected. A connection that does not send a whole request
// within read_timeout is closed. At most max_connections are served at once,
// and further connections are closed as soon as they are accepted.
//
// Example (metrics_server_test.cpp runs it):
//   asio::io_context io;
//   metrics_registry registry;
//   auto server = metrics_server::start(io.get_executor(), "127.0.0.1:9464", registry, log);
//   if (!server) { /* server.error().what(): "cannot listen on 127.0.0.1:9464: ..." */ }
//   io.run();  // serves until (*server)->stop()

#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/logger.hpp"

namespace tracewatch {

namespace asio = boost::asio;

class metrics_registry;

namespace detail {
struct metrics_server_state;
}  // namespace detail

// The default listen address: loopback only, on port 9464, the default port
// of OpenTelemetry's Prometheus exporters (OTEL_EXPORTER_PROMETHEUS_PORT).
inline constexpr std::string_view kDefaultMetricsAddress = "127.0.0.1:9464";

// Parses "host:port". The host is an IPv4 address, an IPv6 address in
// brackets ("[::1]:9464"), "localhost" (127.0.0.1) or empty (":9464", every
// IPv4 interface), and port 0 picks a free port. Fails with
// errc::invalid_argument and a message that names the text and shows the
// expected form.
result<asio::ip::tcp::endpoint> parse_listen_address(std::string_view text);

struct metrics_server_options {
  std::size_t max_connections = 64;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 1024;
  std::chrono::milliseconds read_timeout{10'000};   // to receive one whole request
  std::chrono::milliseconds write_timeout{10'000};  // to send one whole response
};

class metrics_server {
 public:
  // Parses `listen_address`, binds and listens, and starts accepting on a
  // strand of `executor`. Fails with errc::invalid_argument on a bad address.
  // When binding fails, returns the system error (such as address_in_use)
  // with a message naming the address, and leaves nothing listening.
  //
  // `registry` must outlive every handler this server starts, that is: keep it
  // alive until the executor's io_context has stopped running or is destroyed.
  static result<std::unique_ptr<metrics_server>> start(asio::any_io_executor executor,
                                                       std::string_view listen_address,
                                                       const metrics_registry& registry,
                                                       logger log,
                                                       metrics_server_options options = {});

  // Calls stop(). Destroy the server before the io_context of its executor.
  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  // The address the server listens on, with the real port when 0 was requested.
  asio::ip::tcp::endpoint local_endpoint() const noexcept { return endpoint_; }

  // local_endpoint() as text in the form parse_listen_address() reads:
  // "127.0.0.1:9464" or "[::1]:9464".
  std::string local_address() const;

  // Closes the listening socket and every open connection. Idempotent; may
  // be called from any thread. The handlers end soon after, on the executor.
  void stop();

 private:
  metrics_server(std::shared_ptr<detail::metrics_server_state> s, asio::ip::tcp::endpoint endpoint)
      : state_(std::move(s)), endpoint_(endpoint) {}

  // Shared with the accept loop and the connection coroutines.
  std::shared_ptr<detail::metrics_server_state> state_;
  asio::ip::tcp::endpoint endpoint_;
};

}  // namespace tracewatch
