// The lease's pure part: options, tokens, timing and the state machine. No I/O.

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "tracewatch/lease.hpp"

namespace tracewatch {
namespace {

using std::chrono::milliseconds;

// Bounds of lease_options::lease. Below 10 ms, one round trip to Redis may
// take the whole lease. Above a day, a crashed leader would stop sweeping
// for longer than any useful sweep schedule.
constexpr milliseconds kMinLease{10};
constexpr milliseconds kMaxLease = std::chrono::hours(24);

// PTTL rounds down to whole milliseconds, so a key may live up to 1 ms past
// the TTL it reports.
constexpr milliseconds kPttlRounding{1};

}  // namespace

// ---------------------------------------------------------------------------
// Options

result<void> validate(const lease_options& options) {
  if (options.prefix.empty()) {
    return error(errc::invalid_argument,
                 "lease key prefix is empty; set --prefix to a non-empty value such as sg");
  }
  if (options.lease < kMinLease || options.lease > kMaxLease) {
    return error(errc::invalid_argument,
                 fmt::format("lease of {:g} s is out of range ({:g} s to {:g} s); set --lease-s "
                             "to a value in that range",
                             std::chrono::duration<double>(options.lease).count(),
                             std::chrono::duration<double>(kMinLease).count(),
                             std::chrono::duration<double>(kMaxLease).count()));
  }
  if (!(options.renew_fraction > 0.0 && options.renew_fraction < 1.0)) {
    return error(errc::invalid_argument,
                 fmt::format("lease renew fraction {} is out of range; use a value strictly "
                             "between 0 and 1, such as 0.33",
                             options.renew_fraction));
  }
  if (options.retry_interval < milliseconds(0) || options.retry_interval > options.lease) {
    return error(errc::invalid_argument,
                 fmt::format("lease retry interval of {} is out of range; use 0 (a third of the "
                             "lease) up to the lease of {}",
                             options.retry_interval, options.lease));
  }
  return {};
}

std::string lease_key(std::string_view prefix) {
  std::string key(prefix);
  key += ":watchdog:leader";
  return key;
}

std::string make_lease_token() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    std::array<char, 256> reason{};
    ERR_error_string_n(ERR_get_error(), reason.data(), reason.size());
    throw std::runtime_error(
        fmt::format("OpenSSL RAND_bytes failed to make a lease token: {}", reason.data()));
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  token.reserve(bytes.size() * 2);
  for (unsigned char byte : bytes) {
    token += kHex[byte >> 4];
    token += kHex[byte & 0x0f];
  }
  return token;
}

std::string_view token_prefix(std::string_view token) noexcept { return token.substr(0, 8); }

lease_timing make_lease_timing(const lease_options& options) {
  lease_timing timing;
  timing.lease = options.lease;

  const auto renew_ms = static_cast<milliseconds::rep>(
      std::floor(static_cast<double>(options.lease.count()) * options.renew_fraction));
  timing.renew_interval = std::max(milliseconds(1), milliseconds(renew_ms));

  timing.retry_interval =
      options.retry_interval.count() > 0 ? options.retry_interval : options.lease / 3;
  timing.retry_jitter = timing.retry_interval / 4;
  return timing;
}

std::string_view to_string(lease_role role) noexcept {
  switch (role) {
    case lease_role::follower: return "follower";
    case lease_role::leader: return "leader";
  }
  return "unknown";
}

std::string_view to_string(lease_action action) noexcept {
  switch (action) {
    case lease_action::campaign: return "campaign";
    case lease_action::renew: return "renew";
    case lease_action::release: return "release";
  }
  return "unknown";
}

