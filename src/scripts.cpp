#include "scripts.hpp"

namespace tracewatch::scripts {
namespace {

// Shared Lua helpers, prepended to the scripts that need them.
//   now(): the server's TIME as {text, seconds, milliseconds}; the text
//   matches Python's str(time.time()) closely enough for float() to read it.
//   drop(kind, key, id): removes id from a set or sorted-set index and
//   returns how many entries were removed.
constexpr const char* kHelpers = R"lua(
local function now()
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  return t[1] .. '.' .. string.format('%06d', usec), sec + usec / 1e6, sec * 1000 + math.floor(usec / 1000)
end
local function drop(kind, key, id)
  if kind == 'zset' then return redis.call('ZREM', key, id) end
  return redis.call('SREM', key, id)
end
)lua";

constexpr const char* kCreate = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
local text, _, ms = now()
local fields = {'state', ARGV[2], 'created_at', text}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == 'zset' then
  redis.call('ZADD', KEYS[2], ms, ARGV[1])
else
  redis.call('SADD', KEYS[2], ARGV[1])
end
return {1, text}
)lua";

constexpr const char* kAdvance = R"lua(
local current = redis.call('HGET', KEYS[1], 'state')
if not current and redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
if current == 'COMPLETED' or current == 'ERRORED' then
  return {2, current}
end
local text = now()
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', text)
return {1, current or ''}
)lua";

constexpr const char* kFinish = R"lua(
local current = redis.call('HGET', KEYS[1], 'state')
if not current and redis.call('EXISTS', KEYS[1]) == 0 then
  drop(ARGV[4], KEYS[2], ARGV[1])
  return {0}
end
if current == 'COMPLETED' or current == 'ERRORED' then
  drop(ARGV[4], KEYS[2], ARGV[1])
  return {2, current}
end
local text = now()
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', text, 'error', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', text)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
drop(ARGV[4], KEYS[2], ARGV[1])
return {1, current or ''}
)lua";

// The per-id decision shared by both sweep scripts. Malformed traces are
// reported and left alone: the sweep does not destroy data it cannot read,
// and the failsafe TTL, if set, still expires a malformed hash. With keep_missing a
// missing hash counts as live instead of stale: the sorted sweep sets it for
// entries younger than the failsafe TTL, whose hash cannot have expired yet.
// On a cluster such a hash may be on its way to another node in a slot
// migration, while its index entry is still here.
constexpr const char* kSweepDecide = R"lua(
local function sweep_one(index, kind, key, id, now_text, now_s, threshold, ttl, keep_missing, out)
  -- One HMGET decides most ids; pcall turns an error into a value.
  local fields = redis.pcall('HMGET', key, 'state', 'created_at')
  if fields.err then
    if string.find(fields.err, 'WRONGTYPE', 1, true) then
      out.malformed[#out.malformed + 1] = id
      out.malformed[#out.malformed + 1] = 'wrong_type:' .. redis.call('TYPE', key).ok
    else
      -- On a cluster, the key of a slot in migration may be on the other
      -- node already: leave the entry for a later pass.
      out.live = out.live + 1
    end
    return
  end
  local state, created = fields[1], fields[2]
  if not state and not created and redis.call('EXISTS', key) == 0 then
    if keep_missing then
      out.live = out.live + 1
    else
      out.stale = out.stale + drop(kind, index, id)
    end
    return
  end
  if state == 'COMPLETED' or state == 'ERRORED' then
    out.finished = out.finished + drop(kind, index, id)
    return
  end
  if not state then
    out.malformed[#out.malformed + 1] = id
    out.malformed[#out.malformed + 1] = 'missing_state'
    return
  end
  local created_s = created and tonumber(created)
  if not created_s or created_s ~= created_s or created_s == math.huge or created_s == -math.huge then
    out.malformed[#out.malformed + 1] = id
    out.malformed[#out.malformed + 1] = 'bad_created_at'
    return
  end
  local age = now_s - created_s
  if age <= threshold then
    out.live = out.live + 1
    return
  end
  redis.call('HSET', key, 'state', 'ERRORED', 'error', 'orphaned', 'finished_at', now_text)
  redis.call('EXPIRE', key, ttl)
  drop(kind, index, id)
  out.orphans[#out.orphans + 1] = id
  out.orphans[#out.orphans + 1] = string.format('%.3f', age)
end
local function reply(out)
  return {out.stale, out.finished, out.live, out.orphans, out.malformed}
end
)lua";

constexpr const char* kSweepBatch = R"lua(
local now_text, now_s = now()
local threshold, ttl, kind = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local out = {stale = 0, finished = 0, live = 0, orphans = {}, malformed = {}}
for i = 4, #ARGV do
  sweep_one(KEYS[1], kind, KEYS[i - 2], ARGV[i], now_text, now_s, threshold, ttl, false, out)
end
return reply(out)
)lua";

constexpr const char* kSweepSorted = R"lua(
local now_text, now_s, now_ms = now()
local threshold, ttl, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local cutoff = now_ms - math.floor(threshold * 1000)
local expired_before = now_ms - tonumber(ARGV[6])
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'WITHSCORES',
                           'LIMIT', tonumber(ARGV[5]), limit)
local out = {stale = 0, finished = 0, live = 0, orphans = {}, malformed = {}}
for i = 1, #entries, 2 do
  local id = entries[i]
  local keep_missing = tonumber(entries[i + 1]) > expired_before
  sweep_one(KEYS[1], 'zset', ARGV[4] .. id, id, now_text, now_s, threshold, ttl, keep_missing, out)
end
local r = reply(out)
r[6] = #entries / 2
r[7] = out.live + #out.malformed / 2
return r
)lua";

std::string with_helpers(std::initializer_list<const char*> parts) {
  std::string source = kHelpers;
  for (const char* part : parts) source += part;
  return source;
}

}  // namespace

const redis::script& create() {
  static const redis::script s(with_helpers({kCreate}));
  return s;
}

const redis::script& advance() {
  static const redis::script s(with_helpers({kAdvance}));
  return s;
}

const redis::script& finish() {
  static const redis::script s(with_helpers({kFinish}));
  return s;
}

const redis::script& sweep_batch() {
  static const redis::script s(with_helpers({kSweepDecide, kSweepBatch}));
  return s;
}

const redis::script& sweep_sorted() {
  static const redis::script s(with_helpers({kSweepDecide, kSweepSorted}));
  return s;
}

}  // namespace tracewatch::scripts
