// The lease's pure part: options, reply classification and the state
// machine, driven by a fake clock.

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>

#include "tracewatch/lease.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using time_point = lease_machine::time_point;

// An arbitrary origin for the fake clock.
const time_point kStart = time_point() + std::chrono::hours(1000);

// Lease 300 ms, renew every 100 ms, followers retry every 90 ms, no jitter,
// so that every due time in these tests is exact.
lease_timing exact_timing() {
  lease_timing timing;
  timing.lease = 300ms;
  timing.renew_interval = 100ms;
  timing.retry_interval = 90ms;
  timing.retry_jitter = 0ms;
  return timing;
}

// A machine that won its first campaign, sent at kStart with the reply 10 ms later.
lease_machine elected_machine() {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::acquired, kStart, kStart + 10ms);
  return machine;
}

redis::reply status_reply(std::string text) {
  redis::reply reply;
  reply.type = redis::reply::kind::status;
  reply.str = std::move(text);
  return reply;
}

redis::reply integer_reply(std::int64_t value) {
  redis::reply reply;
  reply.type = redis::reply::kind::integer;
  reply.integer = value;
  return reply;
}

redis::reply error_reply(std::string text) {
  redis::reply reply;
  reply.type = redis::reply::kind::error;
  reply.str = std::move(text);
  return reply;
}

// ---------------------------------------------------------------------------
// Options, key and token

TEST(LeaseOptions, DefaultsAreValid) { EXPECT_TRUE(validate(lease_options{}).has_value()); }

TEST(LeaseOptions, RejectsEmptyPrefix) {
  lease_options options;
  options.prefix = "";
  auto checked = validate(options);
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error(), errc::invalid_argument);
  EXPECT_NE(checked.error().what().find("--prefix"), std::string::npos);
}

TEST(LeaseOptions, RejectsLeaseOutOfRange) {
  for (milliseconds lease : {0ms, 9ms, milliseconds(-5), milliseconds(std::chrono::hours(25))}) {
    lease_options options;
    options.lease = lease;
    auto checked = validate(options);
    ASSERT_FALSE(checked.has_value()) << lease.count();
    EXPECT_EQ(checked.error(), errc::invalid_argument);
    // The flag is in seconds, and so is the message.
    const std::string seconds =
        fmt::format("{:g} s", std::chrono::duration<double>(lease).count());
    EXPECT_NE(checked.error().what().find(seconds), std::string::npos) << checked.error().what();
    EXPECT_NE(checked.error().what().find("--lease-s"), std::string::npos);
  }
}

TEST(LeaseOptions, RejectsRenewFractionOutsideOpenUnitInterval) {
  for (double fraction : {0.0, 1.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    lease_options options;
    options.renew_fraction = fraction;
    auto checked = validate(options);
    ASSERT_FALSE(checked.has_value()) << fraction;
    EXPECT_EQ(checked.error(), errc::invalid_argument);
  }
}

TEST(LeaseOptions, RejectsRetryIntervalOutOfRange) {
  lease_options negative;
  negative.retry_interval = milliseconds(-1);
  EXPECT_FALSE(validate(negative).has_value());

  lease_options longer_than_lease;
  longer_than_lease.lease = 1000ms;
  longer_than_lease.retry_interval = 1001ms;
  EXPECT_FALSE(validate(longer_than_lease).has_value());
}

TEST(LeaseOptions, TimingFollowsDefaults) {
  const lease_timing timing = make_lease_timing(lease_options{});
  EXPECT_EQ(timing.lease, 30s);
  EXPECT_EQ(timing.renew_interval, 10s);
  EXPECT_EQ(timing.retry_interval, 10s);
  EXPECT_EQ(timing.retry_jitter, 2500ms);
}

TEST(LeaseOptions, TimingKeepsExplicitRetryInterval) {
  lease_options options;
  options.lease = 600ms;
  options.renew_fraction = 0.25;
  options.retry_interval = 50ms;
  const lease_timing timing = make_lease_timing(options);
  EXPECT_EQ(timing.renew_interval, 150ms);
  EXPECT_EQ(timing.retry_interval, 50ms);
}

TEST(LeaseOptions, RenewIntervalIsAtLeastOneMillisecond) {
  lease_options options;
  options.lease = 10ms;
  options.renew_fraction = 0.01;
  EXPECT_EQ(make_lease_timing(options).renew_interval, 1ms);
}

TEST(LeaseKey, UsesPrefix) { EXPECT_EQ(lease_key("sg"), "sg:watchdog:leader"); }

TEST(LeaseToken, Is32LowercaseHexDigits) {
  const std::string token = make_lease_token();
  ASSERT_EQ(token.size(), 32u);
  for (char c : token) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << token;
  }
}

