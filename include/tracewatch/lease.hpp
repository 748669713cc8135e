// The watchdog's leader lease: one Redis key that at most one watchdog holds
// at a time, so that one sweeper is active across a fleet.
//
// Protocol, on the key `<prefix>:watchdog:leader`:
//   - campaign: `SET key <token> NX PX <lease>`, with a fresh random token
//     for every term;
//   - renew:    every `renew_fraction` of the lease, a script that runs
//     PEXPIRE only while the key still holds our token;
//   - release:  a script that deletes the key only while it holds our token.
//
// The leader also keeps a local deadline on the steady clock: the time the
// last successful campaign or renewal was *sent*, plus the lease. The key
// cannot expire in Redis before that moment (Redis set its TTL after the
// request left this process), so when clocks run at the same rate no other
// instance can hold the key while is_leader() returns true. In a process
// that was paused (SIGSTOP, a long stall) past its deadline, is_leader()
// returns false as soon as the process runs again, before any reply.
//
// A leader steps down when a renewal is rejected (the key expired or holds
// another token), when a renewal fails (a Redis error: the lease can no
// longer be confirmed), or when its deadline passes. It then campaigns again
// like any follower. Sweeps stay correct without the lease, because every
// state change is one atomic script; the lease only saves duplicate work.
//
// The decisions live in `lease_machine`, a pure state machine with no I/O
// and no clock of its own. `leader_lease` carries them out against Redis.
//
// Example:
//   redis::connection conn(io.get_executor(), cfg);
//   conn.start();
//   leader_lease lease(conn, lease_options{.prefix = "sg"}, log,
//                      {.on_elected = [] { /* start sweeping */ },
//                       .on_lost = [](lease_loss_reason) { /* stop sweeping */ }});
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     co_await lease.async_run();      // until lease.stop() or cancellation
//     co_await lease.async_release();  // hand the lease over at once
//   }, asio::detached);

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/log_rate_limiter.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/redis/reply.hpp"

namespace tracewatch {

namespace asio = boost::asio;

// ---------------------------------------------------------------------------
// Options

struct lease_options {
  // Key prefix; the lease key is `<prefix>:watchdog:leader`.
  std::string prefix = "sg";

  // How long the key lives without a renewal (`--lease-s`). The default of
  // 30 s is six times the default Redis request timeout (5 s), so a renewal
  // that times out still fails before the deadline. It is also a tenth of
  // the default sweep interval (300 s), so a failover delays sweeping by at
  // most a tenth of a period. A crashed leader is replaced about one lease
  // after its last renewal.
  std::chrono::milliseconds lease{std::chrono::seconds(30)};

  // Renew after this fraction of the lease: 1/3 leaves time for two more
  // attempts of the same length before the deadline.
  double renew_fraction = 1.0 / 3.0;

