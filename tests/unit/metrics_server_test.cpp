// The metrics endpoint, exercised over loopback TCP with a Beast client.

#include "tracewatch/metrics_server.hpp"

#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "tracewatch/metrics.hpp"
#include "support/test_support.hpp"

namespace tracewatch {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using testing::run_coro;

using response = http::response<http::string_body>;

// Sends one request on a new connection and reads the response.
asio::awaitable<response> fetch(tcp::endpoint endpoint, http::verb method, std::string target) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  co_await stream.async_connect(endpoint, asio::use_awaitable);
  http::request<http::empty_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  co_await http::async_write(stream, req, asio::use_awaitable);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(method == http::verb::head);  // a HEAD response has no body to read
  co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
  co_return parser.release();
}

// Sends raw bytes and returns everything the server sends until it closes.
// With `half_close`, shuts down the sending side after the bytes, as a client
// that has nothing more to say does.
asio::awaitable<std::string> send_raw(tcp::endpoint endpoint, std::string bytes, bool half_close = true) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(endpoint, asio::use_awaitable);
  boost::system::error_code write_error;  // the server may close first; its reply still counts
  co_await asio::async_write(socket, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, write_error));
  if (half_close) socket.shutdown(tcp::socket::shutdown_send, write_error);
  std::string received;
  char chunk[4096];
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n =
        co_await socket.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    received.append(chunk, n);
    if (ec) break;  // eof: the server closed the connection
  }
  co_return received;
}

class MetricsServer : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.add_counter("tracewatch_sweeps_total", "Sweeps finished.").inc(7);
  }

  std::unique_ptr<metrics_server> start(metrics_server_options options = {}) {
    auto server = metrics_server::start(io_.get_executor(), "127.0.0.1:0", registry_, logger(), options);
    if (!server) throw std::runtime_error(server.error().what());
    return std::move(*server);
  }

  asio::io_context io_;
  metrics_registry registry_;
};

TEST_F(MetricsServer, ServesMetrics) {
  auto server = start();
  const auto res = run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::get, "/metrics"); });

  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res.body(), registry_.render());
  EXPECT_NE(res.body().find("tracewatch_sweeps_total 7\n"), std::string::npos);
}

TEST_F(MetricsServer, BindsToTheRequestedLoopbackAddress) {
  auto server = start();
  EXPECT_EQ(server->local_endpoint().address().to_string(), "127.0.0.1");
  EXPECT_NE(server->local_endpoint().port(), 0);
  EXPECT_EQ(server->local_address(), "127.0.0.1:" + std::to_string(server->local_endpoint().port()));
}

TEST_F(MetricsServer, ListensOnIPv6Loopback) {
  auto server = metrics_server::start(io_.get_executor(), "[::1]:0", registry_, logger());
  if (!server && server.error().code == std::errc::address_not_available) {
    GTEST_SKIP() << "this machine has no IPv6 loopback";
  }
  ASSERT_TRUE(server) << server.error().what();
  const std::string address = (*server)->local_address();
  EXPECT_TRUE(address.starts_with("[::1]:")) << address;

  const auto reparsed = parse_listen_address(address);
  ASSERT_TRUE(reparsed) << reparsed.error().what();
  const auto res = run_coro(io_, [&] { return fetch(*reparsed, http::verb::get, "/healthz"); });
  EXPECT_EQ(res.result(), http::status::ok);
}

TEST_F(MetricsServer, ServesHealthz) {
  auto server = start();
  const auto res = run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::get, "/healthz"); });
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "ok\n");
}

TEST_F(MetricsServer, IgnoresQueryString) {
  auto server = start();
  const auto res =
      run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::get, "/metrics?x=1"); });
  EXPECT_EQ(res.result(), http::status::ok);
}

TEST_F(MetricsServer, UnknownPathIsNotFound) {
  auto server = start();
  const auto res = run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::get, "/nope"); });
  EXPECT_EQ(res.result(), http::status::not_found);
}

