// redis::connection: the public members, and the life of a request from
// enqueue() to complete(): time limits, cancellation and close().

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "connection_impl.hpp"

namespace tracewatch::redis {
namespace detail {

namespace asio = boost::asio;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A deadline `timeout` from now that saturates instead of overflowing.
clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  const auto now = clock::now();
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - now)) {
    return clock::time_point::max();
  }
  return now + timeout;
}

}  // namespace

// Installed in the awaiting coroutine's cancellation slot (when it has one,
// such as under asio's awaitable operators). A queued request is removed for
// any cancellation type, because nothing was sent. A written request is only
// abandoned on terminal cancellation: its commands may still run, and its
// replies are dropped through a placeholder.
struct cancel_request {
  connection_impl* impl;
  pending_request* request;

  void operator()(asio::cancellation_type type) const {
    if (request->state == pending_request::stage::queued ||
        (request->state == pending_request::stage::written &&
         (type & asio::cancellation_type::terminal) != asio::cancellation_type::none)) {
      impl->unlink(*request);
      // The slot runs this handler: leave clearing it to the resumed
      // coroutine instead of destroying the handler while it runs.
      request->slot = asio::cancellation_slot();
      impl->fail(*request, error(std::make_error_code(std::errc::operation_canceled),
                                 "request to " + impl->address_ + " cancelled"));
    }
  }
};

connection_impl::connection_impl(asio::any_io_executor executor, config cfg, logger log)
    : executor_(executor),
      cfg_(std::move(cfg)),
      log_(log.with_component("redis")),
      address_(cfg_.display_address()),
      socket_(executor),
      resolver_(executor),
      reader_(cfg_.limits),
      read_buffer_(std::max<std::size_t>(cfg_.limits.read_chunk_bytes, 512)),
      writer_wakeup_(executor),
      deadline_timer_(executor),
      health_timer_(executor),
      backoff_timer_(executor),
      random_(std::random_device{}()) {}

connection_impl::~connection_impl() = default;

std::optional<error> connection_impl::refuse_request() const {
  if (closed_) return error(errc::closed, "connection to " + address_ + " is closed");
  if (cfg_.tls) {
    return error(errc::tls_unsupported,
                 fmt::format("cannot connect to {}: this build has no TLS transport; "
                             "use redis:// or unix://",
                             address_));
  }
  if (stopped_) {
    return error(errc::not_connected,
                 fmt::format("not connected to {} and reconnecting is disabled: {}", address_,
                             last_connect_error_.what()));
  }
  return std::nullopt;
}

asio::awaitable<void> connection_impl::async_submit(pending_request& p) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [this, &p](auto handler) { enqueue(p, std::move(handler)); }, asio::use_awaitable);
}

void connection_impl::enqueue(pending_request& p, asio::any_completion_handler<void()> handler) {
  // NOTE: Boost 1.81's any_completion_handler move assignment recurses
  // without end (it copies `other` as an lvalue into a new wrapper), so the
  // handler is swapped in instead.
  handler.swap(p.handler);
  p.state = pending_request::stage::queued;
  p.replies.reserve(p.commands);
  p.slot = asio::get_associated_cancellation_slot(p.handler);
  if (p.slot.is_connected()) p.slot.template emplace<cancel_request>(this, &p);

  queued_.push_back(&p);
  start_deadline_loop();
  arm_deadline(p.deadline);
  if (writer_idle_ && session_active_) writer_wakeup_.cancel();
}

void connection_impl::complete(pending_request& p, bool direct) {
  p.state = pending_request::stage::done;
  if (p.slot.is_connected()) p.slot.clear();
  if (!p.internal) {
    ++stats_.requests;
    if (p.failed) ++stats_.errors;
  }
  // `p` may be gone once the handler runs.
  auto handler = std::move(p.handler);
  if (direct) {
    asio::dispatch(std::move(handler));
  } else {
    asio::post(executor_, std::move(handler));
  }
}

void connection_impl::fail(pending_request& p, error e) {
  p.failed = true;
  p.failure = std::move(e);
  complete(p, false);
}

void connection_impl::unlink(pending_request& p) {
  if (p.state == pending_request::stage::queued) {
    auto it = std::find(queued_.begin(), queued_.end(), &p);
    if (it != queued_.end()) *it = nullptr;
  } else if (p.state == pending_request::stage::written) {
    auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                           [&p](const in_flight_entry& e) { return e.request == &p; });
    if (it != in_flight_.end()) it->request = nullptr;
  }
}

