// UUIDv7 generation: bit layout, ordering within one millisecond, counter
// overflow, clock steps, fork() and many threads.

#include "tracewatch/id_generator.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

constexpr std::int64_t kPinnedMs = 1'764'876'000'123;  // 2025-12-04T19:20:00.123Z

// A clock the test sets by hand, shared by the copies an id_generator keeps.
struct manual_clock {
  std::shared_ptr<std::atomic<std::int64_t>> ms =
      std::make_shared<std::atomic<std::int64_t>>(kPinnedMs);

  void set(std::int64_t value) const { ms->store(value); }
  id_generator::clock_function function() const {
    return [ms = ms] { return std::chrono::system_clock::time_point(milliseconds(ms->load())); };
  }
};

id_generator::options pinned_options(const manual_clock& clock, int counter_bits = 42) {
  id_generator::options opts;
  opts.clock = clock.function();
  opts.counter_bits = counter_bits;
  return opts;
}

std::int64_t unix_ms(const trace_id& id) { return id.timestamp().time_since_epoch().count(); }

// The 42-bit counter: 12 bits of rand_a, then the top 30 bits of rand_b.
std::uint64_t counter42(const trace_id& id) {
  return ((id.high() & 0xFFF) << 30) | ((id.low() >> 32) & 0x3FFFFFFF);
}

// The 12-bit counter of a generator with counter_bits = 12: rand_a.
std::uint64_t counter12(const trace_id& id) { return id.high() & 0xFFF; }

void expect_strictly_increasing(const std::vector<trace_id>& ids) {
  for (std::size_t i = 1; i < ids.size(); ++i) {
    ASSERT_LT(ids[i - 1], ids[i]) << "at index " << i << ": " << ids[i - 1].to_string()
                                  << " then " << ids[i].to_string();
  }
}

TEST(IdGenerator, SetsVersionAndVariant) {
  id_generator generator;
  for (int i = 0; i < 1000; ++i) {
    const trace_id id = generator.next();
    ASSERT_EQ(id.version(), 7) << id.to_string();
    ASSERT_EQ(id.variant(), uuid_variant::rfc9562) << id.to_string();
    const trace_id from_thread = new_trace_id();
    ASSERT_EQ(from_thread.version(), 7) << from_thread.to_string();
    ASSERT_EQ(from_thread.variant(), uuid_variant::rfc9562) << from_thread.to_string();
  }
}

TEST(IdGenerator, StampsClockTime) {
  manual_clock clock;
  id_generator generator(pinned_options(clock));
  EXPECT_EQ(unix_ms(generator.next()), kPinnedMs);
  clock.set(kPinnedMs + 5);
  EXPECT_EQ(unix_ms(generator.next()), kPinnedMs + 5);
}

TEST(IdGenerator, StampsSystemTime) {
  const auto before = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
  const trace_id id = new_trace_id();
  const auto after = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
  EXPECT_GE(id.timestamp(), before);
  EXPECT_LE(id.timestamp(), after);
}

TEST(IdGenerator, ThreadGeneratorTracksSystemClock) {
  // Crosses many millisecond boundaries: each id must carry a millisecond
  // between the system clock readings taken just before and after it.
  for (int i = 0; i < 500'000; ++i) {
    const auto before = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
    const trace_id id = new_trace_id();
    const auto after = std::chrono::floor<milliseconds>(std::chrono::system_clock::now());
    ASSERT_GE(id.timestamp(), before) << "id " << i << " is stale: " << id.to_string();
    ASSERT_LE(id.timestamp(), after) << "id " << i << " is ahead: " << id.to_string();
  }
}

TEST(IdGenerator, IncreasesWithinOneMillisecond) {
  manual_clock clock;
  id_generator generator(pinned_options(clock));
  std::vector<trace_id> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(generator.next());

  expect_strictly_increasing(ids);
  for (const auto& id : ids) ASSERT_EQ(unix_ms(id), kPinnedMs) << id.to_string();
  EXPECT_EQ(counter42(ids.back()) - counter42(ids.front()), ids.size() - 1);
}