  // How often a follower campaigns. Zero means a third of the lease. When
  // a campaign's reply shows that the holder's key expires sooner, the
  // follower campaigns again at that time instead.
  std::chrono::milliseconds retry_interval{0};
};

// Checks the options: a non-empty prefix, a lease of 10 ms to 1 day, a
// renew fraction strictly between 0 and 1, and a retry interval that is not
// negative and at most the lease. Returns errc::invalid_argument naming the
// option, its value and the accepted range.
result<void> validate(const lease_options& options);

// The lease key: `<prefix>:watchdog:leader`.
std::string lease_key(std::string_view prefix);

// Returns a new lease token: 128 bits from OpenSSL's CSPRNG (RAND_bytes) as
// 32 lowercase hex digits. Throws std::runtime_error if the CSPRNG fails,
// which means the process has no usable entropy source.
std::string make_lease_token();

// The first 8 hex digits of a token: enough to tell terms apart in logs.
std::string_view token_prefix(std::string_view token) noexcept;

// ---------------------------------------------------------------------------
// The pure state machine

// The durations the state machine works with, derived from lease_options.
struct lease_timing {
  std::chrono::milliseconds lease{};
  std::chrono::milliseconds renew_interval{};  // lease * renew_fraction
  std::chrono::milliseconds retry_interval{};  // follower cadence
  std::chrono::milliseconds retry_jitter{};    // extra delay drawn in [0, retry_jitter]
};

// Derives the timing from valid options (REQUIRES: validate(options)): the
// renew interval is rounded down to whole milliseconds and is at least 1 ms,
// and the jitter is a quarter of the retry interval.
lease_timing make_lease_timing(const lease_options& options);

enum class lease_role : std::uint8_t { follower, leader };

// The request the machine wants sent next.
enum class lease_action : std::uint8_t {
  campaign,  // SET NX PX with the current token
  renew,     // compare-and-PEXPIRE with the current token
  release,   // compare-and-DEL of a token this instance may still hold
};

// The reason a leader stepped down.
enum class lease_loss_reason : std::uint8_t {
  renew_rejected,   // the key expired or contains another token
  renew_failed,     // the renewal returned a Redis or connection error
  deadline_passed,  // no renewal was confirmed before the local deadline
  released,         // the owner released the lease (shutdown)
};

// The outcome of a campaign, from the reply to SET NX.
enum class campaign_outcome : std::uint8_t {
  acquired,  // SET returned OK: the key is ours
  held,      // SET returned nil: the key contains another token
  failed,    // an error before SET ran: an error reply, or the request was never sent
  unknown,   // the connection broke or timed out after sending: SET may have run
};

// The outcome of a renewal, from the reply to the compare-and-PEXPIRE script.
enum class renew_outcome : std::uint8_t {
  renewed,   // the key held our token and has a fresh TTL
  rejected,  // the key is gone or contains another token
  failed,    // an error before the script ran: an error reply, or never sent
  unknown,   // the connection broke or timed out after sending: PEXPIRE may have run
};

std::string_view to_string(lease_role role) noexcept;
std::string_view to_string(lease_action action) noexcept;
std::string_view to_string(lease_loss_reason reason) noexcept;

// The next request and the earliest time to send it.
struct lease_step {
  lease_action action = lease_action::campaign;
  std::chrono::steady_clock::time_point at{};
};

// The effect of one input: nothing, an election, or a loss with its reason.
struct lease_change {
  enum class kind : std::uint8_t { none, elected, lost };
  kind type = kind::none;
  lease_loss_reason reason = lease_loss_reason::renew_rejected;  // for kind::lost

  bool elected() const noexcept { return type == kind::elected; }
  bool lost() const noexcept { return type == kind::lost; }
};

// Counters of one lease, for metrics and tests. They only grow.
struct lease_stats {
  std::uint64_t campaigns = 0;          // campaign replies received (any outcome)
  std::uint64_t campaign_failures = 0;  // campaigns that returned an error
  std::uint64_t acquired = 0;           // terms won
  std::uint64_t renewals = 0;           // renewals confirmed
  std::uint64_t renew_failures = 0;     // renewals rejected or failed
  std::uint64_t lost = 0;               // step-downs for any reason but a release
  std::uint64_t deadline_expiries = 0;  // step-downs because the deadline passed
  std::uint64_t released = 0;           // terms ended by a release
};

// The lease's decisions, without I/O. Time is an input: every call takes
// `now`, and a reply also takes the time its request was sent, so a test
// drives the machine with a fake clock.
//
// The machine expects one request in flight at a time: the caller asks
// next_step(), waits until its time, sends it, and passes the reply to the
// matching on_*_result(). In between it calls on_tick() whenever it wakes,
// at the latest at deadline(), so that a leader whose renewal is late steps
// down on time.
//
// Not thread-safe: one owner calls it.
class lease_machine {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  // A follower whose first campaign is due at `now`. `jitter_seed` seeds
  // the generator of the follower's retry jitter.
  lease_machine(const lease_timing& timing, time_point now, std::uint64_t jitter_seed);

  lease_role role() const noexcept { return role_; }

