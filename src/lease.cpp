// The lease against Redis: carries out what lease_machine decides.

#include "tracewatch/lease.hpp"

#include <array>
#include <exception>
#include <memory>
#include <random>
#include <stdexcept>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

namespace tracewatch {
namespace {

using std::chrono::milliseconds;

// KEYS[1]: the lease key.  ARGV[1]: token, ARGV[2]: lease in milliseconds.
// Returns 1 when the key contained the token and got a new TTL, 0 otherwise.
const redis::script& renew_script() {
  static const redis::script script(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
      "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
      "end\n"
      "return 0\n");
  return script;
}

// KEYS[1]: the lease key.  ARGV[1]: token.
// Returns 1 when the key contained the token and was deleted, 0 otherwise.
const redis::script& release_script() {
  static const redis::script script(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
      "  return redis.call('DEL', KEYS[1])\n"
      "end\n"
      "return 0\n");
  return script;
}


// A request running in a coroutine of its own, and its reply once it is in.
template <class T>
struct in_flight {
  explicit in_flight(const asio::any_io_executor& executor)
      : wake(executor, std::chrono::steady_clock::time_point::max()) {}

  bool done() const noexcept { return value.has_value() || failure != nullptr; }

  asio::steady_timer wake;  // cancelled when the reply is in
  std::optional<T> value;
  std::exception_ptr failure;
};

// Completes an in_flight when its coroutine ends, also by an exception.
template <class T>
auto complete_on_exit(std::shared_ptr<in_flight<T>> state) {
  return [state](std::exception_ptr e) {
    if (e) state->failure = e;
    state->wake.cancel();
  };
}

using exec_result = result<std::vector<redis::reply>>;

// These own copies of everything the request reads, because they may
// outlive the leader_lease that started them.
asio::awaitable<void> exec_request(redis::client& client, redis::request req,
                                   std::string routing_key,
                                   std::shared_ptr<in_flight<exec_result>> state) {
  state->value.emplace(co_await client.async_exec(req, routing_key));
}

asio::awaitable<void> eval_script(redis::client& client, const redis::script& script,
                                  std::string key, std::vector<std::string> args,
                                  std::shared_ptr<in_flight<result<redis::reply>>> state) {
  const std::array<std::string_view, 1> keys{key};
  std::vector<std::string_view> arg_views(args.begin(), args.end());
  state->value.emplace(co_await client.async_eval(script, keys, arg_views));
}

std::uint64_t random_seed() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

std::string describe(const redis::reply& reply) {
  if (reply.is_error()) return reply.str;
  return "unexpected reply from Redis";
}

}  // namespace

leader_lease::leader_lease(redis::client& client, lease_options options, logger log,
                           lease_callbacks callbacks)
    : client_(client),
      options_(std::move(options)),
      log_(log.with_component("lease")),
      callbacks_(std::move(callbacks)),
      key_(lease_key(options_.prefix)),
      token_(make_lease_token()),
      machine_([this] {
        if (auto valid = validate(options_); !valid) {
          throw std::invalid_argument(valid.error().what());
        }
        return make_lease_timing(options_);
      }(), clock::now(), random_seed()),
      error_log_limiter_({.max_lines = 1, .interval = kErrorLogInterval}),
      leader_deadline_(clock::time_point::min().time_since_epoch().count()) {}

leader_lease::~leader_lease() = default;

bool leader_lease::is_leader() const noexcept {
  return clock::now().time_since_epoch().count() <
         leader_deadline_.load(std::memory_order_acquire);
}

lease_stats leader_lease::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_snapshot_;
}

void leader_lease::stop() {
  if (!running_) return;
  stop_requested_ = true;
  if (waiting_timer_ != nullptr) waiting_timer_->cancel();
}

asio::awaitable<bool> leader_lease::async_stop_requested() const {
  auto state = co_await asio::this_coro::cancellation_state;
  co_return stop_requested_ || state.cancelled() != asio::cancellation_type::none;
}

// ---------------------------------------------------------------------------
// The run loop

asio::awaitable<void> leader_lease::async_run() {
  // Cancellation ends the loop through the checks below instead of an
  // exception from the next co_await; the caller's setting is restored.
  const bool throw_if_cancelled = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  running_ = true;
  stop_requested_ = false;
  // Also when a callback or the token generator throws.
  struct reset_on_exit {
    leader_lease& lease;
    ~reset_on_exit() {
      lease.running_ = false;
      lease.stop_requested_ = false;
      lease.waiting_timer_ = nullptr;
    }
  } reset{*this};

  while (!co_await async_stop_requested()) {
    // A process that was paused past its deadline steps down here, before
    // it sends anything.
    const time_point now = clock::now();
    apply(machine_.on_tick(now));

    const lease_step step = machine_.next_step();
    if (step.at > now) {
      if (!co_await async_sleep_until(step.at)) break;
      continue;
    }

    switch (step.action) {
      case lease_action::campaign: co_await async_campaign(); break;
      case lease_action::renew: co_await async_renew(); break;
      case lease_action::release: co_await async_release_stale(); break;
    }
  }

  co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
}

