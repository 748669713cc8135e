// The state behind redis::connection, shared by connection.cpp (requests,
// time limits, close) and connection_session.cpp (connecting, reading,
// writing, the health check).
//
// Flow of one request:
//   async_exec -> enqueue(): the request joins queued_ and wakes the writer
//   writer     -> copies queued payloads into one buffer, moves each request
//                 to in_flight_ with the number of replies it expects, and
//                 writes the buffer (automatic pipelining)
//   reader     -> parses replies and hands them to in_flight_.front() in
//                 order; the last reply of a request completes it
//
// A pending_request lives in the frame of the coroutine that awaits it, so a
// request needs no heap allocation of its own. Completion resumes that
// coroutine through its stored handler, exactly once: every path that
// completes a request first removes it from the queues (or leaves a
// placeholder, see below) and marks it done.
//
// Placeholders: a request that was written but whose caller is cancelled
// leaves its in_flight_ entry with a null request, so that its replies are
// read and dropped and later replies still match. A request that times out
// after being written also leaves a placeholder, but then the connection is
// reset, because a server that does not answer within the time limit would
// hold every later reply behind it; the other written requests complete
// with errc::connection_lost.

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/detail/resp_reader.hpp"

namespace tracewatch::redis::detail {

using clock = std::chrono::steady_clock;

class connection_impl;

// One request from async_exec() to its completion.
struct pending_request {
  enum class stage : std::uint8_t { created, queued, written, done };

  std::string_view payload;  // the caller's request, alive while the caller waits
  std::size_t commands = 0;
  clock::time_point deadline;
  std::chrono::milliseconds timeout{0};
  bool internal = false;  // a health check PING: not counted in the statistics

  stage state = stage::created;
  std::vector<reply> replies;
  bool failed = false;
  error failure;

  boost::asio::any_completion_handler<void()> handler;
  boost::asio::cancellation_slot slot;
};

// An entry of in_flight_: a written request and the replies it still
// expects. `request` is null for a placeholder whose replies are dropped.
struct in_flight_entry {
  pending_request* request;
  std::size_t remaining;
};

class connection_impl : public std::enable_shared_from_this<connection_impl> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;

  connection_impl(boost::asio::any_io_executor executor, config cfg, logger log);
  ~connection_impl();

  // --- Requests (connection.cpp) -----------------------------------------
  // Refuses a request up front: closed, TLS requested, or stopped for good.
  std::optional<error> refuse_request() const;
  // Queues `p` and suspends until it completes.
  boost::asio::awaitable<void> async_submit(pending_request& p);
  boost::asio::awaitable<result<void>> async_wait_ready(std::chrono::milliseconds timeout);
  void start();
  void close();

  // Completes `p`, which is already off the queues. A direct completion may
  // resume the caller inside this call; the others are posted.
  void complete(pending_request& p, bool direct);
  void fail(pending_request& p, error e);
  void fail_all_queued(const error& e);
  void fail_all_in_flight(const error& e);

  // --- Session (connection_session.cpp) ----------------------------------
  boost::asio::awaitable<void> run(std::shared_ptr<connection_impl> self);
  // Ends the current session with `reason`: closes the socket and wakes the
  // loops. The first reason wins.
  void end_session(error reason);

  // Shared state. Every member is touched only on executor_.
  boost::asio::any_io_executor executor_;
  config cfg_;
  logger log_;
  std::string address_;  // cfg_.display_address(), without the password

  socket_type socket_;
  boost::asio::ip::tcp::resolver resolver_;
  resp_reader reader_;
  std::vector<char> read_buffer_;
  std::string write_buffer_;
  reply incoming_;

  std::deque<pending_request*> queued_;  // null entries were removed early
  std::deque<in_flight_entry> in_flight_;

  boost::asio::steady_timer writer_wakeup_;  // cancelled to wake an idle writer
  bool writer_idle_ = false;
  boost::asio::steady_timer deadline_timer_;  // fires at the earliest request deadline
  clock::time_point next_deadline_ = clock::time_point::max();
  bool deadline_loop_started_ = false;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer backoff_timer_;
  std::vector<boost::asio::steady_timer*> ready_waiters_;
  pending_request* health_ping_ = nullptr;

  bool started_ = false;
  bool closed_ = false;
  bool stopped_ = false;         // reconnect disabled and the connection is gone
  bool ready_ = false;           // handshake done, session running
  bool session_active_ = false;  // the loops of the current session may run
  std::uint64_t session_id_ = 0;
  error session_error_;
  bool has_connect_error_ = false;
  error last_connect_error_;
  std::uint64_t reads_ = 0;  // socket reads, for the health check's idle test
  connection_stats stats_;
  std::mt19937_64 random_;

 private:
  void enqueue(pending_request& p, boost::asio::any_completion_handler<void()> handler);
  void unlink(pending_request& p);
  void arm_deadline(clock::time_point deadline);
  void expire_requests(clock::time_point now);
  void start_deadline_loop();
  boost::asio::awaitable<void> deadline_loop(std::shared_ptr<connection_impl> self);
  void wake_ready_waiters();

  friend struct cancel_request;

  // Session helpers (connection_session.cpp).
  boost::asio::awaitable<result<void>> async_connect_once();
  boost::asio::awaitable<result<void>> async_connect_socket();
  boost::asio::awaitable<result<void>> async_handshake();
  boost::asio::awaitable<result<void>> async_connect_with_timeout();
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  boost::asio::awaitable<void> health_loop();
  bool deliver(reply&& r);
  void on_connected(unsigned failed_attempts);
  void on_connect_failed(const error& e, unsigned attempt, std::chrono::milliseconds retry_in);
  void on_disconnected();
  void stop_for_good(const error& e);
};

}  // namespace tracewatch::redis::detail
