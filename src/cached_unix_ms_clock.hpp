// The system clock in Unix milliseconds, read without a clock_gettime call
// while the time-stamp counter shows that the millisecond cannot have ended.
//
// clock_gettime(CLOCK_REALTIME) is most of the cost of an id (about 24 ns of
// 33 on a 2-core AMD EPYC KVM guest), while rdtsc costs about 10 ns. After
// each clock read, the clock stores the millisecond and the number of TSC
// ticks left until it ends, less 1% for calibration error and NTP slew.
// Until that many ticks have passed, now_ms() returns the stored millisecond.
//
// The tick rate is measured once per process, against CLOCK_MONOTONIC over
// the first 10 ms in which some thread reads this clock. Until then, and on
// CPUs without an invariant TSC or on other architectures, every call reads
// the system clock. A clock step shows at the next read, at most 1 ms later.
// NOTE: if a virtual machine migrates to a host with a slower TSC and no TSC
// scaling, the cached millisecond can lag by up to about 1 ms. The ids stay
// strictly increasing.

#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define TRACEWATCH_HAVE_TSC 1
#endif

#include "uuidv7_sequencer.hpp"

namespace tracewatch::detail {

// Ticks per nanosecond of the TSC, 1% low, or 0 while unknown or unusable.
// Measured on the first calls, shared by every thread.
double tsc_ticks_per_ns() noexcept;

// One per thread: not synchronised.
class cached_unix_ms_clock {
 public:
  std::uint64_t now_ms() noexcept {
#if defined(TRACEWATCH_HAVE_TSC)
    const std::uint64_t tsc = __rdtsc();
    // Unsigned: a TSC below window_start_ wraps to a large value and refreshes.
    if (tsc - window_start_ < window_ticks_) return cached_ms_;
    return refresh(tsc);
#else
    return to_unix_ms(std::chrono::system_clock::now());
#endif
  }

 private:
#if defined(TRACEWATCH_HAVE_TSC)
  std::uint64_t refresh(std::uint64_t tsc) noexcept;

  std::uint64_t cached_ms_ = 0;
  std::uint64_t window_start_ = 0;  // TSC at the last clock read
  std::uint64_t window_ticks_ = 0;  // ticks after it in which cached_ms_ is current
#endif
};

}  // namespace tracewatch::detail