TEST(IdGenerator, NarrowCounterIncreasesPastOverflow) {
  manual_clock clock;
  id_generator generator(pinned_options(clock, 12));
  std::vector<trace_id> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(generator.next());

  // A 12-bit counter has room for at most 4,096 ids per millisecond, so
  // these borrow a few milliseconds, within the default 10 ms lead.
  expect_strictly_increasing(ids);
  EXPECT_GT(unix_ms(ids.back()), kPinnedMs);
  EXPECT_LE(unix_ms(ids.back()), kPinnedMs + id_generator::kDefaultMaxLead.count());
}

TEST(IdGenerator, SeedsCounterWithTopBitClear) {
  manual_clock clock;
  auto opts = pinned_options(clock);
  opts.random = [] { return ~std::uint64_t{0}; };
  id_generator generator(std::move(opts));
  EXPECT_EQ(counter42(generator.next()), (std::uint64_t{1} << 41) - 1);
}

TEST(IdGenerator, TakesTailFromRandomSource) {
  manual_clock clock;
  auto opts = pinned_options(clock);
  opts.random = [] { return std::uint64_t{0x0123456789ABCDEF}; };
  id_generator generator(std::move(opts));
  const trace_id id = generator.next();
  EXPECT_EQ(id.low() & 0xFFFFFFFF, 0x89ABCDEFu);
  EXPECT_EQ(counter42(id), std::uint64_t{0x0123456789ABCDEF} & ((std::uint64_t{1} << 41) - 1));
}

TEST(IdGenerator, CounterOverflowBorrowsNextMillisecond) {
  manual_clock clock;
  auto opts = pinned_options(clock, 12);
  opts.random = [] { return ~std::uint64_t{0}; };  // every seed is 0x7FF
  id_generator generator(std::move(opts));

  // Seeds 0x7FF to 0xFFF fit in the pinned millisecond: 2,049 ids.
  std::vector<trace_id> ids;
  for (int i = 0; i < 2049 + 2; ++i) ids.push_back(generator.next());
  expect_strictly_increasing(ids);
  EXPECT_EQ(unix_ms(ids[0]), kPinnedMs);
  EXPECT_EQ(counter12(ids[0]), 0x7FFu);
  EXPECT_EQ(unix_ms(ids[2048]), kPinnedMs);
  EXPECT_EQ(counter12(ids[2048]), 0xFFFu);
  EXPECT_EQ(unix_ms(ids[2049]), kPinnedMs + 1);
  EXPECT_EQ(counter12(ids[2049]), 0x7FFu);
  EXPECT_EQ(counter12(ids[2050]), 0x800u);
}

TEST(IdGenerator, WaitsForClockPastMaxLead) {
  // 2,049 ids per millisecond (see above) and a 2 ms lead: the first 3 x
  // 2,049 ids fill the pinned millisecond and two borrowed ones. The clock
  // advances by 1 ms only once the generator reads it again after that.
  constexpr int kIdsBeforeWait = 3 * 2049;
  auto reads = std::make_shared<int>(0);
  auto last_read = std::make_shared<std::int64_t>(0);
  id_generator::options opts;
  opts.counter_bits = 12;
  opts.max_lead = 2ms;
  opts.random = [] { return ~std::uint64_t{0}; };
  opts.clock = [reads, last_read] {
    *last_read = ++*reads <= kIdsBeforeWait + 1 ? kPinnedMs : kPinnedMs + 1;
    return std::chrono::system_clock::time_point(milliseconds(*last_read));
  };
  id_generator generator(std::move(opts));

  std::vector<trace_id> ids;
  for (int i = 0; i < kIdsBeforeWait + 1; ++i) {
    ids.push_back(generator.next());
    ASSERT_LE(unix_ms(ids.back()), *last_read + 2) << "id " << i << " leads the clock by > 2 ms";
  }
  expect_strictly_increasing(ids);
  EXPECT_EQ(unix_ms(ids[kIdsBeforeWait - 1]), kPinnedMs + 2);
  EXPECT_EQ(unix_ms(ids[kIdsBeforeWait]), kPinnedMs + 3);
  EXPECT_GT(*reads, kIdsBeforeWait + 1) << "the generator never read the clock again";
}

