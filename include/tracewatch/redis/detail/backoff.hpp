// Reconnect delays: capped exponential backoff with full jitter.
//
// Attempt n (0 for the first retry after a failure) waits a uniformly random
// time in [0, min(max_delay, min_delay * 2^n)]. The random spread keeps a
// fleet of clients that lost the same server from reconnecting in lockstep;
// the cap bounds how long a recovered server waits for its clients.
//
// Example (backoff_test.cpp runs it):
//   backoff_ceiling(0, 50ms, 5000ms);        // 50ms
//   backoff_ceiling(3, 50ms, 5000ms);        // 400ms
//   backoff_ceiling(20, 50ms, 5000ms);       // 5000ms
//   backoff_delay(3, 50ms, 5000ms, 0.5);     // 200ms

#pragma once

#include <chrono>

namespace tracewatch::redis::detail {

// Returns min(max_delay, min_delay * 2^attempt), without overflow for any
// attempt. A max_delay below min_delay caps at max_delay.
std::chrono::milliseconds backoff_ceiling(unsigned attempt, std::chrono::milliseconds min_delay,
                                          std::chrono::milliseconds max_delay) noexcept;

// Returns the delay before attempt `attempt`: `unit_random` (in [0, 1),
// clamped into it) scaled onto [0, backoff_ceiling(...)].
std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds min_delay,
                                        std::chrono::milliseconds max_delay,
                                        double unit_random) noexcept;

}  // namespace tracewatch::redis::detail
