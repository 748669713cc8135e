// The sweeper: finds traces abandoned by a crashed worker, marks them
// ERRORED and retires them, so nothing leaks.
//
// A pass walks the index in batches and decides every id inside one Lua
// script per batch, on the server's clock:
//   - hash missing          -> the id leaves the index (stale);
//   - COMPLETED or ERRORED  -> the id leaves the index (finished);
//   - older than threshold  -> state ERRORED, error=orphaned, finished_at,
//                              terminal TTL, the id leaves the index, and a
//                              warning `trace_orphaned trace_id=… age_s=…`;
//   - malformed (wrong key type, no state, created_at not a number)
//                           -> counted, logged once per id, left alone;
//   - otherwise             -> live, untouched.
// Because the decision and the write happen in one script, a sweep never
// overwrites a trace that a worker completed a moment earlier.
//
// Reading every hash is what a compat sweep costs: 5 to 7 µs per id on the
// machine of docs/benchmarks.md. Most ids in the index belong to traces in flight, created seconds
// ago, and a UUIDv7 carries its creation time. So by default the compat
// sweep sends to the script only the ids that can be overdue, and leaves
// unread (`skipped`) every version-7 id whose embedded time lies between
// now - threshold and now, on the server's clock. Ids of other versions
// (the reference module writes version 4), and ids whose time is ahead of
// the server's, are always read. The cost: an id minted on a host whose
// clock runs X ahead of the Redis server's is examined up to X later, never
// later than twice the threshold after its creation. The traces that wait
// this way are orphans, and finished traces that a client left in the index.
// Set read_every_id to read every id.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "tracewatch/error.hpp"
#include "tracewatch/layout.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/redis/connection.hpp"

namespace tracewatch {

struct sweep_options {
  // Age after which a non-terminal trace is an orphan.
  std::chrono::milliseconds threshold{std::chrono::seconds(1800)};
  // Ids per script call. See docs/benchmarks.md for the measured cost of one
  // call at this size; it stays within a few milliseconds.
  std::uint32_t batch_size = 250;
  // Index entries asked for per SSCAN in the compat layout.
  std::uint32_t scan_count = 1000;
  // Compat layout: read every id, including those younger than the
  // threshold by their UUIDv7 time (see the top of this file).
  bool read_every_id = false;
  // Shards swept at once in the sharded layout.
  std::uint32_t shard_parallelism = 8;
};

// Checks the options: threshold of at least 1 ms, batch size and scan count
// 1 to 10000, shard parallelism 1 to 256.
result<void> validate(const sweep_options& options);

// Whether a compat sweep may leave `id` unread at `now`: a version-7 id whose
// embedded time lies in (now - threshold, now]. Any other text, including
// an id that does not parse, is read.
bool young_by_id_time(std::string_view id, std::chrono::sys_time<std::chrono::milliseconds> now,
                      std::chrono::milliseconds threshold);

struct orphan_report {
  std::string id;
  double age_s = 0;
};

// What one pass did.
struct sweep_summary {
  std::uint64_t scanned = 0;    // ids read from the index (a repeated id counts again)
  std::uint64_t orphaned = 0;   // marked ERRORED by this pass
  std::uint64_t stale = 0;      // removed because the hash is gone
  std::uint64_t finished = 0;   // removed because the trace is COMPLETED or ERRORED
  std::uint64_t malformed = 0;  // left alone because the data cannot be read
  std::uint64_t live = 0;       // read, and younger than the threshold
  std::uint64_t skipped = 0;    // left unread: young by their UUIDv7 time
  std::uint64_t batches = 0;    // script calls
  bool stopped_early = false;   // the stop predicate ended the pass
  std::chrono::steady_clock::duration duration{};
  std::vector<orphan_report> orphans;  // the traces this pass marked ERRORED
};

class sweeper {
 public:
  // `client` must outlive the sweeper. Throws std::invalid_argument when the
  // options fail validate().
  sweeper(redis::client& client, registry_options registry, sweep_options options = {},
          logger log = {});

  // Runs one pass. `should_stop` is checked between batches; when it returns
  // true the pass ends after the batch in flight and the summary says
  // stopped_early. A connection error ends the pass with that error; the
  // batches done before it stay done.
  // Must be called from the client's executor; one pass at a time.
  asio::awaitable<result<sweep_summary>> async_sweep(std::function<bool()> should_stop = {});

  const sweep_options& options() const noexcept { return options_; }

 private:
  asio::awaitable<result<void>> async_sweep_set(sweep_summary& summary,
                                                const std::function<bool()>& should_stop);
  asio::awaitable<result<void>> async_sweep_sorted(sweep_summary& summary,
                                                   const std::function<bool()>& should_stop);
  asio::awaitable<result<void>> async_sweep_shard(std::uint32_t shard, sweep_summary& summary,
                                                  const std::function<bool()>& should_stop);
  // The server's clock now, from its TIME at the start of the pass plus the
  // time elapsed on this host's steady clock.
  std::chrono::sys_time<std::chrono::milliseconds> server_now() const;
  // Adds one script reply to the summary and logs orphans and new malformed ids.
  result<void> account(const redis::reply& reply, sweep_summary& summary);

  redis::client& client_;
  registry_options registry_;
  sweep_options options_;
  logger log_;
  std::unique_ptr<tracewatch::layout> layout_;
  std::string threshold_arg_;
  std::string ttl_arg_;
  std::string failsafe_ms_arg_;
  std::chrono::sys_time<std::chrono::milliseconds> pass_server_start_{};
  std::chrono::steady_clock::time_point pass_steady_start_{};
  // Malformed ids already logged, so that each is logged once. Bounded: it is
  // cleared when it reaches kMaxRemembered entries.
  std::unordered_set<std::string> malformed_logged_;
};

}  // namespace tracewatch
