// The UUIDv7 state machine shared by id_generator and the per-thread
// generators behind new_trace_id(). It does no I/O: the caller passes in how
// to read the clock, draw random bits and wait. The rules it implements are
// documented in tracewatch/id_generator.hpp.

#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "tracewatch/trace_id.hpp"

namespace tracewatch::detail {

// Largest value of the 48-bit unix_ts_ms field: 10889-08-02T05:31:50.655Z.
inline constexpr std::uint64_t kMaxUnixMs = (std::uint64_t{1} << 48) - 1;

// Converts a clock reading to the unix_ts_ms field, clamped to 0..kMaxUnixMs.
inline std::uint64_t to_unix_ms(std::chrono::system_clock::time_point now) noexcept {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(now.time_since_epoch()).count();
  if (ms < 0) return 0;
  return std::min(static_cast<std::uint64_t>(ms), kMaxUnixMs);
}

class uuidv7_sequencer {
 public:
  // REQUIRES: 12 <= counter_bits <= 42 and max_lead >= 0, checked by the caller.
  uuidv7_sequencer(int counter_bits, std::chrono::milliseconds max_lead) noexcept
      : counter_max_((std::uint64_t{1} << counter_bits) - 1),
        seed_mask_(counter_max_ >> 1),
        rand_a_shift_(counter_bits - 12),
        low_counter_mask_((std::uint64_t{1} << (counter_bits - 12)) - 1),
        tail_bits_(74 - counter_bits),
        tail_mask_((std::uint64_t{1} << (74 - counter_bits)) - 1),
        max_lead_ms_(std::min(static_cast<std::uint64_t>(max_lead.count()), kMaxUnixMs)),
        counter_(counter_max_) {}

  // Returns the next id. `read_clock` returns the unix_ts_ms of now (see
  // to_unix_ms), `next_random` 64 random bits, and `wait` pauses before the
  // clock is read again while the generator is max_lead ahead of it.
  template <class ReadClock, class NextRandom, class Wait>
  trace_id next(ReadClock&& read_clock, NextRandom&& next_random, Wait&& wait) {
    const std::uint64_t now = read_clock();
    if (now > last_ms_) {
      // The clock moved forward: follow it with a fresh counter.
      last_ms_ = now;
      counter_ = next_random() & seed_mask_;
    } else if (counter_ < counter_max_) {
      // Same millisecond, or the clock stepped back: hold the timestamp.
      ++counter_;
    } else {
      borrow_next_millisecond(now, read_clock, next_random, wait);
    }
    return compose(next_random());
  }

  // Makes the next id start a new counter, as if this one were exhausted.
  // Called in a child process after fork().
  void restart_counter() noexcept { counter_ = counter_max_; }

 private:
  // The counter of last_ms_ is used up: move to the next millisecond, waiting
  // for the clock if that would lead it by more than max_lead_ms_.
  template <class ReadClock, class NextRandom, class Wait>
  void borrow_next_millisecond(std::uint64_t now, ReadClock& read_clock, NextRandom& next_random,
                               Wait& wait) {
    if (last_ms_ >= kMaxUnixMs) {
      throw std::overflow_error("UUIDv7 timestamp field exhausted: the clock is past 10889-08-02");
    }
    while (last_ms_ + 1 > now + max_lead_ms_) {
      wait();
      now = read_clock();
    }
    last_ms_ = std::max(now, last_ms_ + 1);
    counter_ = next_random() & seed_mask_;
  }

  trace_id compose(std::uint64_t random) const noexcept {
    const std::uint64_t high = (last_ms_ << 16) | 0x7000 | (counter_ >> rand_a_shift_);
    const std::uint64_t low = 0x8000000000000000ULL |
                              ((counter_ & low_counter_mask_) << tail_bits_) |
                              (random & tail_mask_);
    return trace_id(high, low);
  }

  std::uint64_t counter_max_;       // 2^counter_bits - 1
  std::uint64_t seed_mask_;         // counter seeds keep the top bit clear
  int rand_a_shift_;                // counter bits below the 12 in rand_a
  std::uint64_t low_counter_mask_;  // those low counter bits, placed in rand_b
  int tail_bits_;                   // random bits at the end of each id
  std::uint64_t tail_mask_;
  std::uint64_t max_lead_ms_;

  std::uint64_t last_ms_ = 0;  // timestamp of the last id
  std::uint64_t counter_;      // counter of the last id, exhausted at the start
};

}  // namespace tracewatch::detail
