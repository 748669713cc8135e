// The Lua scripts behind every state change. Each runs atomically inside
// Redis, so a sweep and a completion on the same trace cannot interleave.
// Timestamps come from the server's TIME, so host clocks do not matter.

#pragma once

#include "tracewatch/redis/connection.hpp"

namespace tracewatch::scripts {

// KEYS: trace key, index key.
// ARGV: id, state, failsafe TTL (s), index kind ("set" or "zset"), then
//       metadata field and value pairs.
// Returns {1, created_at} when created, {0} when the trace exists already.
const redis::script& create();

// KEYS: trace key.  ARGV: state.
// Returns {1, previous state} when applied, {0} when the trace does not
// exist, {2, terminal state} when it is finished already.
const redis::script& advance();

// KEYS: trace key, index key.
// ARGV: id, terminal state, terminal TTL (s), index kind, error text ("" for
//       none).
// Returns {1, previous state}, {0} (not found) or {2, terminal state}. The
// id leaves the index in every case.
const redis::script& finish();

// One sweep batch over ids read from a set index.
// KEYS: index key, then the trace key of each id.
// ARGV: threshold (s), terminal TTL (s), index kind, then the ids.
// Returns {stale, finished, live, {id, age_s, …orphans}, {id, reason, …malformed}}.
const redis::script& sweep_batch();

// One sweep step over a sorted-set index: reads at most `limit` entries
// older than the threshold, skipping the first `offset` of them, and treats
// them as sweep_batch() does. Entries that stay in the index (malformed or
// live) are skipped by the next step through `offset`, so they cannot stall
// the sweep.
// KEYS: index key.
// ARGV: threshold (s), terminal TTL (s), limit, trace key prefix (the id is
//       appended), offset, failsafe TTL (ms). An entry whose hash is missing
//       leaves the index only when its score is older than the failsafe TTL.
// Returns sweep_batch()'s reply followed by the number of entries read and
// the number of them left in the index.
const redis::script& sweep_sorted();

}  // namespace tracewatch::scripts