TEST_F(MetricsServer, PostIsMethodNotAllowed) {
  auto server = start();
  const auto res = run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::post, "/metrics"); });
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
}

TEST_F(MetricsServer, HeadSendsHeadersOnly) {
  auto server = start();
  const auto res = run_coro(io_, [&] { return fetch(server->local_endpoint(), http::verb::head, "/metrics"); });
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_length], std::to_string(registry_.render().size()));
  EXPECT_TRUE(res.body().empty());
}

TEST_F(MetricsServer, KeepAliveServesSeveralRequests) {
  auto server = start();
  const auto statuses = run_coro(io_, [&]() -> asio::awaitable<std::vector<unsigned>> {
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await stream.async_connect(server->local_endpoint(), asio::use_awaitable);
    beast::flat_buffer buffer;
    std::vector<unsigned> seen;
    for (const char* target : {"/metrics", "/healthz", "/nope"}) {
      http::request<http::empty_body> req{http::verb::get, target, 11};
      req.set(http::field::host, "127.0.0.1");
      co_await http::async_write(stream, req, asio::use_awaitable);
      response res;
      co_await http::async_read(stream, buffer, res, asio::use_awaitable);
      seen.push_back(res.result_int());
    }
    co_return seen;
  });
  EXPECT_EQ(statuses, (std::vector<unsigned>{200, 200, 404}));
}

TEST_F(MetricsServer, GarbageClosesConnectionAndServerKeepsServing) {
  auto server = start();
  const auto endpoint = server->local_endpoint();

  const std::string reply =
      run_coro(io_, [&] { return send_raw(endpoint, std::string("\x00\x01\x02\xff garbage\r\n\r\n", 16)); });
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400")) << reply;

  const auto res = run_coro(io_, [&] { return fetch(endpoint, http::verb::get, "/metrics"); });
  EXPECT_EQ(res.result(), http::status::ok);
}

TEST_F(MetricsServer, OversizedHeaderIsRejected) {
  metrics_server_options options;
  options.max_header_bytes = 512;
  auto server = start(options);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(2000, 'a') + "\r\n\r\n";

  const std::string reply = run_coro(io_, [&] { return send_raw(server->local_endpoint(), request); });
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 431")) << reply;
}

TEST_F(MetricsServer, OversizedBodyIsRejected) {
  auto server = start();
  const std::string request =
      "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + std::string(100, 'a');

  const std::string reply = run_coro(io_, [&] { return send_raw(server->local_endpoint(), request); });
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 413")) << reply;
}

TEST_F(MetricsServer, IdleConnectionIsClosedAfterReadTimeout) {
  metrics_server_options options;
  options.read_timeout = std::chrono::milliseconds(20);
  auto server = start(options);

  // Half a request line, then nothing: the server closes without a response.
  const std::string reply =
      run_coro(io_, [&] { return send_raw(server->local_endpoint(), "GET /met", /*half_close=*/false); });
  EXPECT_EQ(reply, "");
}

