#include "cached_unix_ms_clock.hpp"

#include <atomic>
#include <ctime>

#if defined(TRACEWATCH_HAVE_TSC)
#include <cpuid.h>
#endif

namespace tracewatch::detail {

#if defined(TRACEWATCH_HAVE_TSC)
namespace {

using namespace std::chrono_literals;

// Time over which the tick rate is measured: clock_gettime jitter of well
// under a microsecond makes the error below 1e-4, inside the 1% margin.
constexpr std::chrono::nanoseconds kCalibrationSpan = 10ms;
// The window is computed with a rate 1% low, so it ends before the
// millisecond does even with calibration error or NTP slew (at most 0.05%).
constexpr double kRateMargin = 0.99;
// Rates outside 50 MHz to 20 GHz mean the measurement went wrong.
constexpr double kMinTicksPerNs = 0.05;
constexpr double kMaxTicksPerNs = 20.0;

// True if the TSC runs at a constant rate in every power state (CPUID
// 0x80000007, EDX bit 8), as the window computation requires.
bool has_invariant_tsc() noexcept {
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid(0x80000007, eax, ebx, ecx, edx);
  return (edx & (1u << 8)) != 0;
}

std::int64_t monotonic_ns() noexcept {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

}  // namespace

double tsc_ticks_per_ns() noexcept {
  // Positive once measured, negative when the TSC is unusable.
  static std::atomic<double> rate{0.0};
  if (const double known = rate.load(std::memory_order_relaxed); known != 0.0) {
    return known > 0.0 ? known : 0.0;
  }

  static const bool invariant = has_invariant_tsc();
  if (!invariant) {
    rate.store(-1.0, std::memory_order_relaxed);
    return 0.0;
  }

  // Every thread measures from the same starting point. The first call after
  // kCalibrationSpan has elapsed publishes the rate.
  struct start_point {
    std::uint64_t tsc;
    std::int64_t monotonic_ns;
  };
  static const start_point start{__rdtsc(), monotonic_ns()};
  const std::int64_t elapsed_ns = monotonic_ns() - start.monotonic_ns;
  if (elapsed_ns < kCalibrationSpan.count()) return 0.0;

  const double measured = static_cast<double>(__rdtsc() - start.tsc) / static_cast<double>(elapsed_ns);
  if (measured < kMinTicksPerNs || measured > kMaxTicksPerNs) {
    rate.store(-1.0, std::memory_order_relaxed);
    return 0.0;
  }
  rate.store(measured * kRateMargin, std::memory_order_relaxed);
  return measured * kRateMargin;
}

std::uint64_t cached_unix_ms_clock::refresh(std::uint64_t tsc) noexcept {
  // `tsc` was read before the clock, so the millisecond ends at least
  // `remaining` nanoseconds after it: the window can only end early.
  const auto now = std::chrono::system_clock::now();
  cached_ms_ = to_unix_ms(now);

  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch());
  const double ticks_per_ns = tsc_ticks_per_ns();
  if (ticks_per_ns <= 0.0 || since_epoch.count() < 0 || cached_ms_ == kMaxUnixMs) {
    window_ticks_ = 0;
    return cached_ms_;
  }
  const std::int64_t remaining_ns = 1'000'000 - since_epoch.count() % 1'000'000;
  window_start_ = tsc;
  window_ticks_ = static_cast<std::uint64_t>(static_cast<double>(remaining_ns) * ticks_per_ns);
  return cached_ms_;
}

#else

double tsc_ticks_per_ns() noexcept { return 0.0; }

#endif

}  // namespace tracewatch::detail
