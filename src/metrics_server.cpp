#include "tracewatch/metrics_server.hpp"

#include <charconv>
#include <map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "tracewatch/log_rate_limiter.hpp"
#include "tracewatch/metrics.hpp"

namespace tracewatch {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct detail::metrics_server_state {
  metrics_server_state(asio::strand<asio::any_io_executor> s, const metrics_registry& r, logger l,
                       metrics_server_options o)
      : strand(s), acceptor(strand), registry(r), log(std::move(l)), options(o) {}

  // Every member is touched on `strand` only, once start() returned.
  asio::strand<asio::any_io_executor> strand;
  tcp::acceptor acceptor;
  const metrics_registry& registry;
  logger log;
  metrics_server_options options;
  std::string address;  // for logs
  bool stopped = false;
  std::uint64_t next_connection_id = 0;
  // Counted when accepted, so that the cap applies before a connection's coroutine runs.
  std::size_t open_connections = 0;
  std::map<std::uint64_t, beast::tcp_stream*> streams;  // to close on stop()
  // One warning per 10 s at most when connections are turned away.
  log_rate_limiter rejection_limiter{{.max_lines = 1, .interval = std::chrono::seconds(10), .max_keys = 1}};
};

namespace {

using state = detail::metrics_server_state;
using response = http::response<http::string_body>;

// --- requests and responses ------------------------------------------------------

response make_text_response(http::status status, unsigned version, std::string body) {
  response res{status, version};
  res.set(http::field::server, "tracewatch");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

// Routes one request; see the header for the table.
response handle_request(const http::request<http::string_body>& req, const metrics_registry& registry) {
  const bool head = req.method() == http::verb::head;
  response res;

  // The path without the query string.
  std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));

  if (req.method() != http::verb::get && !head) {
    res = make_text_response(http::status::method_not_allowed, req.version(), "method not allowed\n");
    res.set(http::field::allow, "GET, HEAD");
  } else if (path == "/metrics") {
    res = make_text_response(http::status::ok, req.version(), registry.render());
    res.set(http::field::content_type, kPrometheusContentType);
  } else if (path == "/healthz") {
    res = make_text_response(http::status::ok, req.version(), "ok\n");
  } else {
    res = make_text_response(http::status::not_found, req.version(), "not found: try /metrics or /healthz\n");
  }

  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  // HEAD keeps the Content-Length of the GET response but sends no body.
  if (head) res.body().clear();
  return res;
}

// The status for a request the parser rejected.
http::status status_for_parse_error(const error_code& ec) {
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return http::status::request_header_fields_too_large;
  }
  if (ec == http::error::body_limit) return http::status::payload_too_large;
  return http::status::bad_request;
}

// True for read errors after which no response can or should be sent: the
// peer went away, the read timed out, or the server is stopping.
bool is_disconnect(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == beast::error::timeout || ec == asio::error::eof ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::bad_descriptor;
}

// --- connections -----------------------------------------------------------------

// Reads and discards what the client still sends, up to kDrainBytes or for
// kDrainTime, until it closes. Closing a socket with unread input makes the
// kernel send a reset, which can destroy the error response before the
// client reads it. Draining first lets the client see why it was rejected.
constexpr std::size_t kDrainBytes = 64 * 1024;
constexpr std::chrono::seconds kDrainTime{1};

asio::awaitable<void> drain_before_close(beast::tcp_stream& stream, const state& st) {
  if (st.stopped) co_return;
  stream.expires_after(kDrainTime);
  char sink[4096];
  std::size_t total = 0;
  while (total < kDrainBytes) {
    error_code ec;
    total += co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
}

asio::awaitable<void> serve_connection(std::shared_ptr<state> st, tcp::socket socket, std::uint64_t id) {
  beast::tcp_stream stream(std::move(socket));
  st->streams.emplace(id, &stream);
  struct unregister {
    state& s;
    std::uint64_t id;
    ~unregister() {
      s.streams.erase(id);
      --s.open_connections;
    }
  } guard{*st, id};

  const auto& opts = st->options;
  beast::flat_buffer buffer(opts.max_header_bytes + opts.max_body_bytes);

  // One request per pass; keep-alive connections loop.
  bool rejected = false;  // the parser failed, so unread input may remain
  while (!st->stopped) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
    parser.body_limit(opts.max_body_bytes);

    error_code ec;
    stream.expires_after(opts.read_timeout);
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec && is_disconnect(ec)) break;

    response res;
    if (ec) {
      // Malformed or oversized: send one error response, then close.
      rejected = true;
      st->log.debug("bad_request", {{"error", ec.message()}});
      const http::status status = status_for_parse_error(ec);
      res = make_text_response(status, 11, fmt::format("{}: {}\n", http::obsolete_reason(status), ec.message()));
      res.keep_alive(false);
      res.prepare_payload();
    } else {
      res = handle_request(parser.get(), st->registry);
    }

    stream.expires_after(opts.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }

  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (rejected) co_await drain_before_close(stream, *st);
  stream.close();
}