// Steps the clock back by `step` and checks that ids keep increasing on the
// held timestamp, then follow the clock again once it has caught up.
void check_clock_step_back(milliseconds step) {
  manual_clock clock;
  id_generator generator(pinned_options(clock));
  std::vector<trace_id> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(generator.next());

  clock.set(kPinnedMs - step.count());
  for (int i = 0; i < 100; ++i) ids.push_back(generator.next());
  clock.set(kPinnedMs - step.count() / 2);
  for (int i = 0; i < 100; ++i) ids.push_back(generator.next());
  clock.set(kPinnedMs);
  for (int i = 0; i < 100; ++i) ids.push_back(generator.next());

  expect_strictly_increasing(ids);
  for (const auto& id : ids) ASSERT_EQ(unix_ms(id), kPinnedMs) << id.to_string();

  clock.set(kPinnedMs + 1);
  const trace_id caught_up = generator.next();
  EXPECT_GT(caught_up, ids.back());
  EXPECT_EQ(unix_ms(caught_up), kPinnedMs + 1);
}

TEST(IdGenerator, ClockStepBackOneSecond) { check_clock_step_back(1s); }

TEST(IdGenerator, ClockStepBackOneHour) { check_clock_step_back(1h); }

TEST(IdGenerator, ClampsClockBefore1970) {
  manual_clock clock;
  clock.set(-5000);
  id_generator generator(pinned_options(clock));
  const trace_id first = generator.next();
  const trace_id second = generator.next();
  EXPECT_LT(first, second);
  EXPECT_LE(unix_ms(second), 1);
}

TEST(IdGenerator, RejectsInvalidOptions) {
  id_generator::options narrow;
  narrow.counter_bits = 11;
  EXPECT_THROW(id_generator{narrow}, std::invalid_argument);

  id_generator::options wide;
  wide.counter_bits = 43;
  EXPECT_THROW(id_generator{wide}, std::invalid_argument);

  id_generator::options negative_lead;
  negative_lead.max_lead = -1ms;
  EXPECT_THROW(id_generator{negative_lead}, std::invalid_argument);
}

TEST(IdGenerator, MoveContinuesSequence) {
  manual_clock clock;
  id_generator first(pinned_options(clock));
  const trace_id before = first.next();
  id_generator second(std::move(first));
  EXPECT_LT(before, second.next());
}

// Runs `generate` in a forked child and returns the ids it wrote back.
// Fails the test if the child does not finish within 30 s (a hang guard).
std::vector<trace_id> ids_from_child(const std::function<trace_id()>& generate, int count) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t child = fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    close(fds[0]);
    for (int i = 0; i < count; ++i) {
      const auto bytes = generate().bytes();
      if (write(fds[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) _exit(1);
    }
    _exit(0);
  }
  close(fds[1]);

  std::vector<std::uint8_t> data;
  std::array<std::uint8_t, 4096> chunk{};
  pollfd readable{fds[0], POLLIN, 0};
  while (true) {
    if (poll(&readable, 1, 30'000) <= 0) {
      kill(child, SIGKILL);
      break;
    }
    const ssize_t n = read(fds[0], chunk.data(), chunk.size());
    if (n <= 0) break;
    data.insert(data.end(), chunk.begin(), chunk.begin() + n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status)) << "child was killed: it hung or crashed";
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child could not write its ids";
  }

  std::vector<trace_id> ids;
  for (std::size_t offset = 0; offset + trace_id::kSize <= data.size(); offset += trace_id::kSize) {
    ids.push_back(trace_id::from_bytes(
        std::span<const std::uint8_t, trace_id::kSize>(data.data() + offset, trace_id::kSize)));
  }
  return ids;
}

// Checks that the parent's and the child's ids after a fork share nothing.
void expect_disjoint(std::vector<trace_id> parent, std::vector<trace_id> child) {
  std::sort(parent.begin(), parent.end());
  std::sort(child.begin(), child.end());
  std::vector<trace_id> common;
  std::set_intersection(parent.begin(), parent.end(), child.begin(), child.end(),
                        std::back_inserter(common));
  EXPECT_TRUE(common.empty()) << common.size() << " ids repeated, first "
                              << common.front().to_string();
}

