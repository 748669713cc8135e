// id_generator, and the per-thread generators behind new_trace_id().

#include "tracewatch/id_generator.hpp"

#include <pthread.h>

#include <array>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "cached_unix_ms_clock.hpp"
#include "uuidv7_sequencer.hpp"

namespace tracewatch {
namespace {

// How long a generator sleeps before it reads the clock again while it is
// max_lead ahead of it.
constexpr std::chrono::microseconds kLeadWaitStep{100};

// Incremented in the child process after each fork(). Every generator keeps
// the value it last read, so a change shows that it now runs in a child.
// It has its own cache line because it is read for every id and written
// only in a fork, so it must not share a line with data that threads write.
struct alignas(64) fork_counter {
  std::atomic<std::uint64_t> generation{0};
};
fork_counter fork_count;

void register_fork_handler() {
  static const int registered = pthread_atfork(
      nullptr, nullptr, [] { fork_count.generation.fetch_add(1, std::memory_order_relaxed); });
  if (registered != 0) {
    throw std::runtime_error("pthread_atfork failed: cannot make trace id generators fork-safe");
  }
}

std::uint64_t current_fork_generation() noexcept {
  return fork_count.generation.load(std::memory_order_relaxed);
}

// Random words from OpenSSL's CSPRNG, fetched in blocks. OpenSSL seeds its
// generator from the operating system (getrandom on Linux) and reseeds it
// after fork() on its own. discard() drops the words already fetched.
class random_buffer {
 public:
  std::uint64_t next() {
    if (position_ == kWords) refill();
    return words_[position_++];
  }

  void discard() noexcept { position_ = kWords; }

 private:
  // 4 KiB per RAND_bytes call. With OpenSSL 3.0 on a 2-core AMD EPYC KVM
  // guest, 4 KiB calls cost about 0.3 ns per byte and 256-byte calls 2.7 ns.
  static constexpr std::size_t kWords = 512;

  void refill() {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(words_.data()),
                   static_cast<int>(sizeof(words_))) != 1) {
      char reason[256] = "unknown error";
      if (const unsigned long code = ERR_get_error(); code != 0) {
        ERR_error_string_n(code, reason, sizeof(reason));
      }
      throw std::runtime_error(std::string("cannot generate trace ids: OpenSSL RAND_bytes failed (") +
                               reason + "); check that the kernel random source is available");
    }
    position_ = 0;
  }

  std::array<std::uint64_t, kWords> words_;
  std::size_t position_ = kWords;
};

void wait_for_clock() { std::this_thread::sleep_for(kLeadWaitStep); }

// The generator of one thread. Aligned to a cache line so that two threads'
// generators never share one.
struct alignas(64) thread_generator {
  detail::uuidv7_sequencer sequencer{id_generator::kDefaultCounterBits,
                                     id_generator::kDefaultMaxLead};
  detail::cached_unix_ms_clock clock;
  std::uint64_t fork_generation = current_fork_generation();
  random_buffer random;

  trace_id next() {
    if (const std::uint64_t generation = current_fork_generation();
        generation != fork_generation) [[unlikely]] {
      fork_generation = generation;
      random.discard();
      sequencer.restart_counter();
    }
    return sequencer.next([this] { return clock.now_ms(); }, [this] { return random.next(); },
                          wait_for_clock);
  }
};

thread_generator& this_thread_generator() {
  thread_local std::unique_ptr<thread_generator> generator;
  if (!generator) [[unlikely]] {
    register_fork_handler();
    generator = std::make_unique<thread_generator>();
  }
  return *generator;
}

}  // namespace

struct id_generator::state {
  detail::uuidv7_sequencer sequencer;
  clock_function clock;
  random_function random;
  std::uint64_t fork_generation = current_fork_generation();
  // Used only when no random function was injected.
  random_buffer buffer;

  state(int counter_bits, std::chrono::milliseconds max_lead)
      : sequencer(counter_bits, max_lead) {}
};

id_generator::id_generator() : id_generator(options{}) {}

id_generator::id_generator(options opts) {
  if (opts.counter_bits < kMinCounterBits || opts.counter_bits > kMaxCounterBits) {
    throw std::invalid_argument("id_generator: counter_bits is " +
                                std::to_string(opts.counter_bits) + ", but must be 12 to 42");
  }
  if (opts.max_lead < std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("id_generator: max_lead is " +
                                std::to_string(opts.max_lead.count()) +
                                " ms, but must be zero or more");
  }
  register_fork_handler();

  state_ = std::make_unique<state>(opts.counter_bits, opts.max_lead);
  state_->clock = opts.clock ? std::move(opts.clock) : clock_function(std::chrono::system_clock::now);
  if (opts.random) {
    state_->random = std::move(opts.random);
  } else {
    // The state lives on the heap, so the pointer survives moves of *this.
    state_->random = [buffer = &state_->buffer] { return buffer->next(); };
  }
}

id_generator::~id_generator() = default;
id_generator::id_generator(id_generator&&) noexcept = default;
id_generator& id_generator::operator=(id_generator&&) noexcept = default;

trace_id id_generator::next() {
  state& s = *state_;
  if (const std::uint64_t generation = current_fork_generation(); generation != s.fork_generation) {
    s.fork_generation = generation;
    s.buffer.discard();
    s.sequencer.restart_counter();
  }
  return s.sequencer.next([&s] { return detail::to_unix_ms(s.clock()); },
                          [&s] { return s.random(); }, wait_for_clock);
}

trace_id new_trace_id() { return this_thread_generator().next(); }

std::string generate_trace_id() {
  std::string text(trace_id::kTextSize, '\0');
  new_trace_id().format_to(std::span<char, trace_id::kTextSize>(text.data(), trace_id::kTextSize));
  return text;
}

void generate_trace_id(std::span<char, trace_id::kTextSize> out) { new_trace_id().format_to(out); }

}  // namespace tracewatch