asio::awaitable<bool> leader_lease::async_sleep_until(time_point at) {
  asio::steady_timer timer(co_await asio::this_coro::executor, at);
  waiting_timer_ = &timer;
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  waiting_timer_ = nullptr;
  co_return !co_await async_stop_requested();
}

asio::awaitable<bool> leader_lease::async_wait_for_reply(asio::steady_timer& wake,
                                                         const std::function<bool()>& done) {
  while (!done()) {
    const time_point deadline = machine_.deadline();
    wake.expires_at(deadline == time_point::min() ? time_point::max() : deadline);
    waiting_timer_ = &wake;
    boost::system::error_code ec;
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    waiting_timer_ = nullptr;

    if (done()) break;
    if (co_await async_stop_requested()) co_return false;
    // The deadline passed with the renewal still in flight.
    apply(machine_.on_tick(clock::now()));
  }
  co_return true;
}

asio::awaitable<void> leader_lease::async_campaign() {
  // Every campaign uses a new token. The previous one is not in the key
  // (rejected, released or never stored), or its release failed and it
  // expires within the lease.
  token_ = make_lease_token();

  redis::request req;
  req.push("SET", key_, token_, "NX", "PX", machine_.timing().lease.count());
  req.push("PTTL", key_);

  // Run the request on its own, so that stopping the run never cancels a
  // request on the shared connection.
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<in_flight<exec_result>>(executor);
  const time_point sent_at = clock::now();
  asio::co_spawn(executor, exec_request(client_, std::move(req), key_, state),
                 complete_on_exit(state));
  if (!co_await async_wait_for_reply(state->wake, [&] { return state->done(); })) co_return;
  if (state->failure) std::rethrow_exception(state->failure);

  const time_point now = clock::now();
  const auto& replies = *state->value;

  // The request failed as a whole.
  if (!replies) {
    note_request_error("campaign", replies.error());
    const auto outcome = request_may_have_run(replies.error()) ? campaign_outcome::unknown
                                                               : campaign_outcome::failed;
    apply(machine_.on_campaign_result(outcome, sent_at, now));
    co_return;
  }
  if (replies->size() != 2) {
    note_request_error("campaign",
                       error(errc::protocol_error, "wrong number of replies to SET and PTTL"));
    apply(machine_.on_campaign_result(campaign_outcome::unknown, sent_at, now));
    co_return;
  }

  // SET replied. PTTL returns the holder's remaining TTL, which sets a
  // follower's next campaign.
  const redis::reply& set_reply = (*replies)[0];
  const redis::reply& ttl_reply = (*replies)[1];
  const campaign_outcome outcome = classify_campaign_reply(set_reply);
  if (outcome == campaign_outcome::failed) {
    note_request_error("campaign", error(errc::server_error, describe(set_reply)));
  } else {
    note_request_ok();
  }
  std::optional<milliseconds> holder_ttl;
  if (ttl_reply.is_integer()) holder_ttl = milliseconds(ttl_reply.integer);
  if (outcome == campaign_outcome::held) {
    log_.debug("lease_held_elsewhere", {{"key", key_}, {"ttl_ms", ttl_reply.integer}});
  }
  apply(machine_.on_campaign_result(outcome, sent_at, now, holder_ttl));
}

asio::awaitable<void> leader_lease::async_renew() {
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<in_flight<result<redis::reply>>>(executor);
  const time_point sent_at = clock::now();
  std::vector<std::string> args{token_, std::to_string(machine_.timing().lease.count())};
  asio::co_spawn(executor, eval_script(client_, renew_script(), key_, std::move(args), state),
                 complete_on_exit(state));
  if (!co_await async_wait_for_reply(state->wake, [&] { return state->done(); })) co_return;
  if (state->failure) std::rethrow_exception(state->failure);

  const time_point now = clock::now();
  const auto& reply = *state->value;
  renew_outcome outcome;
  std::string error_text;
  if (!reply) {
    outcome = request_may_have_run(reply.error()) ? renew_outcome::unknown : renew_outcome::failed;
    error_text = reply.error().what();
  } else {
    outcome = classify_renew_reply(*reply);
    if (outcome == renew_outcome::failed) error_text = describe(*reply);
  }

  if (outcome == renew_outcome::renewed || outcome == renew_outcome::rejected) note_request_ok();

  const bool was_leader = machine_.role() == lease_role::leader;
  const lease_change change = machine_.on_renew_result(outcome, sent_at, now);
  if (!was_leader && !error_text.empty()) {
    // The loss was logged when the deadline passed; log the error itself.
    log_.warn("lease_renew_failed", {{"key", key_},
                                     {"token_prefix", token_prefix(token_)},
                                     {"error", error_text}});
  }
  apply(change, error_text);
}