void connection_impl::fail_all_queued(const error& e) {
  auto queued = std::move(queued_);
  queued_.clear();
  for (pending_request* p : queued) {
    if (p != nullptr) fail(*p, e);
  }
}

void connection_impl::fail_all_in_flight(const error& e) {
  auto in_flight = std::move(in_flight_);
  in_flight_.clear();
  for (const in_flight_entry& entry : in_flight) {
    if (entry.request != nullptr) fail(*entry.request, e);
  }
}

// --- Time limits -------------------------------------------------------------
//
// One timer serves every request: it fires at the earliest deadline known
// when it was armed, and each firing scans both queues. Most requests finish
// long before their deadline, so a scan usually finds nothing and re-arms
// for the new earliest deadline: about one scan per request_timeout.

void connection_impl::start_deadline_loop() {
  if (deadline_loop_started_ || closed_) return;
  deadline_loop_started_ = true;
  asio::co_spawn(executor_, deadline_loop(shared_from_this()), asio::detached);
}

void connection_impl::arm_deadline(clock::time_point deadline) {
  if (deadline >= next_deadline_) return;
  next_deadline_ = deadline;
  deadline_timer_.expires_at(deadline);  // wakes the loop, which waits again
}

asio::awaitable<void> connection_impl::deadline_loop(
    [[maybe_unused]] std::shared_ptr<connection_impl> self) {
  while (!closed_) {
    deadline_timer_.expires_at(next_deadline_);
    auto [ec] = co_await deadline_timer_.async_wait(use_nothrow);
    if (closed_) co_return;
    if (ec == asio::error::operation_aborted) continue;  // re-armed earlier
    expire_requests(clock::now());
  }
}

void connection_impl::expire_requests(clock::time_point now) {
  clock::time_point next = clock::time_point::max();

  // A request still queued was never sent: it fails with not_connected when
  // no connection came up in time, else with timeout (the writer lagged).
  for (pending_request*& p : queued_) {
    if (p == nullptr) continue;
    if (p->deadline > now) {
      next = std::min(next, p->deadline);
      continue;
    }
    pending_request& expired = *p;
    p = nullptr;
    if (ready_) {
      fail(expired, error(errc::timeout,
                          fmt::format("request to {} not sent within {} ms", address_,
                                      expired.timeout.count())));
    } else {
      std::string cause = has_connect_error_ ? last_connect_error_.what() : "still connecting";
      fail(expired, error(errc::not_connected,
                          fmt::format("not connected to {} within {} ms: {}", address_,
                                      expired.timeout.count(), cause)));
    }
  }

  // A written request without its reply resets the connection (see the
  // placeholders note in connection_impl.hpp).
  std::string reset_reason;
  for (in_flight_entry& entry : in_flight_) {
    if (entry.request == nullptr) continue;
    if (entry.request->deadline > now) {
      next = std::min(next, entry.request->deadline);
      continue;
    }
    pending_request& expired = *entry.request;
    entry.request = nullptr;
    reset_reason = fmt::format("{} got no reply within {} ms",
                               expired.internal ? "the health check PING" : "a request",
                               expired.timeout.count());
    fail(expired, error(errc::timeout, fmt::format("no reply from {} within {} ms", address_,
                                                   expired.timeout.count())));
  }

  next_deadline_ = next;
  if (!reset_reason.empty()) end_session(error(errc::timeout, std::move(reset_reason)));
}

// --- Lifecycle ---------------------------------------------------------------

void connection_impl::start() {
  if (started_ || closed_) return;
  started_ = true;
  start_deadline_loop();
  if (cfg_.tls) {
    stop_for_good(*refuse_request());
    return;
  }
  asio::co_spawn(executor_, run(shared_from_this()), asio::detached);
}

void connection_impl::close() {
  if (closed_) return;
  closed_ = true;
  const bool was_ready = ready_;
  ready_ = false;
  session_active_ = false;

  const error closed(errc::closed, "connection to " + address_ + " was closed");
  fail_all_queued(closed);
  fail_all_in_flight(closed);

  boost::system::error_code ignored;
  socket_.close(ignored);
  resolver_.cancel();
  writer_wakeup_.cancel();
  deadline_timer_.cancel();
  health_timer_.cancel();
  backoff_timer_.cancel();
  wake_ready_waiters();
  if (started_) log_.info("redis_closed", {{"address", address_}, {"was_ready", was_ready}});
}

void connection_impl::wake_ready_waiters() {
  for (auto* timer : ready_waiters_) timer->cancel();
}