TEST_F(MetricsServer, ConnectionsOverTheCapAreClosed) {
  metrics_server_options options;
  options.max_connections = 1;
  auto server = start(options);
  const auto endpoint = server->local_endpoint();

  run_coro(io_, [&]() -> asio::awaitable<void> {
    // The first connection is served and stays open.
    beast::tcp_stream first(co_await asio::this_coro::executor);
    co_await first.async_connect(endpoint, asio::use_awaitable);
    http::request<http::empty_body> req{http::verb::get, "/healthz", 11};
    req.set(http::field::host, "127.0.0.1");
    co_await http::async_write(first, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    response res;
    co_await http::async_read(first, buffer, res, asio::use_awaitable);
    EXPECT_EQ(res.result(), http::status::ok);

    // The second is closed without a response.
    const std::string reply =
        co_await send_raw(endpoint, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", /*half_close=*/false);
    EXPECT_EQ(reply, "");

    // Once the first is gone, the slot is free again; the server notices
    // the close asynchronously, so try until it has.
    first.close();
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const std::string again = co_await send_raw(endpoint, "GET /healthz HTTP/1.0\r\n\r\n");
      if (!again.empty()) {
        EXPECT_TRUE(again.starts_with("HTTP/1.0 200")) << again;
        co_return;
      }
    }
    ADD_FAILURE() << "the freed connection slot was never reused";
  });
}

TEST_F(MetricsServer, StopClosesListenerAndConnections) {
  auto server = start();
  const auto endpoint = server->local_endpoint();

  run_coro(io_, [&]() -> asio::awaitable<void> {
    tcp::socket idle(co_await asio::this_coro::executor);
    co_await idle.async_connect(endpoint, asio::use_awaitable);
    // Let the server accept it before stopping.
    co_await fetch(endpoint, http::verb::get, "/healthz");
    server->stop();

    char byte;
    boost::system::error_code ec;
    co_await idle.async_read_some(asio::buffer(&byte, 1), asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_TRUE(ec) << "the idle connection should be closed by stop()";

    tcp::socket late(co_await asio::this_coro::executor);
    co_await late.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_EQ(ec, asio::error::connection_refused);
  });
}

TEST_F(MetricsServer, PortInUseNamesTheAddress) {
  auto first = start();
  const std::string address = "127.0.0.1:" + std::to_string(first->local_endpoint().port());
  auto second = metrics_server::start(io_.get_executor(), address, registry_, logger());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, std::errc::address_in_use);
  EXPECT_NE(second.error().what().find(address), std::string::npos) << second.error().what();
}

TEST_F(MetricsServer, BadAddressIsRejected) {
  auto server = metrics_server::start(io_.get_executor(), "localhost", registry_, logger());
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error(), errc::invalid_argument);
}

// --- parse_listen_address ----------------------------------------------------------

TEST(ListenAddress, ParsesIPv4) {
  const auto endpoint = parse_listen_address("127.0.0.1:9464");
  ASSERT_TRUE(endpoint) << endpoint.error().what();
  EXPECT_EQ(endpoint->address().to_string(), "127.0.0.1");
  EXPECT_EQ(endpoint->port(), 9464);
}

TEST(ListenAddress, ParsesBracketedIPv6) {
  const auto endpoint = parse_listen_address("[::1]:9464");
  ASSERT_TRUE(endpoint) << endpoint.error().what();
  EXPECT_TRUE(endpoint->address().is_v6());
  EXPECT_EQ(endpoint->address().to_string(), "::1");
  EXPECT_EQ(endpoint->port(), 9464);
}

TEST(ListenAddress, LocalhostIsIPv4Loopback) {
  const auto endpoint = parse_listen_address("localhost:0");
  ASSERT_TRUE(endpoint) << endpoint.error().what();
  EXPECT_EQ(endpoint->address().to_string(), "127.0.0.1");
  EXPECT_EQ(endpoint->port(), 0);
}

TEST(ListenAddress, EmptyHostIsEveryIPv4Interface) {
  const auto endpoint = parse_listen_address(":9464");
  ASSERT_TRUE(endpoint) << endpoint.error().what();
  EXPECT_EQ(endpoint->address().to_string(), "0.0.0.0");
}

TEST(ListenAddress, RejectsMalformedInput) {
  const char* bad[] = {"",           "9464",          "127.0.0.1",      "127.0.0.1:",    "127.0.0.1:x",
                       "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:94 64", "::1:9464",    "[::1]",
                       "[::1]9464",  "[::1:9464",     "[127.0.0.1]:80", "example.com:80", "300.1.1.1:80"};
  for (const char* text : bad) {
    const auto endpoint = parse_listen_address(text);
    ASSERT_FALSE(endpoint) << "accepted '" << text << "'";
    EXPECT_EQ(endpoint.error(), errc::invalid_argument) << text;
    EXPECT_NE(endpoint.error().what().find(std::string("'") + text + "'"), std::string::npos)
        << endpoint.error().what();
  }
}

}  // namespace
}  // namespace tracewatch