TEST(LeaseToken, DiffersEveryCall) {
  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) tokens.insert(make_lease_token());
  EXPECT_EQ(tokens.size(), 100u);
}

TEST(LeaseToken, PrefixIsEightDigits) {
  EXPECT_EQ(token_prefix("0123456789abcdef0123456789abcdef"), "01234567");
  EXPECT_EQ(token_prefix("abc"), "abc");
}

// ---------------------------------------------------------------------------
// Replies

TEST(LeaseReplies, CampaignOkIsAcquired) {
  EXPECT_EQ(classify_campaign_reply(status_reply("OK")), campaign_outcome::acquired);
}

TEST(LeaseReplies, CampaignNilIsHeld) {
  EXPECT_EQ(classify_campaign_reply(redis::reply{}), campaign_outcome::held);
}

TEST(LeaseReplies, CampaignErrorIsFailed) {
  const redis::reply readonly =
      error_reply("READONLY You can't write against a read only replica.");
  EXPECT_EQ(classify_campaign_reply(readonly), campaign_outcome::failed);
}

TEST(LeaseReplies, RenewIntegers) {
  EXPECT_EQ(classify_renew_reply(integer_reply(1)), renew_outcome::renewed);
  EXPECT_EQ(classify_renew_reply(integer_reply(0)), renew_outcome::rejected);
  EXPECT_EQ(classify_renew_reply(integer_reply(7)), renew_outcome::failed);
  EXPECT_EQ(classify_renew_reply(status_reply("OK")), renew_outcome::failed);
}

TEST(LeaseReplies, UnsentRequestsDidNotRun) {
  EXPECT_FALSE(request_may_have_run(error(errc::not_connected)));
  EXPECT_FALSE(request_may_have_run(error(errc::server_error, "OOM")));
}

TEST(LeaseReplies, BrokenRequestsMayHaveRun) {
  EXPECT_TRUE(request_may_have_run(error(errc::connection_lost)));
  EXPECT_TRUE(request_may_have_run(error(errc::timeout)));
  EXPECT_TRUE(request_may_have_run(error(errc::closed)));
}

// ---------------------------------------------------------------------------
// The state machine

TEST(LeaseMachine, StartsAsFollowerCampaigningNow) {
  lease_machine machine(exact_timing(), kStart, 1);
  EXPECT_EQ(machine.role(), lease_role::follower);
  EXPECT_FALSE(machine.is_leader(kStart));
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart);
}

TEST(LeaseMachine, AcquireElectsWithDeadlineFromSendTime) {
  lease_machine machine(exact_timing(), kStart, 1);
  const lease_change change =
      machine.on_campaign_result(campaign_outcome::acquired, kStart, kStart + 40ms);
  EXPECT_TRUE(change.elected());
  EXPECT_EQ(machine.role(), lease_role::leader);
  EXPECT_EQ(machine.deadline(), kStart + 300ms);
  EXPECT_EQ(machine.next_step().action, lease_action::renew);
  EXPECT_EQ(machine.next_step().at, kStart + 100ms);
  EXPECT_EQ(machine.stats().acquired, 1u);
}

TEST(LeaseMachine, IsLeaderEndsAtDeadlineWithoutInput) {
  lease_machine machine = elected_machine();
  EXPECT_TRUE(machine.is_leader(kStart + 299ms));
  EXPECT_FALSE(machine.is_leader(kStart + 300ms));
  EXPECT_FALSE(machine.is_leader(kStart + std::chrono::hours(1)));
}