TEST(IdGenerator, ChildAfterForkDoesNotRepeatParent) {
  // On a pinned clock, a child that kept the parent's counter and buffered
  // random bytes would return exactly the parent's next ids.
  manual_clock clock;
  id_generator generator(pinned_options(clock));
  const trace_id before_fork = generator.next();

  constexpr int kCount = 256;
  const auto child = ids_from_child([&] { return generator.next(); }, kCount);
  ASSERT_EQ(child.size(), static_cast<std::size_t>(kCount));
  std::vector<trace_id> parent;
  for (int i = 0; i < kCount; ++i) parent.push_back(generator.next());

  expect_disjoint(parent, child);
  expect_strictly_increasing(child);
  EXPECT_GT(child.front(), before_fork);
}

TEST(IdGenerator, ThreadGeneratorAfterForkDoesNotRepeatParent) {
  // The clock is not pinned here, so parent and child rarely share a
  // millisecond. The 32-bit random tails show the fork handling anyway: a
  // child that kept the parent's buffered random bytes would repeat the
  // parent's tails, while fresh ones coincide with probability ~2^-16.
  const trace_id before_fork = new_trace_id();

  constexpr int kCount = 256;
  const auto child = ids_from_child([] { return new_trace_id(); }, kCount);
  ASSERT_EQ(child.size(), static_cast<std::size_t>(kCount));
  std::vector<trace_id> parent;
  for (int i = 0; i < kCount; ++i) parent.push_back(new_trace_id());

  expect_disjoint(parent, child);
  expect_strictly_increasing(child);
  EXPECT_GT(child.front(), before_fork);

  auto tails = [](const std::vector<trace_id>& ids) {
    std::vector<trace_id> out;
    for (const auto& id : ids) out.emplace_back(0, id.low() & 0xFFFFFFFF);
    return out;
  };
  expect_disjoint(tails(parent), tails(child));
}

// Runs `per_thread` ids of `generate(thread_index)` on each of `threads`
// threads and returns each thread's ids in order.
template <class Generate>
std::vector<std::vector<trace_id>> generate_on_threads(int threads, int per_thread,
                                                       Generate generate) {
  std::vector<std::vector<trace_id>> ids(threads);
  std::vector<std::thread> workers;
  std::atomic<bool> go{false};
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ids[t].reserve(per_thread);
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < per_thread; ++i) ids[t].push_back(generate(t));
    });
  }
  go.store(true);
  for (auto& worker : workers) worker.join();
  return ids;
}

void expect_all_unique(const std::vector<std::vector<trace_id>>& per_thread) {
  std::vector<trace_id> all;
  for (const auto& ids : per_thread) all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  const auto duplicate = std::adjacent_find(all.begin(), all.end());
  EXPECT_EQ(duplicate, all.end()) << "duplicate id " << duplicate->to_string();
}

TEST(IdGeneratorConcurrency, ThreadsGenerateUniqueIncreasingIds) {
  const auto ids = generate_on_threads(4, 20'000, [](int) { return new_trace_id(); });
  for (const auto& thread_ids : ids) expect_strictly_increasing(thread_ids);
  expect_all_unique(ids);
}

TEST(IdGeneratorConcurrency, GeneratorsOnOneMillisecondStayUnique) {
  // Every id shares the millisecond, so only the random counter seeds and
  // tails keep the threads apart.
  manual_clock clock;
  std::vector<id_generator> generators;
  for (int t = 0; t < 4; ++t) generators.emplace_back(pinned_options(clock));
  const auto ids =
      generate_on_threads(4, 20'000, [&](int thread) { return generators[thread].next(); });
  for (const auto& thread_ids : ids) {
    expect_strictly_increasing(thread_ids);
    for (const auto& id : thread_ids) ASSERT_EQ(unix_ms(id), kPinnedMs);
  }
  expect_all_unique(ids);
}

}  // namespace
}  // namespace tracewatch