asio::awaitable<result<void>> connection_impl::async_wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = deadline_after(timeout);
  for (;;) {
    if (ready_) co_return result<void>{};
    if (auto refused = refuse_request()) co_return *refused;
    // A handshake the server rejected (wrong password, bad database) will
    // not pass by waiting; transient failures are waited out.
    if (has_connect_error_ && !is_retryable(last_connect_error_.code)) co_return last_connect_error_;
    if (clock::now() >= deadline) {
      if (has_connect_error_) co_return last_connect_error_;
      co_return error(errc::timeout, fmt::format("connection to {} not ready within {} ms",
                                                 address_, timeout.count()));
    }

    asio::steady_timer timer(executor_, deadline);
    ready_waiters_.push_back(&timer);
    co_await timer.async_wait(use_nothrow);
    std::erase(ready_waiters_, &timer);
  }
}

}  // namespace detail

// --- connection ----------------------------------------------------------------

namespace asio = boost::asio;

struct connection::impl : detail::connection_impl {
  using detail::connection_impl::connection_impl;
};

connection::connection(asio::any_io_executor executor, config cfg, logger log)
    : impl_(std::make_shared<impl>(executor, std::move(cfg), std::move(log))) {}

connection::~connection() {
  if (impl_) impl_->close();
}

void connection::start() { impl_->start(); }

void connection::close() { impl_->close(); }

namespace {

// The public coroutines take the state by shared_ptr, copied when the
// coroutine is created: a coroutine created while the connection lives but
// started or resumed after its destruction finds the state closed, instead
// of freed.

asio::awaitable<result<void>> wait_ready(std::shared_ptr<detail::connection_impl> state,
                                         std::chrono::milliseconds timeout) {
  co_return co_await state->async_wait_ready(timeout);
}

asio::awaitable<result<std::vector<reply>>> exec(std::shared_ptr<detail::connection_impl> state,
                                                 const request& req,
                                                 std::chrono::milliseconds timeout) {
  if (auto refused = state->refuse_request()) co_return *refused;
  if (req.empty()) co_return std::vector<reply>{};

  detail::pending_request p;
  p.payload = req.payload();
  p.commands = req.size();
  p.timeout = timeout.count() > 0 ? timeout : state->cfg_.request_timeout;
  p.deadline = p.timeout.count() > 0 ? detail::deadline_after(p.timeout)
                                     : detail::clock::time_point::max();
  co_await state->async_submit(p);

  if (p.failed) co_return std::move(p.failure);
  co_return std::move(p.replies);
}

}  // namespace

asio::awaitable<result<void>> connection::async_wait_ready(std::chrono::milliseconds timeout) {
  return wait_ready(impl_, timeout);
}

asio::awaitable<result<std::vector<reply>>> connection::async_exec(const request& req,
                                                                   std::string_view) {
  return exec(impl_, req, std::chrono::milliseconds(0));
}

asio::awaitable<result<std::vector<reply>>> connection::async_exec_for(
    const request& req, std::chrono::milliseconds timeout) {
  return exec(impl_, req, timeout);
}

asio::awaitable<result<reply>> connection::async_eval(const script& s,
                                                      std::span<const std::string_view> keys,
                                                      std::span<const std::string_view> args) {
  std::vector<std::string_view> operands;
  operands.reserve(keys.size() + args.size());
  operands.insert(operands.end(), keys.begin(), keys.end());
  operands.insert(operands.end(), args.begin(), args.end());

  request evalsha;
  evalsha.push_range("EVALSHA", operands, s.sha1(), keys.size());
  auto replies = co_await async_exec(evalsha);
  if (!replies) co_return replies.error();

  // The script cache is empty after a restart, a failover or SCRIPT FLUSH:
  // send the source once, which also caches it again.
  if (replies->front().is_error() && replies->front().str.starts_with("NOSCRIPT")) {
    request eval;
    eval.push_range("EVAL", operands, s.source(), keys.size());
    replies = co_await async_exec(eval);
    if (!replies) co_return replies.error();
  }

  reply& outcome = replies->front();
  if (outcome.is_error()) co_return error(errc::server_error, std::move(outcome.str));
  co_return std::move(outcome);
}

bool connection::is_ready() const noexcept { return impl_->ready_; }

const config& connection::get_config() const noexcept { return impl_->cfg_; }

connection_stats connection::stats() const noexcept { return impl_->stats_; }

asio::any_io_executor connection::get_executor() const noexcept { return impl_->executor_; }

}  // namespace tracewatch::redis