TEST(LeaseMachine, RenewExtendsDeadlineFromSendTime) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_renew_result(renew_outcome::renewed, kStart + 100ms, kStart + 250ms);
  EXPECT_EQ(change.type, lease_change::kind::none);
  EXPECT_EQ(machine.deadline(), kStart + 400ms);
  EXPECT_EQ(machine.next_step().action, lease_action::renew);
  EXPECT_EQ(machine.next_step().at, kStart + 200ms);
  EXPECT_EQ(machine.stats().renewals, 1u);
}

TEST(LeaseMachine, RenewRejectedStepsDownAndCampaigns) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_renew_result(renew_outcome::rejected, kStart + 100ms, kStart + 110ms);
  EXPECT_TRUE(change.lost());
  EXPECT_EQ(change.reason, lease_loss_reason::renew_rejected);
  EXPECT_FALSE(machine.is_leader(kStart + 110ms));
  // The key is not ours, so nothing to release: campaign at once.
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 110ms);
  EXPECT_EQ(machine.stats().renew_failures, 1u);
  EXPECT_EQ(machine.stats().lost, 1u);
}

TEST(LeaseMachine, RenewFailedStepsDownAndRetriesLater) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_renew_result(renew_outcome::failed, kStart + 100ms, kStart + 110ms);
  EXPECT_TRUE(change.lost());
  EXPECT_EQ(change.reason, lease_loss_reason::renew_failed);
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 200ms);
}

TEST(LeaseMachine, RenewOfUnknownOutcomeReleasesBeforeCampaign) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_renew_result(renew_outcome::unknown, kStart + 100ms, kStart + 110ms);
  EXPECT_EQ(change.reason, lease_loss_reason::renew_failed);
  EXPECT_EQ(machine.next_step().action, lease_action::release);
  EXPECT_EQ(machine.next_step().at, kStart + 110ms);

  machine.on_release_done();
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 200ms);
}

TEST(LeaseMachine, TickBeforeDeadlineChangesNothing) {
  lease_machine machine = elected_machine();
  EXPECT_EQ(machine.on_tick(kStart + 299ms).type, lease_change::kind::none);
  EXPECT_EQ(machine.role(), lease_role::leader);
}

TEST(LeaseMachine, TickAtDeadlineStepsDownAndReleases) {
  lease_machine machine = elected_machine();
  const lease_change change = machine.on_tick(kStart + 300ms);
  EXPECT_TRUE(change.lost());
  EXPECT_EQ(change.reason, lease_loss_reason::deadline_passed);
  EXPECT_EQ(machine.role(), lease_role::follower);
  EXPECT_EQ(machine.deadline(), time_point::min());
  EXPECT_EQ(machine.next_step().action, lease_action::release);
  EXPECT_EQ(machine.stats().deadline_expiries, 1u);
  EXPECT_EQ(machine.stats().lost, 1u);
}

TEST(LeaseMachine, PausedLeaderIsNoLeaderOnResume) {
  // Renewals stop because the process is stopped. On resume, is_leader()
  // returns false before any input.
  lease_machine machine = elected_machine();
  const time_point resumed = kStart + 5s;
  EXPECT_FALSE(machine.is_leader(resumed));
  EXPECT_EQ(machine.on_tick(resumed).reason, lease_loss_reason::deadline_passed);
}

TEST(LeaseMachine, RenewConfirmedAfterDeadlineDoesNotRestoreLeadership) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_renew_result(renew_outcome::renewed, kStart + 100ms, kStart + 350ms);
  EXPECT_TRUE(change.lost());
  EXPECT_EQ(change.reason, lease_loss_reason::deadline_passed);
  EXPECT_FALSE(machine.is_leader(kStart + 350ms));
  // The renewal put our token back with a fresh TTL: release it.
  EXPECT_EQ(machine.next_step().action, lease_action::release);
}