  // True while leader and `now` is before the local deadline. A leader
  // whose deadline passed is no leader here even before on_tick() runs.
  bool is_leader(time_point now) const noexcept;

  // The local deadline of the current term; time_point::min() when follower.
  time_point deadline() const noexcept;

  // The next request and when it is due. A leader renews. A follower
  // releases first when the key may still contain a token of its own, and
  // campaigns otherwise. A time in the past means "now".
  lease_step next_step() const noexcept;

  // The reply to a campaign sent at `sent_at`. `holder_ttl` is the key's
  // remaining TTL, read by PTTL in the same request. When it is shorter
  // than the retry interval, the next campaign is due when it ends. A
  // negative TTL (no expiry, or no key) is ignored.
  // Returns kind::elected when this instance became leader. An acquisition
  // whose deadline already passed when the reply came is not an election:
  // the key is released and the machine campaigns again.
  lease_change on_campaign_result(campaign_outcome outcome, time_point sent_at, time_point now,
                                  std::optional<std::chrono::milliseconds> holder_ttl = {});

  // The reply to a renewal sent at `sent_at`. Returns kind::lost with the
  // reason when the leader steps down. A reply that arrives after the
  // machine already stepped down only schedules a release when the key may
  // contain our token again.
  lease_change on_renew_result(renew_outcome outcome, time_point sent_at, time_point now);

  // The release requested by next_step() completed (successfully or not; a
  // failed release leaves the key to expire).
  void on_release_done() noexcept;

  // Steps down when the deadline has passed. Returns kind::lost with
  // lease_loss_reason::deadline_passed when it did.
  lease_change on_tick(time_point now);

  // Steps down because the owner releases the lease; the caller deletes the
  // key itself. Returns kind::lost with lease_loss_reason::released when
  // this instance was leader (even past its deadline), kind::none otherwise.
  // The next campaign is due one retry interval later.
  lease_change resign(time_point now);

  const lease_stats& stats() const noexcept { return stats_; }
  const lease_timing& timing() const noexcept { return timing_; }

 private:
  lease_change step_down(lease_loss_reason reason, time_point now, bool release,
                         time_point next_campaign);
  time_point retry_at(time_point now, std::chrono::milliseconds base);

  lease_timing timing_;
  std::mt19937_64 jitter_;
  lease_role role_ = lease_role::follower;
  time_point deadline_{};
  time_point next_renew_{};
  time_point next_campaign_{};
  bool release_pending_ = false;
  time_point release_at_{};
  lease_stats stats_;
};

// Tells whether a failed request may still have run in Redis. False for
// errors raised before anything ran (errc::not_connected, errc::server_error,
// errc::cluster_down, errc::cross_slot); true for the others, such as
// errc::connection_lost, errc::timeout and errc::closed.
bool request_may_have_run(const error& e) noexcept;

// Reads the reply to `SET NX PX`: OK is acquired, nil is held, and an error
// reply is failed. Exposed for tests.
campaign_outcome classify_campaign_reply(const redis::reply& set_reply) noexcept;

// Reads the reply to the compare-and-PEXPIRE script: integer 1 is renewed,
// 0 is rejected, anything else failed. Exposed for tests.
renew_outcome classify_renew_reply(const redis::reply& script_reply) noexcept;

// ---------------------------------------------------------------------------
// The lease against Redis

// Called on the executor that runs async_run(), from inside it. They must
// not throw and should return quickly: the lease is not renewed meanwhile.
struct lease_callbacks {
  std::function<void()> on_elected;
  std::function<void(lease_loss_reason)> on_lost;
};

// One watchdog's lease.
//
// Thread safety: async_run(), async_release() and stop() must be called on
// the client's executor (a strand on a multi-threaded io_context).
// is_leader() and stats() may be called from any thread.
//
// Lifetime: `client` must outlive this object. A request in flight when
// async_run() returns keeps only its own copies of the key and token, so
// the lease may be destroyed right after async_run() returns.
class leader_lease {
 public:
  // Throws std::invalid_argument with validate()'s message when `options`
  // is invalid.
  leader_lease(redis::client& client, lease_options options, logger log = {},
               lease_callbacks callbacks = {});
  ~leader_lease();
  leader_lease(const leader_lease&) = delete;
  leader_lease& operator=(const leader_lease&) = delete;