asio::awaitable<void> leader_lease::async_release_stale() {
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<in_flight<result<redis::reply>>>(executor);
  asio::co_spawn(executor,
                 eval_script(client_, release_script(), key_, {token_}, state),
                 complete_on_exit(state));
  if (!co_await async_wait_for_reply(state->wake, [&] { return state->done(); })) co_return;
  if (state->failure) std::rethrow_exception(state->failure);

  const auto& reply = *state->value;
  if (!reply) {
    // At worst the key still contains our old token and expires within the lease.
    note_request_error("release", reply.error());
  } else {
    note_request_ok();
    if (reply->is_integer() && reply->integer == 1) {
      log_.info("lease_stale_token_deleted",
                {{"key", key_}, {"token_prefix", token_prefix(token_)}});
    }
  }
  machine_.on_release_done();
  publish();
}

// ---------------------------------------------------------------------------
// Release on shutdown

asio::awaitable<result<bool>> leader_lease::async_release() {
  // Step down before sending anything: once the request leaves, another
  // instance may win the key at any moment.
  const bool was_leader = machine_.role() == lease_role::leader;
  apply(machine_.resign(clock::now()));

  const std::array<std::string_view, 1> keys{key_};
  const std::array<std::string_view, 1> args{token_};
  result<redis::reply> reply = co_await client_.async_eval(release_script(), keys, args);
  if (!reply) {
    log_.warn("lease_release_failed",
              {{"key", key_},
               {"token_prefix", token_prefix(token_)},
               {"error", reply.error().what()},
               {"remedy", fmt::format("none needed: the key expires within {} ms",
                                      machine_.timing().lease.count())}});
    co_return reply.error();
  }
  if (!reply->is_integer()) {
    co_return error(errc::protocol_error,
                    fmt::format("lease release script returned {}; expected an integer",
                                describe(*reply)));
  }

  const bool deleted = reply->integer == 1;
  if (was_leader || deleted) {
    log_.info("lease_released", {{"key", key_},
                                 {"token_prefix", token_prefix(token_)},
                                 {"deleted", deleted}});
  }
  co_return deleted;
}

// ---------------------------------------------------------------------------
// Publishing, logging and callbacks

void leader_lease::publish() {
  const time_point deadline = machine_.deadline();
  leader_deadline_.store(deadline.time_since_epoch().count(), std::memory_order_release);
  std::lock_guard lock(stats_mutex_);
  stats_snapshot_ = machine_.stats();
}

void leader_lease::apply(const lease_change& change, std::string_view error_text) {
  // Publish first, so that the callbacks see is_leader() agree with them.
  publish();

  if (change.elected()) {
    log_.info("lease_acquired", {{"key", key_},
                                 {"token_prefix", token_prefix(token_)},
                                 {"lease_ms", machine_.timing().lease.count()}});
    if (callbacks_.on_elected) callbacks_.on_elected();
    return;
  }
  if (!change.lost()) return;

  // async_release() logs a release once Redis replied.
  if (change.reason != lease_loss_reason::released) {
    std::string_view remedy;
    switch (change.reason) {
      case lease_loss_reason::renew_rejected:
        remedy = "none needed if another watchdog took over; campaigning again";
        break;
      case lease_loss_reason::renew_failed:
        remedy = "check that Redis is reachable; campaigning again";
        break;
      case lease_loss_reason::deadline_passed:
        remedy = "no renewal reply came in time: check that Redis is reachable; if it is, "
                 "the process was paused or Redis answered too slowly, so consider a longer "
                 "--lease-s; campaigning again";
        break;
      case lease_loss_reason::released:
        break;
    }
    if (error_text.empty()) {
      log_.warn("lease_lost", {{"key", key_},
                               {"token_prefix", token_prefix(token_)},
                               {"reason", to_string(change.reason)},
                               {"remedy", remedy}});
    } else {
      log_.warn("lease_lost", {{"key", key_},
                               {"token_prefix", token_prefix(token_)},
                               {"reason", to_string(change.reason)},
                               {"error", error_text},
                               {"remedy", remedy}});
    }
  }
  if (callbacks_.on_lost) callbacks_.on_lost(change.reason);
}

void leader_lease::note_request_error(std::string_view request, const error& e) {
  ++errors_in_streak_;
  const auto decision = error_log_limiter_.admit(request, clock::now());
  if (!decision.allowed) return;
  log_.warn("lease_request_failed",
            {{"request", request},
             {"key", key_},
             {"error", e.what()},
             {"suppressed", decision.suppressed},
             {"remedy", fmt::format("check that Redis is reachable; retrying every {} ms",
                                    machine_.timing().retry_interval.count())}});
}

void leader_lease::note_request_ok() {
  if (errors_in_streak_ == 0) return;
  log_.info("lease_requests_recovered", {{"key", key_}, {"failures", errors_in_streak_}});
  errors_in_streak_ = 0;
}

}  // namespace tracewatch