TEST(LeaseMachine, RenewReplyAfterStepDownSchedulesRelease) {
  lease_machine machine = elected_machine();
  ASSERT_TRUE(machine.on_tick(kStart + 300ms).lost());
  machine.on_release_done();
  ASSERT_EQ(machine.next_step().action, lease_action::campaign);

  const lease_change change =
      machine.on_renew_result(renew_outcome::renewed, kStart + 100ms, kStart + 320ms);
  EXPECT_EQ(change.type, lease_change::kind::none);
  EXPECT_EQ(machine.next_step().action, lease_action::release);
  EXPECT_EQ(machine.stats().renewals, 0u);
}

TEST(LeaseMachine, RejectedReplyAfterStepDownNeedsNoRelease) {
  lease_machine machine = elected_machine();
  ASSERT_TRUE(machine.on_tick(kStart + 300ms).lost());
  machine.on_release_done();
  machine.on_renew_result(renew_outcome::rejected, kStart + 100ms, kStart + 320ms);
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.stats().lost, 1u);
}

TEST(LeaseMachine, LateAcquireIsNoElection) {
  lease_machine machine(exact_timing(), kStart, 1);
  const lease_change change =
      machine.on_campaign_result(campaign_outcome::acquired, kStart, kStart + 300ms);
  EXPECT_EQ(change.type, lease_change::kind::none);
  EXPECT_FALSE(machine.is_leader(kStart + 300ms));
  EXPECT_EQ(machine.next_step().action, lease_action::release);
  EXPECT_EQ(machine.stats().acquired, 0u);
}

TEST(LeaseMachine, HeldWaitsForShorterHolderTtl) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::held, kStart, kStart + 5ms, 40ms);
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  // 40 ms of TTL plus 1 ms because PTTL rounds down.
  EXPECT_EQ(machine.next_step().at, kStart + 46ms);
}

TEST(LeaseMachine, HeldWaitsRetryIntervalForLongerTtl) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::held, kStart, kStart + 5ms, 250ms);
  EXPECT_EQ(machine.next_step().at, kStart + 95ms);
}

TEST(LeaseMachine, HeldIgnoresNegativeTtl) {
  lease_machine no_expiry(exact_timing(), kStart, 1);
  no_expiry.on_campaign_result(campaign_outcome::held, kStart, kStart + 5ms, milliseconds(-1));
  EXPECT_EQ(no_expiry.next_step().at, kStart + 95ms);

  lease_machine unknown_ttl(exact_timing(), kStart, 1);
  unknown_ttl.on_campaign_result(campaign_outcome::held, kStart, kStart + 5ms);
  EXPECT_EQ(unknown_ttl.next_step().at, kStart + 95ms);
}

TEST(LeaseMachine, CampaignFailureRetriesWithoutRelease) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::failed, kStart, kStart + 5ms);
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 95ms);
  EXPECT_EQ(machine.stats().campaign_failures, 1u);
}

TEST(LeaseMachine, CampaignOfUnknownOutcomeReleasesFirst) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::unknown, kStart, kStart + 5ms);
  EXPECT_EQ(machine.next_step().action, lease_action::release);
  EXPECT_EQ(machine.next_step().at, kStart + 5ms);
  machine.on_release_done();
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 95ms);
}

TEST(LeaseMachine, StrayCampaignReplyWhileLeaderIsIgnored) {
  lease_machine machine = elected_machine();
  const lease_change change =
      machine.on_campaign_result(campaign_outcome::held, kStart + 50ms, kStart + 60ms);
  EXPECT_EQ(change.type, lease_change::kind::none);
  EXPECT_EQ(machine.role(), lease_role::leader);
  EXPECT_EQ(machine.deadline(), kStart + 300ms);
}

TEST(LeaseMachine, ResignEndsTermAsReleased) {
  lease_machine machine = elected_machine();
  const lease_change change = machine.resign(kStart + 50ms);
  EXPECT_TRUE(change.lost());
  EXPECT_EQ(change.reason, lease_loss_reason::released);
  EXPECT_FALSE(machine.is_leader(kStart + 50ms));
  EXPECT_EQ(machine.stats().released, 1u);
  EXPECT_EQ(machine.stats().lost, 0u);
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
  EXPECT_EQ(machine.next_step().at, kStart + 140ms);
}

