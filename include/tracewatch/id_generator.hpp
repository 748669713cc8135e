// UUIDv7 generation (RFC 9562 section 5.7) with a per-generator counter.
//
// Layout of every id, most significant bit first:
//
//   48 bits  unix_ts_ms  Unix time in milliseconds, from the clock
//    4 bits  ver         0111
//   12 bits  counter     top 12 bits of the counter (the rand_a field)
//    2 bits  var         10
//   30 bits  counter     low 30 bits of the counter (top of the rand_b field)
//   32 bits  random      fresh random bits for every id
//
// Counter: RFC 9562 section 6.2 method 1, a fixed bit-length dedicated
// counter, 42 bits wide by default (the RFC allows 12 to 42). At the first id
// of each new millisecond the counter is seeded with 41 random bits. Its top
// bit stays clear as the RFC's rollover guard, so at least 2^41 ids fit in
// one millisecond. Every further id in that millisecond adds one, so ids from
// one generator are strictly increasing, even within one millisecond.
//
// Clock rules, so that no generator ever returns an id smaller than its last:
//   - The clock moved forward: take its time and seed a new counter.
//   - Same millisecond, or the clock stepped back (NTP, a manual change):
//     keep the last timestamp and increment the counter (RFC 9562 section
//     6.2, monotonic error checking). After a step back of D, the ids keep
//     the old timestamp until the clock has caught up, then follow it again.
//   - The counter is exhausted: borrow the next millisecond and seed a new
//     counter, as the RFC allows for counter rollover. Borrowing never puts
//     the timestamp more than `max_lead` (10 ms by default) ahead of the
//     clock: beyond that the generator sleeps in 100 µs steps until the clock
//     advances. At the default width this needs more than 2^41 ids in one
//     millisecond, which one thread cannot produce, so in practice it only
//     happens with narrow test widths.
//
// Uniqueness across generators (threads, processes, hosts): two ids from
// different generators collide only if they share the millisecond, the
// counter value and the 32 random bits. Counter seeds are independent and
// uniform over 2^41 values and the random bits are fresh. So one pair of ids
// from one millisecond collides with probability at most 2^-41 * 2^-32 =
// 2^-73, and N such ids contain a collision with probability below N^2 / 2^74
// (about 5e-11 for a million ids in the same millisecond). Order is kept only
// per generator: ids from different threads are ordered by millisecond, but
// not within one.
//
// Randomness: by default OpenSSL's RAND_bytes, a CSPRNG that OpenSSL seeds
// from the operating system (getrandom on Linux), read in 4 KiB blocks into
// a buffer owned by the generator, so there is no system call per id.
//
// fork(): a pthread_atfork handler marks every generator in the child as
// stale. On its next id the child's generator drops its buffered random
// bytes and seeds a new counter in a later millisecond than its last id, so
// parent and child never continue the same sequence. With an injected random
// source, the child's sequence is only as fresh as that source.
// NOTE: a child made by raw clone() or _Fork() skips pthread_atfork handlers,
// so such a child must not generate ids before it calls exec.
//
// These ids are identifiers, not secrets: within one millisecond only 32 bits
// of each id are unpredictable.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "tracewatch/trace_id.hpp"

namespace tracewatch {

class id_generator {
 public:
  // Returns the current wall-clock time. Times before 1970 count as 1970.
  using clock_function = std::function<std::chrono::system_clock::time_point()>;
  // Returns 64 uniformly random bits.
  using random_function = std::function<std::uint64_t()>;

  static constexpr int kMinCounterBits = 12;
  static constexpr int kMaxCounterBits = 42;
  static constexpr int kDefaultCounterBits = 42;
  static constexpr std::chrono::milliseconds kDefaultMaxLead{10};

  struct options {
    clock_function clock;    // empty: std::chrono::system_clock::now
    random_function random;  // empty: OpenSSL RAND_bytes, buffered in 4 KiB blocks
    // Counter width, kMinCounterBits to kMaxCounterBits. The random part of
    // each id is 74 - counter_bits bits.
    int counter_bits = kDefaultCounterBits;
    // How far borrowing may move the timestamp ahead of the clock, zero
    // or more.
    std::chrono::milliseconds max_lead = kDefaultMaxLead;
  };

  // A generator on the system clock and OpenSSL's CSPRNG.
  id_generator();
  // Throws std::invalid_argument if counter_bits is outside 12..42 or
  // max_lead is negative.
  explicit id_generator(options opts);
  ~id_generator();

  // Copying would let two generators continue one sequence.
  id_generator(const id_generator&) = delete;
  id_generator& operator=(const id_generator&) = delete;
  id_generator(id_generator&&) noexcept;
  id_generator& operator=(id_generator&&) noexcept;

  // Returns a version-7 id greater than every id this generator returned
  // before. May sleep while the counter is exhausted and the timestamp is
  // max_lead ahead of the clock (see the clock rules above).
  //
  // Thread safety: not synchronised. Use one generator per thread, or lock.
  // new_trace_id() (trace_id.hpp) keeps one generator per thread for you.
  // Throws std::runtime_error if the default random source fails, whatever
  // the injected random function throws, and std::overflow_error once the
  // 48-bit timestamp is exhausted (in the year 10889).
  trace_id next();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace tracewatch
