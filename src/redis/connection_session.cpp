// The connection's background work: connect and handshake, then one session
// of three loops (reader, writer, health check) until the connection breaks,
// then reconnect after a backoff delay. See connection_impl.hpp for how a
// request moves through the queues.

#include <sys/un.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "connection_impl.hpp"
#include "tracewatch/redis/detail/backoff.hpp"
#include "tracewatch/redis/detail/handshake.hpp"

namespace tracewatch::redis::detail {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::string_view kPingPayload = "*1\r\n$4\r\nPING\r\n";

// The writer copies queued requests into one buffer of about this size per
// socket write: large enough that a write carries thousands of small
// commands, small enough that a burst does not delay the first reply long.
constexpr std::size_t kMaxWriteBatchBytes = 1u << 20;

// A write buffer that grew past this for one large request is released.
constexpr std::size_t kMaxRetainedWriteBuffer = 4u << 20;

// Connect failures are warnings at attempts 1, 2, 4, 8, ... and debug
// records otherwise, so that a server down for an hour does not flood the log.
bool worth_a_warning(unsigned attempt) { return attempt != 0 && (attempt & (attempt - 1)) == 0; }

}  // namespace

asio::awaitable<void> connection_impl::run([[maybe_unused]] std::shared_ptr<connection_impl> self) {
  unsigned failures = 0;
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  while (!closed_) {
    auto connected = co_await async_connect_with_timeout();
    if (closed_) break;

    // Failed: record why, back off, try again.
    if (!connected) {
      ++stats_.connect_failures;
      ++failures;
      has_connect_error_ = true;
      last_connect_error_ = connected.error();
      if (!cfg_.reconnect) {
        on_connect_failed(connected.error(), failures, std::chrono::milliseconds(0));
        stop_for_good(connected.error());
        co_return;
      }
      const auto delay = backoff_delay(failures - 1, cfg_.reconnect_min_delay,
                                       cfg_.reconnect_max_delay, unit(random_));
      on_connect_failed(connected.error(), failures, delay);
      wake_ready_waiters();
      backoff_timer_.expires_after(delay);
      co_await backoff_timer_.async_wait(use_nothrow);
      continue;
    }

    // Connected: run the session until any loop ends it.
    on_connected(failures);
    failures = 0;
    co_await (read_loop() && write_loop() && health_loop());
    on_disconnected();
    if (closed_) break;
    if (!cfg_.reconnect) {
      stop_for_good(session_error_);
      co_return;
    }

    // The first retry after a drop is jittered too, so that the clients of a
    // restarted server spread out.
    backoff_timer_.expires_after(
        backoff_delay(0, cfg_.reconnect_min_delay, cfg_.reconnect_max_delay, unit(random_)));
    co_await backoff_timer_.async_wait(use_nothrow);
  }
}

asio::awaitable<result<void>> connection_impl::async_connect_with_timeout() {
  if (cfg_.connect_timeout.count() <= 0) co_return co_await async_connect_once();

  asio::steady_timer timer(executor_, cfg_.connect_timeout);
  auto outcome = co_await (async_connect_once() || timer.async_wait(use_nothrow));
  if (outcome.index() == 0) co_return std::get<0>(std::move(outcome));

  boost::system::error_code ignored;
  socket_.close(ignored);
  co_return error(errc::timeout,
                  fmt::format("connecting to {} timed out after {} ms (connect and handshake)",
                              address_, cfg_.connect_timeout.count()));
}

asio::awaitable<result<void>> connection_impl::async_connect_once() {
  boost::system::error_code ignored;
  socket_.close(ignored);
  reader_.reset();

  auto socket = co_await async_connect_socket();
  if (!socket) co_return socket.error();
  co_return co_await async_handshake();
}

asio::awaitable<result<void>> connection_impl::async_connect_socket() {
  if (!cfg_.unix_path.empty()) {
    // The endpoint constructor throws for a path that does not fit sun_path.
    constexpr std::size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;
    if (cfg_.unix_path.size() > kMaxUnixPath) {
      co_return error(errc::invalid_argument,
                      fmt::format("the unix socket path in {} is longer than {} bytes; "
                                  "move the socket to a shorter path",
                                  address_, kMaxUnixPath));
    }
    const asio::local::stream_protocol::endpoint endpoint(cfg_.unix_path);
    auto [ec] = co_await socket_.async_connect(socket_type::endpoint_type(endpoint), use_nothrow);
    if (ec) {
      co_return error(errc::not_connected,
                      fmt::format("connecting to {} failed: {}", address_, ec.message()));
    }
    co_return result<void>{};
  }

  // A literal address needs no resolver.
  std::vector<asio::ip::tcp::endpoint> endpoints;
  boost::system::error_code parse_error;
  const auto literal = asio::ip::make_address(cfg_.host, parse_error);
  if (!parse_error) {
    endpoints.emplace_back(literal, cfg_.port);
  } else {
    auto [ec, found] =
        co_await resolver_.async_resolve(cfg_.host, std::to_string(cfg_.port), use_nothrow);
    if (ec) {
      co_return error(errc::not_connected, fmt::format("resolving host '{}' of {} failed: {}",
                                                       cfg_.host, address_, ec.message()));
    }
    for (const auto& entry : found) endpoints.push_back(entry.endpoint());
  }

  boost::system::error_code last = asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    auto [ec] = co_await socket_.async_connect(socket_type::endpoint_type(endpoint), use_nothrow);
    if (!ec) {
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      socket_.set_option(asio::socket_base::keep_alive(true), ignored);
      co_return result<void>{};
    }
    last = ec;
    if (ec == asio::error::operation_aborted) break;
  }
  co_return error(errc::not_connected,
                  fmt::format("connecting to {} failed: {}", address_, last.message()));
}