TEST(LeaseMachine, ResignAsFollowerChangesNothing) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::unknown, kStart, kStart + 5ms);
  EXPECT_EQ(machine.resign(kStart + 10ms).type, lease_change::kind::none);
  // The caller's release covers the pending one.
  EXPECT_EQ(machine.next_step().action, lease_action::campaign);
}

TEST(LeaseMachine, JitterStaysWithinBounds) {
  lease_timing timing = exact_timing();
  timing.retry_jitter = 20ms;
  lease_machine machine(timing, kStart, 42);
  std::set<time_point::rep> seen;
  for (int i = 0; i < 200; ++i) {
    const time_point now = kStart + milliseconds(i * 1000);
    machine.on_campaign_result(campaign_outcome::held, now, now);
    const time_point at = machine.next_step().at;
    EXPECT_GE(at, now + 90ms);
    EXPECT_LE(at, now + 110ms);
    seen.insert((at - now).count());
  }
  // The jitter varies: not every retry waits the same time.
  EXPECT_GT(seen.size(), 1u);
}

TEST(LeaseMachine, SameSeedSameSchedule) {
  lease_timing timing = exact_timing();
  timing.retry_jitter = 20ms;
  lease_machine first(timing, kStart, 7);
  lease_machine second(timing, kStart, 7);
  for (int i = 0; i < 20; ++i) {
    first.on_campaign_result(campaign_outcome::held, kStart, kStart);
    second.on_campaign_result(campaign_outcome::held, kStart, kStart);
    EXPECT_EQ(first.next_step().at, second.next_step().at);
  }
}

TEST(LeaseMachine, CountsTerms) {
  lease_machine machine(exact_timing(), kStart, 1);
  machine.on_campaign_result(campaign_outcome::held, kStart, kStart + 1ms);
  machine.on_campaign_result(campaign_outcome::acquired, kStart + 100ms, kStart + 101ms);
  machine.on_renew_result(renew_outcome::renewed, kStart + 200ms, kStart + 201ms);
  machine.on_renew_result(renew_outcome::rejected, kStart + 300ms, kStart + 301ms);
  machine.on_campaign_result(campaign_outcome::acquired, kStart + 302ms, kStart + 303ms);
  machine.resign(kStart + 310ms);

  const lease_stats& stats = machine.stats();
  EXPECT_EQ(stats.campaigns, 3u);
  EXPECT_EQ(stats.acquired, 2u);
  EXPECT_EQ(stats.renewals, 1u);
  EXPECT_EQ(stats.renew_failures, 1u);
  EXPECT_EQ(stats.lost, 1u);
  EXPECT_EQ(stats.released, 1u);
}

// ---------------------------------------------------------------------------
// A simulation: several machines against a model of the Redis key, with
// random network delays, lost replies and paused processes, on one fake
// clock that every party shares (clocks behave). At every millisecond at
// most one machine may consider itself leader, and a leader's belief must
// be backed by the key.

struct simulated_key {
  std::string token;
  time_point expires_at{};

  bool holds(time_point now) const { return !token.empty() && now < expires_at; }
};

struct simulated_request {
  lease_action action = lease_action::campaign;
  std::string token;
  time_point sent_at{};
  time_point executes_at{};  // time_point::max() when it never reaches Redis
  time_point replies_at{};
  bool reply_lost = false;  // the connection broke after Redis ran it
  bool executed = false;
  // Filled in when Redis runs the request.
  campaign_outcome campaign = campaign_outcome::failed;
  renew_outcome renew = renew_outcome::failed;
  std::optional<milliseconds> ttl;
};

struct simulated_instance {
  lease_machine machine;
  std::string token;
  std::optional<simulated_request> in_flight;
  time_point paused_until{};
  int terms = 0;
};

