#include "demo_settings.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tracewatch::cli {
namespace {

constexpr double kMaxTraces = 10'000'000;

// A finite `value` within [min, max], or an error naming the flag.
result<void> check_range(std::string_view flag, double value, double min, double max,
                         std::string_view unit) {
  if (std::isfinite(value) && value >= min && value <= max) return {};
  return error(errc::invalid_argument,
               fmt::format("invalid {} {}: use {} {} to {}", flag, value, unit, min, max));
}

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

}  // namespace

result<void> validate(const demo_settings& s) {
  if (auto ok = check_range("--duration-s", s.duration_s, 0.1, 3600, "seconds from"); !ok)
    return ok;
  if (auto ok = check_range("--rate", s.rate, 0.1, 100000, "traces per second from"); !ok)
    return ok;
  // The demo keeps every id until the report, about 80 bytes each, so the
  // cap of kMaxTraces keeps its memory under 1 GB.
  if (s.duration_s * s.rate > kMaxTraces) {
    return error(
        errc::invalid_argument,
        fmt::format("invalid --duration-s {} with --rate {}: that makes {} traces, and the "
                    "demo keeps every id in memory; use at most {} traces",
                    s.duration_s, s.rate, s.duration_s * s.rate, kMaxTraces));
  }
  if (s.workers < 1 || s.workers > 10000) {
    return error(errc::invalid_argument,
                 fmt::format("invalid --workers {}: use 1 to 10000", s.workers));
  }
  if (auto ok = check_range("--crash-share", s.crash_share, 0, 1, "a share from"); !ok) return ok;
  if (auto ok = check_range("--max-stage-ms", s.max_stage_ms, 0, 60000, "milliseconds from"); !ok) {
    return ok;
  }
  if (auto ok = check_range("--threshold-s", s.threshold_s, 0.01, 86400, "seconds from"); !ok) {
    return ok;
  }
  if (auto ok = check_range("--interval-s", s.interval_s, 0.01, 3600, "seconds from"); !ok)
    return ok;
  if (auto ok = check_range("--lease-s", s.lease_s, 0.1, 3600, "seconds from"); !ok) return ok;
  if (s.watchdogs < 1 || s.watchdogs > 2) {
    return error(errc::invalid_argument,
                 fmt::format("invalid --watchdogs {}: use 1, or 2 to run a standby", s.watchdogs));
  }
  if (s.drain_timeout_s != 0) {
    if (auto ok = check_range("--drain-timeout-s", s.drain_timeout_s, 0.1, 86400,
                              "0 (automatic) or seconds from");
        !ok) {
      return ok;
    }
  }

  // A healthy trace pauses in three stages; a threshold within that span
  // would orphan traces that a worker is still moving.
  const double busy_s = 3 * s.max_stage_ms / 1000.0;
  if (s.threshold_s <= busy_s) {
    return error(errc::invalid_argument,
                 fmt::format("invalid --threshold-s {}: a healthy trace may take up to {} s "
                             "(3 stages of --max-stage-ms {}); use a longer threshold or a "
                             "shorter --max-stage-ms",
                             s.threshold_s, busy_s, s.max_stage_ms));
  }

  return validate(make_watchdog_options(s));
}

watchdog_options make_watchdog_options(const demo_settings& s) {
  watchdog_options options;
  options.interval = to_ms(s.interval_s);
  options.sweep.threshold = to_ms(s.threshold_s);
  options.lease.lease = to_ms(s.lease_s);
  return options;
}

std::chrono::milliseconds drain_timeout(const demo_settings& s) {
  if (s.drain_timeout_s != 0) return to_ms(s.drain_timeout_s);
  const double expected_s = s.threshold_s + s.interval_s * 1.1 + s.lease_s;
  return to_ms(std::max(10.0, 2 * expected_s));
}

std::optional<crash_point> plan_crash(double crash_share, double crash_draw,
                                      double point_draw) noexcept {
  if (!(crash_draw < crash_share)) return std::nullopt;
  if (point_draw < 1.0 / 3.0) return crash_point::after_received;
  if (point_draw < 2.0 / 3.0) return crash_point::after_inference;
  return crash_point::after_egress;
}

std::string make_demo_prefix(std::mt19937_64& random) {
  // 48 random bits: two concurrent runs collide with a chance of 2^-48.
  const std::uint64_t bits = random() & 0xffff'ffff'ffffull;
  return fmt::format("twdemo-{:012x}", bits);
}

}  // namespace tracewatch::cli
