// A rate limiter for repeated log lines: at most `max_lines` lines per key in
// each interval, where the key names the kind of line (such as the component
// and event). Lines over the limit are counted, and the next line let through
// for that key reports how many were suppressed before it.
//
// Each key has a fixed window: it opens at the key's first line and lasts
// `interval`; the first line after it opens the next window.
//
// Example (log_rate_limiter_test.cpp runs it):
//   log_rate_limiter limiter({.max_lines = 2, .interval = std::chrono::seconds(10)});
//   auto now = std::chrono::steady_clock::now();
//   limiter.admit("redis.timeout", now);                  // {allowed, suppressed 0}
//   limiter.admit("redis.timeout", now);                  // {allowed, suppressed 0}
//   limiter.admit("redis.timeout", now);                  // {not allowed}
//   limiter.admit("redis.timeout", now + 10s);            // {allowed, suppressed 1}
//
// Thread safety: every member may be called from any thread (one mutex).

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tracewatch {

class log_rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  struct options {
    std::size_t max_lines = 10;                  // lines let through per key and interval
    clock::duration interval = std::chrono::seconds(60);
    // Keys tracked at once. When a new key finds the table full, keys whose
    // window has ended and that have nothing to report are dropped. If that
    // frees no room, every further new key shares one overflow entry (key "").
    std::size_t max_keys = 1024;
  };

  struct decision {
    bool allowed = false;
    // When allowed: lines of this key suppressed since its last allowed line,
    // to be reported in this line. When not allowed: always 0.
    std::uint64_t suppressed = 0;
  };

  explicit log_rate_limiter(options opts) : options_(opts) {}

  // Decides whether a line with `key` may be written at `now`.
  decision admit(std::string_view key, clock::time_point now);

  // Returns every key with suppressed lines not yet reported, with their
  // counts, and resets those counts. A caller that logs periodically (say,
  // after each sweep) reports them so that a burst that stopped is not lost.
  std::vector<std::pair<std::string, std::uint64_t>> take_suppressed();

 private:
  struct window {
    clock::time_point start;
    std::size_t lines = 0;        // lines allowed in this window
    std::uint64_t suppressed = 0;  // lines suppressed since the last allowed one
  };

  window& find_or_insert(std::string_view key, clock::time_point now);

  options options_;
  std::mutex mutex_;
  std::unordered_map<std::string, window> windows_;
};

}  // namespace tracewatch