void execute(simulated_key& key, simulated_request& request, time_point now,
             milliseconds lease) {
  request.executed = true;
  const bool held = key.holds(now);
  switch (request.action) {
    case lease_action::campaign:
      if (!held) {
        key.token = request.token;
        key.expires_at = now + lease;
        request.campaign = campaign_outcome::acquired;
      } else {
        request.campaign = campaign_outcome::held;
        request.ttl = std::chrono::duration_cast<milliseconds>(key.expires_at - now);
      }
      break;
    case lease_action::renew:
      if (held && key.token == request.token) {
        key.expires_at = now + lease;
        request.renew = renew_outcome::renewed;
      } else {
        request.renew = renew_outcome::rejected;
      }
      break;
    case lease_action::release:
      if (held && key.token == request.token) key.token.clear();
      break;
  }
}

void deliver(simulated_instance& instance, const simulated_request& request, time_point now) {
  switch (request.action) {
    case lease_action::campaign: {
      campaign_outcome outcome = request.campaign;
      if (!request.executed) outcome = campaign_outcome::failed;
      if (request.reply_lost) outcome = campaign_outcome::unknown;
      const lease_change change =
          instance.machine.on_campaign_result(outcome, request.sent_at, now, request.ttl);
      if (change.elected()) ++instance.terms;
      break;
    }
    case lease_action::renew: {
      renew_outcome outcome = request.renew;
      if (!request.executed) outcome = renew_outcome::failed;
      if (request.reply_lost) outcome = renew_outcome::unknown;
      instance.machine.on_renew_result(outcome, request.sent_at, now);
      break;
    }
    case lease_action::release:
      instance.machine.on_release_done();
      break;
  }
}

void simulate(std::uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 random(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(random) < p; };
  auto delay = [&](int max_ms) {
    return milliseconds(std::uniform_int_distribution<int>(0, max_ms)(random));
  };

  lease_timing timing = exact_timing();
  timing.retry_jitter = 20ms;
  simulated_key key;
  std::vector<simulated_instance> instances;
  for (std::uint64_t i = 0; i < 3; ++i) {
    instances.push_back({lease_machine(timing, kStart, seed * 10 + i), "", {}, {}, 0});
  }

  int token_counter = 0;
  int total_terms = 0;
  for (int ms = 0; ms < 30000; ++ms) {
    const time_point now = kStart + milliseconds(ms);

    // Redis runs what reached it, paused senders or not.
    for (auto& instance : instances) {
      auto& request = instance.in_flight;
      if (request && !request->executed && request->executes_at <= now) {
        execute(key, *request, now, timing.lease);
      }
    }

    // Every running instance reads replies, ticks and sends.
    for (auto& instance : instances) {
      if (now < instance.paused_until) continue;
      if (chance(0.0005)) {
        instance.paused_until = now + delay(700);
        continue;
      }
      if (instance.in_flight && instance.in_flight->replies_at <= now) {
        deliver(instance, *instance.in_flight, now);
        instance.in_flight.reset();
      }
      instance.machine.on_tick(now);
      const lease_step step = instance.machine.next_step();
      if (instance.in_flight || step.at > now) continue;

      if (step.action == lease_action::campaign) instance.token = std::to_string(++token_counter);
      simulated_request request;
      request.action = step.action;
      request.token = instance.token;
      request.sent_at = now;
      request.executes_at = now + delay(40);
      if (chance(0.02)) request.executes_at = time_point::max();  // never sent
      request.replies_at =
          (request.executes_at == time_point::max() ? now : request.executes_at) + delay(40);
      request.reply_lost = request.executes_at != time_point::max() && chance(0.02);
      instance.in_flight = request;
    }

    // At most one leader, and its belief is backed by the key.
    int leaders = 0;
    for (const auto& instance : instances) {
      if (!instance.machine.is_leader(now)) continue;
      ++leaders;
      ASSERT_TRUE(key.holds(now)) << "at " << ms << " ms";
      ASSERT_EQ(key.token, instance.token) << "at " << ms << " ms";
    }
    ASSERT_LE(leaders, 1) << "at " << ms << " ms";
  }

  for (const auto& instance : instances) total_terms += instance.terms;
  // Pauses and failures make leadership change hands: the run covered it.
  EXPECT_GT(total_terms, 3);
}

TEST(LeaseMachineSimulation, NeverTwoLeaders) {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) simulate(seed);
}

}  // namespace
}  // namespace tracewatch