asio::awaitable<void> accept_loop(std::shared_ptr<state> st) {
  while (!st->stopped) {
    error_code ec;
    tcp::socket socket = co_await st->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (st->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Such as EMFILE (out of file descriptors): wait before trying again
      // instead of spinning on the same error.
      st->log.warn("accept_failed", {{"address", st->address}, {"error", ec.message()}});
      asio::steady_timer pause(st->strand, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }

    if (st->open_connections >= st->options.max_connections) {
      auto decision = st->rejection_limiter.admit("", std::chrono::steady_clock::now());
      if (decision.allowed) {
        st->log.warn("connection_rejected",
                     {{"reason", "too many open connections"},
                      {"max_connections", st->options.max_connections},
                      {"suppressed", decision.suppressed}});
      }
      socket.close(ec);
      continue;
    }
    ++st->open_connections;
    asio::co_spawn(st->strand, serve_connection(st, std::move(socket), st->next_connection_id++),
                   asio::detached);
  }
}

void stop_on_strand(const std::shared_ptr<state>& st) {
  if (st->stopped) return;
  st->stopped = true;
  error_code ignored;
  st->acceptor.close(ignored);

  // Closing completes each connection's pending operation with
  // operation_aborted; the coroutines then unregister themselves.
  const std::size_t open = st->open_connections;
  for (auto& [id, stream] : st->streams) stream->close();
  st->log.info("metrics_server_stopped", {{"address", st->address}, {"connections_closed", open}});
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

error invalid_address(std::string_view text, std::string_view reason) {
  return error(errc::invalid_argument,
               fmt::format("invalid listen address '{}': {}; expected host:port such as "
                           "127.0.0.1:9464 or [::1]:9464",
                           text, reason));
}

}  // namespace

// --- parse_listen_address --------------------------------------------------------

result<tcp::endpoint> parse_listen_address(std::string_view text) {
  // Split into host and port: "[v6]:port" or "host:port" with one colon.
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return invalid_address(text, "missing ']' after the IPv6 address");
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_address(text, "missing ':port' after ']'");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    bracketed = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return invalid_address(text, "missing ':port'");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return invalid_address(text, "write an IPv6 address in brackets");
    }
  }

  // The port: a decimal number from 0 to 65535.
  unsigned port = 0;
  const auto [end, parse_error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || parse_error != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return invalid_address(text, fmt::format("the port '{}' is not a number from 0 to 65535", port_text));
  }

  // The host: an IP literal, "localhost", or empty for every IPv4 interface.
  asio::ip::address address;
  if (host.empty() && !bracketed) {
    address = asio::ip::address_v4::any();
  } else if (host == "localhost" && !bracketed) {
    address = asio::ip::address_v4::loopback();
  } else {
    error_code ec;
    if (bracketed) {
      address = asio::ip::make_address_v6(std::string(host), ec);
    } else {
      address = asio::ip::make_address_v4(std::string(host), ec);
    }
    if (ec) {
      return invalid_address(text, fmt::format("'{}' is not an {} address", host, bracketed ? "IPv6" : "IPv4"));
    }
  }
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

// --- metrics_server ----------------------------------------------------------------

result<std::unique_ptr<metrics_server>> metrics_server::start(asio::any_io_executor executor,
                                                              std::string_view listen_address,
                                                              const metrics_registry& registry,
                                                              logger log,
                                                              metrics_server_options options) {
  auto endpoint = parse_listen_address(listen_address);
  if (!endpoint) return endpoint.error();

  auto st = std::make_shared<state>(asio::make_strand(executor), registry,
                                    log.with_component("metrics_server"), options);

  // Open, bind and listen; on failure the acceptor closes with `st`.
  error_code ec;
  auto fail = [&](std::string_view step) {
    return error(ec, fmt::format("cannot listen on {}: {} failed: {}", listen_address, step, ec.message()));
  };
  st->acceptor.open(endpoint->protocol(), ec);
  if (ec) return fail("socket");
  st->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("setsockopt(SO_REUSEADDR)");
  st->acceptor.bind(*endpoint, ec);
  if (ec) return fail("bind");
  st->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const tcp::endpoint bound = st->acceptor.local_endpoint(ec);
  if (ec) return fail("getsockname");

  st->address = endpoint_text(bound);
  st->log.info("metrics_server_started", {{"address", st->address}});
  asio::co_spawn(st->strand, accept_loop(st), asio::detached);
  return std::unique_ptr<metrics_server>(new metrics_server(std::move(st), bound));
}

metrics_server::~metrics_server() { stop(); }

std::string metrics_server::local_address() const { return endpoint_text(endpoint_); }

void metrics_server::stop() {
  asio::dispatch(state_->strand, [st = state_] { stop_on_strand(st); });
}

}  // namespace tracewatch
