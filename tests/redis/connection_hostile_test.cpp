// redis::connection against a fake server on 127.0.0.1 that completes the
// handshake, then sends a hostile reply: a huge array header, nesting deeper
// than the parser supports, garbage, an endless bulk or line, or a reply
// that no request is waiting for. The request fails with protocol_error and
// the process stays up. The connection then reconnects, and the fake server
// replies properly on the new connection.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "support/test_support.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using redis::reply;
using redis::request;
using testing::run_coro;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// What the fake server sends for the first request on its first connection:
// `payload`, then `endless_tail` over and over until the client hangs up,
// or nothing more and then a close when `close_after` is set. With
// `unsolicited`, the payload follows the handshake reply without waiting for
// a request.
struct hostile_reply {
  std::string payload;
  std::string endless_tail;
  bool close_after = false;
  bool unsolicited = false;
};

// Accepts connections on an ephemeral loopback port. Each connection gets
// "+PONG" for its handshake (the client sends only PING, having no name).
// On the first connection the first request gets the hostile reply; on later
// connections every request gets "+OK".
class fake_server {
 public:
  fake_server(asio::io_context& io, hostile_reply reply)
      : state_(std::make_shared<state>(io, std::move(reply))) {
    asio::co_spawn(io, accept_loop(state_), asio::detached);
  }
  ~fake_server() { stop(); }

  std::uint16_t port() const { return state_->acceptor.local_endpoint().port(); }
  std::uint64_t tail_bytes_sent() const { return state_->tail_bytes_sent; }

  void stop() {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
  }

 private:
  // Shared with the coroutines, which may outlive the fake_server object.
  struct state {
    state(asio::io_context& io, hostile_reply r)
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), reply(std::move(r)) {}
    tcp::acceptor acceptor;
    hostile_reply reply;
    std::uint64_t tail_bytes_sent = 0;
  };

  static asio::awaitable<void> accept_loop(std::shared_ptr<state> s) {
    for (int index = 0;; ++index) {
      auto [ec, socket] = co_await s->acceptor.async_accept(use_nothrow);
      if (ec) co_return;
      asio::co_spawn(s->acceptor.get_executor(), serve(s, std::move(socket), index), asio::detached);
    }
  }

  // Reads one command (one read is enough for the short commands here).
  static asio::awaitable<bool> read_command(tcp::socket& socket) {
    std::array<char, 4096> buf{};
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_nothrow);
    co_return !ec && n > 0;
  }

  static asio::awaitable<void> serve(std::shared_ptr<state> s, tcp::socket socket, int index) {
    if (!co_await read_command(socket)) co_return;
    co_await asio::async_write(socket, asio::buffer(std::string_view("+PONG\r\n")), use_nothrow);

    if (index == 0) {
      if (!s->reply.unsolicited && !co_await read_command(socket)) co_return;
      auto [ec, n] = co_await asio::async_write(socket, asio::buffer(s->reply.payload), use_nothrow);
      if (ec || s->reply.close_after) co_return;
      if (s->reply.endless_tail.empty()) {
        co_await read_command(socket);  // hold the connection until the client drops it
        co_return;
      }
      // Until the client hangs up; the cap only stops a client that never does.
      constexpr std::uint64_t kCap = 2ull << 30;
      std::string chunk;
      while (chunk.size() < (64u << 10)) chunk += s->reply.endless_tail;
      while (s->tail_bytes_sent < kCap) {
        auto [write_error, written] = co_await asio::async_write(socket, asio::buffer(chunk), use_nothrow);
        if (write_error) co_return;
        s->tail_bytes_sent += written;
      }
      co_return;
    }

    while (co_await read_command(socket)) {
      auto [ec, n] = co_await asio::async_write(socket, asio::buffer(std::string_view("+OK\r\n")),
                                                use_nothrow);
      if (ec) co_return;
    }
  }

  std::shared_ptr<state> state_;
};

class ConnectionHostile : public ::testing::Test {
 protected:
  // Sends one request into the hostile reply, then one more after the
  // reconnect. Returns the error of the first and the reply of the second.
  std::pair<error, result<std::vector<reply>>> exchange(hostile_reply hostile,
                                                        redis::parser_limits limits = {}) {
    fake_server server(io_, std::move(hostile));
    redis::config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = server.port();
    cfg.client_name.clear();
    cfg.health_check_interval = 0ms;
    cfg.reconnect_min_delay = 5ms;
    cfg.reconnect_max_delay = 20ms;
    cfg.limits = limits;
    redis::connection conn(io_.get_executor(), cfg);
    conn.start();

    auto outcome = run_coro(io_, [&]() -> asio::awaitable<std::pair<error, result<std::vector<reply>>>> {
      request req;
      req.push("GET", "anything");
      auto first = co_await conn.async_exec(req);
      auto second = co_await conn.async_exec(req);
      co_return std::make_pair(first ? error() : first.error(), std::move(second));
    });
    tail_bytes_sent_ = server.tail_bytes_sent();
    conn.close();
    server.stop();
    return outcome;
  }