  // Campaigns, renews while leader, steps down and campaigns again, until
  // stop() is called or the operation gets a terminal cancellation (the
  // type that a coroutine lets through by default), for example from
  // asio::bind_cancellation_slot or the || operator of awaitable_operators.
  // It then returns at once, even with a request in flight, whose reply is
  // dropped. Redis errors never end it: they are logged and retried.
  //
  // After it returns the lease is no longer renewed: is_leader() stays true
  // until the current deadline, and async_release() hands the key over at
  // once. Calling async_run() again resumes from the current state.
  // REQUIRES: no other async_run() or async_release() of this lease is
  // running.
  asio::awaitable<void> async_run();

  // Makes async_run() return. Does nothing when it is not running.
  void stop();

  // True while this instance holds the lease by its own judgement: it won
  // a campaign and the local deadline has not passed. Reads the steady
  // clock on every call, so it turns false at the deadline even when no
  // code of this lease ran since.
  bool is_leader() const noexcept;

  // Steps down (is_leader() turns false before anything is sent, and
  // on_lost runs with lease_loss_reason::released if this instance was
  // leader), then deletes the key only if it still contains this
  // instance's token. Returns true when the key was deleted, false when it
  // was absent or contained another token, or the Redis error.
  // REQUIRES: async_run() is not running.
  asio::awaitable<result<bool>> async_release();

  lease_stats stats() const;
  const std::string& key() const noexcept { return key_; }
  const lease_timing& timing() const noexcept { return machine_.timing(); }

 private:
  using clock = lease_machine::clock;
  using time_point = lease_machine::time_point;

  asio::awaitable<void> async_campaign();
  asio::awaitable<void> async_renew();
  asio::awaitable<void> async_release_stale();

  // Sleeps until `at`. Returns false when the run was stopped meanwhile.
  asio::awaitable<bool> async_sleep_until(time_point at);
  // Waits until `done()` returns true. The coroutine carrying the request
  // cancels `wake` when its reply is in. Wakes at the deadline meanwhile, so that a
  // leader whose renewal is late steps down on time. Returns false when the
  // run was stopped first.
  asio::awaitable<bool> async_wait_for_reply(asio::steady_timer& wake,
                                             const std::function<bool()>& done);
  asio::awaitable<bool> async_stop_requested() const;

  // Applies a change of the machine: publishes is_leader() and the stats,
  // logs, and runs the callbacks. `error_text` is the cause of a loss, if any.
  void apply(const lease_change& change, std::string_view error_text = {});
  void publish();
  // Logs a failed request: at most one line per request kind and
  // kErrorLogInterval, which counts the lines suppressed before it.
  void note_request_error(std::string_view request, const error& e);
  // Logs the first success after failed requests.
  void note_request_ok();

  // Campaigns repeat every retry interval while Redis is down; one line a
  // minute is enough to show that the outage goes on.
  static constexpr std::chrono::seconds kErrorLogInterval{60};

  redis::client& client_;
  lease_options options_;
  logger log_;
  lease_callbacks callbacks_;
  std::string key_;
  std::string token_;
  lease_machine machine_;

  // State of a running async_run(), touched only on its executor.
  bool running_ = false;
  bool stop_requested_ = false;
  asio::steady_timer* waiting_timer_ = nullptr;

  // Failed requests since the last success, and the limiter of their log lines.
  std::uint64_t errors_in_streak_ = 0;
  log_rate_limiter error_log_limiter_;

  // Published for is_leader() and stats() on other threads.
  std::atomic<clock::rep> leader_deadline_;
  mutable std::mutex stats_mutex_;
  lease_stats stats_snapshot_;
};

}  // namespace tracewatch