std::string_view to_string(lease_loss_reason reason) noexcept {
  switch (reason) {
    case lease_loss_reason::renew_rejected: return "renew_rejected";
    case lease_loss_reason::renew_failed: return "renew_failed";
    case lease_loss_reason::deadline_passed: return "deadline_passed";
    case lease_loss_reason::released: return "released";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Replies

bool request_may_have_run(const error& e) noexcept {
  return !(e == errc::not_connected || e == errc::server_error || e == errc::cluster_down ||
           e == errc::cross_slot);
}

campaign_outcome classify_campaign_reply(const redis::reply& set_reply) noexcept {
  if (set_reply.is_nil()) return campaign_outcome::held;
  if (set_reply.type == redis::reply::kind::status && set_reply.str == "OK") {
    return campaign_outcome::acquired;
  }
  // An error reply (OOM, READONLY on a replica, …) means SET did not run.
  return campaign_outcome::failed;
}

renew_outcome classify_renew_reply(const redis::reply& script_reply) noexcept {
  if (script_reply.is_integer() && script_reply.integer == 1) return renew_outcome::renewed;
  if (script_reply.is_integer() && script_reply.integer == 0) return renew_outcome::rejected;
  return renew_outcome::failed;
}

// ---------------------------------------------------------------------------
// The state machine

lease_machine::lease_machine(const lease_timing& timing, time_point now,
                             std::uint64_t jitter_seed)
    : timing_(timing), jitter_(jitter_seed), deadline_(time_point::min()), next_campaign_(now) {}

bool lease_machine::is_leader(time_point now) const noexcept {
  return role_ == lease_role::leader && now < deadline_;
}

lease_machine::time_point lease_machine::deadline() const noexcept {
  return role_ == lease_role::leader ? deadline_ : time_point::min();
}

lease_step lease_machine::next_step() const noexcept {
  if (role_ == lease_role::leader) return {lease_action::renew, next_renew_};
  if (release_pending_) return {lease_action::release, release_at_};
  return {lease_action::campaign, next_campaign_};
}

lease_machine::time_point lease_machine::retry_at(time_point now, milliseconds base) {
  // Jitter spreads the followers of a fleet that all lost their leader at
  // the same moment, so their campaigns do not arrive as one burst.
  milliseconds extra{0};
  if (timing_.retry_jitter.count() > 0) {
    std::uniform_int_distribution<milliseconds::rep> pick(0, timing_.retry_jitter.count());
    extra = milliseconds(pick(jitter_));
  }
  return now + base + extra;
}

lease_change lease_machine::step_down(lease_loss_reason reason, time_point now, bool release,
                                      time_point next_campaign) {
  role_ = lease_role::follower;
  deadline_ = time_point::min();
  next_campaign_ = next_campaign;
  if (release) {
    release_pending_ = true;
    release_at_ = now;
  }

  if (reason == lease_loss_reason::released) {
    ++stats_.released;
  } else {
    ++stats_.lost;
  }
  if (reason == lease_loss_reason::deadline_passed) ++stats_.deadline_expiries;
  return {lease_change::kind::lost, reason};
}

lease_change lease_machine::on_tick(time_point now) {
  if (role_ != lease_role::leader || now < deadline_) return {};
  // The key may still hold our token (Redis was slow too, or our clock ran
  // fast), so release it before campaigning again with a new token.
  return step_down(lease_loss_reason::deadline_passed, now, true, retry_at(now, milliseconds(0)));
}

lease_change lease_machine::on_campaign_result(campaign_outcome outcome, time_point sent_at,
                                               time_point now,
                                               std::optional<milliseconds> holder_ttl) {
  // A campaign is only sent by a follower, so a leader has no campaign in
  // flight; a stray reply changes nothing.
  if (role_ == lease_role::leader) return {};
  ++stats_.campaigns;

  switch (outcome) {
    case campaign_outcome::acquired: {
      const time_point deadline = sent_at + timing_.lease;
      if (deadline <= now) {
        // The reply took longer than the lease: the key may already belong
        // to someone else, so this is no election. Release it if it is ours.
        release_pending_ = true;
        release_at_ = now;
        next_campaign_ = retry_at(now, milliseconds(0));
        return {};
      }
      role_ = lease_role::leader;
      deadline_ = deadline;
      next_renew_ = sent_at + timing_.renew_interval;
      ++stats_.acquired;
      return {lease_change::kind::elected, {}};
    }

    case campaign_outcome::held: {
      milliseconds wait = timing_.retry_interval;
      if (holder_ttl && holder_ttl->count() >= 0) {
        wait = std::min(wait, *holder_ttl + kPttlRounding);
      }
      next_campaign_ = retry_at(now, wait);
      return {};
    }

    case campaign_outcome::failed:
      ++stats_.campaign_failures;
      next_campaign_ = retry_at(now, timing_.retry_interval);
      return {};

    case campaign_outcome::unknown:
      // SET may have stored our token. Delete it before the next campaign,
      // which uses a new token, because otherwise no instance could win
      // until it expires.
      ++stats_.campaign_failures;
      release_pending_ = true;
      release_at_ = now;
      next_campaign_ = retry_at(now, timing_.retry_interval);
      return {};
  }
  return {};
}

lease_change lease_machine::on_renew_result(renew_outcome outcome, time_point sent_at,
                                            time_point now) {
  // The deadline is checked first: a renewal confirmed after it does not
  // make up for the time in which is_leader() already returned false.
  lease_change change = on_tick(now);
  if (outcome != renew_outcome::renewed) ++stats_.renew_failures;

  if (role_ != lease_role::leader) {
    // Stepped down while this renewal was in flight. If it ran, the key
    // contains our token again, so delete it and let the next term start soon.
    if (outcome == renew_outcome::renewed || outcome == renew_outcome::unknown) {
      release_pending_ = true;
      release_at_ = now;
    }
    return change;
  }

  switch (outcome) {
    case renew_outcome::renewed:
      ++stats_.renewals;
      deadline_ = std::max(deadline_, sent_at + timing_.lease);
      next_renew_ = sent_at + timing_.renew_interval;
      return {};

    case renew_outcome::rejected:
      // The key is gone or taken. Campaign at once: if it is gone, this
      // instance may win it back; if it is taken, the reply gives its TTL.
      return step_down(lease_loss_reason::renew_rejected, now, false,
                       retry_at(now, milliseconds(0)));

    case renew_outcome::failed:
      return step_down(lease_loss_reason::renew_failed, now, false,
                       retry_at(now, timing_.retry_interval));

    case renew_outcome::unknown:
      return step_down(lease_loss_reason::renew_failed, now, true,
                       retry_at(now, timing_.retry_interval));
  }
  return {};
}

void lease_machine::on_release_done() noexcept { release_pending_ = false; }

lease_change lease_machine::resign(time_point now) {
  // The caller deletes the key itself, which also covers a pending release.
  release_pending_ = false;
  if (role_ != lease_role::leader) return {};
  return step_down(lease_loss_reason::released, now, false,
                   retry_at(now, timing_.retry_interval));
}

}  // namespace tracewatch
