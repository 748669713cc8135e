#include "tracewatch/redis/detail/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tracewatch::redis::detail {

std::chrono::milliseconds backoff_ceiling(unsigned attempt, std::chrono::milliseconds min_delay,
                                          std::chrono::milliseconds max_delay) noexcept {
  const std::int64_t floor = std::max<std::int64_t>(min_delay.count(), 0);
  const std::int64_t cap = std::max<std::int64_t>(max_delay.count(), 0);
  if (floor == 0) return std::chrono::milliseconds(0);
  std::int64_t ceiling = floor;
  // Doubling stops once the cap is reached, so this runs at most ~63 times.
  for (unsigned i = 0; i < attempt && ceiling < cap; ++i) ceiling *= 2;
  return std::chrono::milliseconds(std::min(ceiling, cap));
}

std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds min_delay,
                                        std::chrono::milliseconds max_delay,
                                        double unit_random) noexcept {
  if (!(unit_random >= 0.0)) unit_random = 0.0;  // also catches NaN
  if (unit_random >= 1.0) unit_random = std::nextafter(1.0, 0.0);
  const auto ceiling = backoff_ceiling(attempt, min_delay, max_delay);
  const auto scaled = static_cast<double>(ceiling.count()) * unit_random;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(std::floor(scaled))));
}

}  // namespace tracewatch::redis::detail