asio::awaitable<result<void>> connection_impl::async_handshake() {
  const request handshake = make_handshake(cfg_);
  auto [write_error, written] =
      co_await asio::async_write(socket_, asio::buffer(handshake.payload()), use_nothrow);
  if (write_error) {
    co_return error(errc::not_connected, fmt::format("sending the handshake to {} failed: {}",
                                                     address_, write_error.message()));
  }

  std::vector<reply> replies;
  replies.reserve(handshake.size());
  while (replies.size() < handshake.size()) {
    reply next;
    auto parsed = reader_.next(next);
    if (!parsed) co_return error(errc::protocol_error, address_ + ": " + parsed.error().message);
    if (*parsed) {
      replies.push_back(std::move(next));
      continue;
    }

    auto [read_error, n] = co_await socket_.async_read_some(asio::buffer(read_buffer_), use_nothrow);
    if (read_error) {
      co_return error(errc::not_connected,
                      read_error == asio::error::eof
                          ? fmt::format("{} closed the connection during the handshake", address_)
                          : fmt::format("reading the handshake from {} failed: {}", address_,
                                        read_error.message()));
    }
    auto fed = reader_.feed(std::string_view(read_buffer_.data(), n));
    if (!fed) co_return error(errc::protocol_error, address_ + ": " + fed.error().message);
  }
  co_return check_handshake(cfg_, replies);
}

// --- The session's loops -------------------------------------------------------

asio::awaitable<void> connection_impl::read_loop() {
  const std::uint64_t session = session_id_;
  for (;;) {
    // Deliver every complete reply first: the handshake's last read may
    // have left some behind.
    for (;;) {
      auto parsed = reader_.next(incoming_);
      if (!parsed) {
        end_session(parsed.error());
        co_return;
      }
      if (!*parsed) break;
      if (!deliver(std::move(incoming_))) {
        end_session(error(errc::protocol_error,
                          fmt::format("{} sent a reply while no request was waiting", address_)));
        co_return;
      }
      // A completed caller may have closed the connection.
      if (!session_active_ || session_id_ != session) co_return;

      // Once the completed callers have queued as many requests as are
      // still in flight, an idle writer sends them before the rest of this
      // read is delivered. Two half batches then alternate: the server runs
      // one while this side completes the other, instead of both sides
      // taking turns with one whole batch.
      if (writer_idle_ && !queued_.empty() && queued_.size() >= in_flight_.size()) {
        co_await asio::post(executor_, asio::use_awaitable);
        if (!session_active_ || session_id_ != session) co_return;
      }
    }

    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(read_buffer_), use_nothrow);
    if (ec) {
      end_session(error(errc::connection_lost,
                        ec == asio::error::eof
                            ? fmt::format("{} closed the connection", address_)
                            : fmt::format("reading from {} failed: {}", address_, ec.message())));
      co_return;
    }
    ++reads_;
    auto fed = reader_.feed(std::string_view(read_buffer_.data(), n));
    if (!fed) {
      end_session(fed.error());
      co_return;
    }
  }
}

bool connection_impl::deliver(reply&& r) {
  if (in_flight_.empty()) return false;
  in_flight_entry& entry = in_flight_.front();
  pending_request* request = entry.request;
  if (request != nullptr) request->replies.push_back(std::move(r));
  if (--entry.remaining > 0) return true;

  in_flight_.pop_front();
  if (request != nullptr) complete(*request, true);
  return true;
}

