#include "tracewatch/log_rate_limiter.hpp"

namespace tracewatch {

log_rate_limiter::window& log_rate_limiter::find_or_insert(std::string_view key,
                                                           clock::time_point now) {
  std::string owned(key);
  if (auto it = windows_.find(owned); it != windows_.end()) return it->second;

  // Make room by dropping keys whose window ended and that owe no report.
  if (windows_.size() >= options_.max_keys) {
    std::erase_if(windows_, [&](const auto& entry) {
      return entry.second.suppressed == 0 && now - entry.second.start >= options_.interval;
    });
  }
  if (windows_.size() >= options_.max_keys) owned.clear();  // the shared overflow entry

  auto [it, inserted] = windows_.try_emplace(std::move(owned));
  if (inserted) it->second.start = now;
  return it->second;
}

log_rate_limiter::decision log_rate_limiter::admit(std::string_view key, clock::time_point now) {
  std::lock_guard lock(mutex_);
  window& w = find_or_insert(key, now);

  if (now - w.start >= options_.interval) {
    w.start = now;
    w.lines = 0;
  }
  if (w.lines >= options_.max_lines) {
    ++w.suppressed;
    return {};
  }

  ++w.lines;
  decision result{true, w.suppressed};
  w.suppressed = 0;
  return result;
}

std::vector<std::pair<std::string, std::uint64_t>> log_rate_limiter::take_suppressed() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::uint64_t>> reports;
  for (auto& [key, w] : windows_) {
    if (w.suppressed == 0) continue;
    reports.emplace_back(key, w.suppressed);
    w.suppressed = 0;
  }
  return reports;
}

}  // namespace tracewatch