  asio::io_context io_;
  std::uint64_t tail_bytes_sent_ = 0;
};

void expect_recovered(const result<std::vector<reply>>& second) {
  ASSERT_TRUE(second.has_value()) << second.error().what();
  EXPECT_EQ(second->front().str, "OK");
}

TEST_F(ConnectionHostile, HugeArrayHeader) {
  auto [first, second] = exchange({"*2147483647\r\n", ""});
  EXPECT_EQ(first, errc::protocol_error);
  EXPECT_NE(first.message.find("max_array_elements"), std::string::npos) << first.message;
  expect_recovered(second);
}

TEST_F(ConnectionHostile, ArrayHeaderOverIntRange) {
  auto [first, second] = exchange({"*99999999999999\r\n", ""});
  EXPECT_EQ(first, errc::protocol_error);
  expect_recovered(second);
}

TEST_F(ConnectionHostile, NestingDeeperThanParserSupports) {
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  auto [first, second] = exchange({deep, ""});
  EXPECT_EQ(first, errc::protocol_error);
  EXPECT_NE(first.message.find("nested"), std::string::npos) << first.message;
  expect_recovered(second);
}

TEST_F(ConnectionHostile, GarbageBytes) {
  auto [first, second] = exchange({std::string("\x00\x01\x02garbage\r\n", 12), ""});
  EXPECT_EQ(first, errc::protocol_error);
  expect_recovered(second);
}

TEST_F(ConnectionHostile, EndlessBulkIsRejectedAtItsLength) {
  auto [first, second] = exchange({"$1099511627776\r\n", "x"});
  EXPECT_EQ(first, errc::protocol_error);
  EXPECT_NE(first.message.find("max_bulk_bytes"), std::string::npos) << first.message;
  expect_recovered(second);
}

TEST_F(ConnectionHostile, BulkLongerThanDeclared) {
  redis::parser_limits limits;
  limits.max_bulk_bytes = 1u << 20;
  auto [first, second] = exchange({"$1000\r\n", "y"}, limits);
  EXPECT_EQ(first, errc::protocol_error);
  EXPECT_NE(first.message.find("CRLF"), std::string::npos) << first.message;
  expect_recovered(second);
}

TEST_F(ConnectionHostile, EndlessLineStopsAtLineLimit) {
  redis::parser_limits limits;
  limits.max_line_bytes = 256u << 10;
  auto [first, second] = exchange({"+", "z"}, limits);
  EXPECT_EQ(first, errc::protocol_error);
  EXPECT_NE(first.message.find("max_line_bytes"), std::string::npos) << first.message;
  expect_recovered(second);
  // The client dropped the connection soon after the limit, not after the
  // fake server's 2 GiB cap.
  EXPECT_LT(tail_bytes_sent_, 1ull << 30);
}

// RESP2 servers never send a reply without a request (outside pub/sub), so
// one that arrives while nothing is in flight ends the session.
// NOTE: an extra reply that arrives while a request is in flight cannot be
// told apart from that request's reply.
TEST_F(ConnectionHostile, UnsolicitedReplyResetsConnection) {
  hostile_reply hostile{"+EXTRA\r\n", ""};
  hostile.unsolicited = true;
  fake_server server(io_, hostile);
  redis::config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = server.port();
  cfg.client_name.clear();
  cfg.health_check_interval = 0ms;
  cfg.reconnect_min_delay = 5ms;
  cfg.reconnect_max_delay = 20ms;
  redis::connection conn(io_.get_executor(), cfg);
  conn.start();

  auto replies = run_coro(io_, [&]() -> asio::awaitable<result<std::vector<reply>>> {
    asio::steady_timer poll(io_);
    while (conn.stats().connects < 2) {
      poll.expires_after(5ms);
      co_await poll.async_wait(asio::use_awaitable);
    }
    request req;
    req.push("GET", "anything");
    co_return co_await conn.async_exec(req);
  });
  EXPECT_GE(conn.stats().connects, 2u);
  expect_recovered(replies);
}

TEST_F(ConnectionHostile, ServerClosesMidReply) {
  auto [first, second] = exchange({"*3\r\n:1\r\n", "", true});
  EXPECT_EQ(first, errc::connection_lost);
  expect_recovered(second);
}

}  // namespace
}  // namespace tracewatch