asio::awaitable<void> connection_impl::write_loop() {
  for (;;) {
    if (!session_active_) co_return;
    while (!queued_.empty() && queued_.front() == nullptr) queued_.pop_front();
    if (queued_.empty()) {
      writer_idle_ = true;
      writer_wakeup_.expires_at(clock::time_point::max());
      co_await writer_wakeup_.async_wait(use_nothrow);
      writer_idle_ = false;
      continue;
    }

    // Queued requests go out together, up to kMaxWriteBatchBytes per write.
    // From here on each request counts as sent, since the server may run it.
    write_buffer_.clear();
    while (!queued_.empty() && write_buffer_.size() < kMaxWriteBatchBytes) {
      pending_request* request = queued_.front();
      queued_.pop_front();
      if (request == nullptr) continue;
      write_buffer_.append(request->payload);
      request->state = pending_request::stage::written;
      in_flight_.push_back({request, request->commands});
    }

    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(write_buffer_), use_nothrow);
    ++stats_.writes;
    if (ec) {
      end_session(error(errc::connection_lost,
                        fmt::format("writing to {} failed: {}", address_, ec.message())));
      co_return;
    }
    if (write_buffer_.capacity() > kMaxRetainedWriteBuffer) std::string().swap(write_buffer_);
  }
}

asio::awaitable<void> connection_impl::health_loop() {
  const auto interval = cfg_.health_check_interval;
  if (interval.count() <= 0) {
    while (session_active_) {
      health_timer_.expires_at(clock::time_point::max());
      co_await health_timer_.async_wait(use_nothrow);
    }
    co_return;
  }

  // A PING goes out only when a whole interval passed with nothing to read
  // and nothing in flight. Its reply must arrive within one interval.
  std::uint64_t last_reads = reads_;
  for (;;) {
    health_timer_.expires_after(interval);
    co_await health_timer_.async_wait(use_nothrow);
    if (!session_active_) co_return;
    const bool idle = reads_ == last_reads && in_flight_.empty() && queued_.empty();
    last_reads = reads_;
    if (!idle) continue;

    pending_request ping;
    ping.payload = kPingPayload;
    ping.commands = 1;
    ping.internal = true;
    ping.timeout = interval;
    ping.deadline = clock::now() + interval;
    health_ping_ = &ping;
    co_await async_submit(ping);
    health_ping_ = nullptr;
    if (!session_active_) co_return;
    last_reads = reads_;
  }
}

// --- State changes -------------------------------------------------------------

void connection_impl::end_session(error reason) {
  if (!session_active_) return;
  session_active_ = false;
  ready_ = false;
  session_error_ = std::move(reason);

  boost::system::error_code ignored;
  socket_.close(ignored);
  writer_wakeup_.cancel();
  health_timer_.cancel();

  // The session ends only once the health loop returns, and that loop waits
  // for its PING.
  if (health_ping_ != nullptr && health_ping_->state != pending_request::stage::done) {
    unlink(*health_ping_);
    fail(*health_ping_, session_error_);
  }
  health_ping_ = nullptr;
}

void connection_impl::on_connected(unsigned failed_attempts) {
  ready_ = true;
  session_active_ = true;
  ++session_id_;
  session_error_ = error();
  has_connect_error_ = false;
  ++stats_.connects;
  log_.info("redis_connected", {{"address", address_},
                                {"connects", stats_.connects},
                                {"failed_attempts", failed_attempts}});
  wake_ready_waiters();
}

void connection_impl::on_connect_failed(const error& e, unsigned attempt,
                                        std::chrono::milliseconds retry_in) {
  const auto level = worth_a_warning(attempt) ? log_level::warn : log_level::debug;
  log_.log(level, "redis_connect_failed",
           {{"address", address_},
            {"attempt", attempt},
            {"error", e.what()},
            {"retry_in_ms", retry_in.count()}});
}

void connection_impl::on_disconnected() {
  ready_ = false;
  session_active_ = false;
  boost::system::error_code ignored;
  socket_.close(ignored);
  reader_.reset();
  if (closed_) return;  // close() already completed every request

  std::size_t unanswered = 0;
  for (const auto& entry : in_flight_) unanswered += entry.request != nullptr ? 1 : 0;

  // A protocol error keeps its code: the caller learns the server sent
  // something invalid, not merely that the connection dropped.
  const errc code = session_error_ == errc::protocol_error ? errc::protocol_error
                                                           : errc::connection_lost;
  fail_all_in_flight(error(code, fmt::format("connection to {} lost before the reply arrived: {}",
                                             address_, session_error_.what())));

  const auto level = code == errc::protocol_error ? log_level::error : log_level::warn;
  log_.log(level, "redis_disconnected",
           {{"address", address_},
            {"reason", session_error_.what()},
            {"unanswered_requests", unanswered},
            {"queued_requests", queued_.size()}});
}

void connection_impl::stop_for_good(const error& e) {
  stopped_ = true;
  has_connect_error_ = true;
  last_connect_error_ = e;
  fail_all_queued(*refuse_request());
  wake_ready_waiters();
  log_.error("redis_stopped", {{"address", address_}, {"error", e.what()}});
}

}  // namespace tracewatch::redis::detail
