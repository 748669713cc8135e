// One sweep pass.
//
// Budget: no single Redis command may block the server for more than a few
// milliseconds, so the work is cut into batches of sweep_options::batch_size
// ids, one script call each. The set index (compat) is walked with SSCAN of
// sweep_options::scan_count entries. Ids young by their UUIDv7 time stay
// unread (see sweeper.hpp), and the rest of each page goes to the script.
// The next SSCAN is sent while the current page's scripts run, so Redis
// never waits on this process between pages. The sorted-set index
// (sharded) is read per shard with ZRANGEBYSCORE inside the script, so a
// pass reads only the overdue entries.
//
// A pass ends when:
//   1. every index has been walked (SSCAN cursor back to 0, or a shard step
//      that read fewer entries than its limit);
//   2. the stop predicate returns true, checked between batches;
//   3. a request fails (connection lost, timeout); batches already done stay
//      done, and the next pass starts over.
// SSCAN may return an id twice; the second visit finds it gone or finished
// and counts nothing.

#include "tracewatch/sweeper.hpp"

#include <algorithm>
#include <atomic>
#include <span>
#include <stdexcept>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "scripts.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

constexpr std::size_t kMaxRemembered = 100000;  // malformed ids remembered for log-once

// Replies of the sweep scripts: {stale, finished, live, orphans, malformed, …}.
constexpr std::size_t kReplyStale = 0;
constexpr std::size_t kReplyFinished = 1;
constexpr std::size_t kReplyLive = 2;
constexpr std::size_t kReplyOrphans = 3;
constexpr std::size_t kReplyMalformed = 4;
constexpr std::size_t kReplyRead = 5;  // sorted sweep only: entries read
constexpr std::size_t kReplyKept = 6;  // sorted sweep only: entries left in the index

struct scan_result {
  std::string cursor;
  std::vector<std::string> ids;
};

asio::awaitable<result<scan_result>> async_scan(redis::client& client, const std::string& key,
                                                std::string cursor, std::uint32_t count) {
  redis::request req;
  req.push("SSCAN", key, cursor, "COUNT", count);
  auto replies = co_await client.async_exec(req, key);
  if (!replies) co_return replies.error();
  const auto& r = (*replies)[0];
  if (r.is_error()) co_return error(errc::server_error, r.str);
  if (!r.is_array() || r.elements.size() != 2) {
    co_return error(errc::protocol_error, "unexpected reply to SSCAN of the index");
  }
  scan_result out;
  out.cursor = r.elements[0].str;
  out.ids.reserve(r.elements[1].elements.size());
  for (const auto& e : r.elements[1].elements) out.ids.push_back(e.str);
  co_return out;
}

asio::awaitable<result<std::chrono::sys_time<std::chrono::milliseconds>>> async_server_time(
    redis::client& client, const std::string& key) {
  redis::request req;
  req.push("TIME");
  auto replies = co_await client.async_exec(req, key);
  if (!replies) co_return replies.error();
  const auto& r = (*replies)[0];
  if (r.is_error()) co_return error(errc::server_error, r.str);
  if (!r.is_array() || r.elements.size() != 2) {
    co_return error(errc::protocol_error, "unexpected reply to TIME");
  }
  try {
    const auto sec = std::stoll(r.elements[0].str);
    const auto usec = std::stoll(r.elements[1].str);
    co_return std::chrono::sys_time<std::chrono::milliseconds>(
        std::chrono::milliseconds(sec * 1000 + usec / 1000));
  } catch (const std::exception&) {
    co_return error(errc::protocol_error, "unexpected reply to TIME: not a number");
  }
}

// Runs the batch script on `ids`.
asio::awaitable<result<redis::reply>> async_batch(redis::client& client, const layout& keys,
                                                  const std::string& index_key,
                                                  std::span<const std::string> ids,
                                                  const std::string& threshold,
                                                  const std::string& ttl) {
  std::vector<std::string> trace_keys;
  trace_keys.reserve(ids.size());
  for (const auto& id : ids) trace_keys.push_back(keys.trace_key(id));

  std::vector<std::string_view> key_args;
  key_args.reserve(ids.size() + 1);
  key_args.push_back(index_key);
  for (const auto& k : trace_keys) key_args.push_back(k);
  std::vector<std::string_view> args = {threshold, ttl, "set"};
  args.reserve(ids.size() + 3);
  for (const auto& id : ids) args.push_back(id);
  co_return co_await client.async_eval(scripts::sweep_batch(), key_args, args);
}

// Runs the batch script on `ids`, at most `batch_size` ids a call, one call
// after the other. Stops at the first error. Also stops before a call when
// `should_stop` returns true, and then sets `stopped`. The caller's frame
// owns `should_stop` and `stopped` until this completes.
asio::awaitable<result<std::vector<redis::reply>>> async_batches(
    redis::client& client, const layout& keys, const std::string& index_key,
    std::vector<std::string> ids, std::uint32_t batch_size, std::string threshold,
    std::string ttl, const std::function<bool()>& should_stop, bool& stopped) {
  std::vector<redis::reply> replies;
  std::span<const std::string> rest(ids);
  while (!rest.empty()) {
    if (!replies.empty() && should_stop()) {
      stopped = true;
      break;
    }
    const auto n = std::min<std::size_t>(rest.size(), batch_size);
    auto reply = co_await async_batch(client, keys, index_key, rest.first(n), threshold, ttl);
    if (!reply) co_return reply.error();
    replies.push_back(std::move(*reply));
    rest = rest.subspan(n);
  }
  co_return replies;
}

}  // namespace

result<void> validate(const sweep_options& options) {
  if (options.threshold.count() < 1) {
    return error(errc::invalid_argument,
                 fmt::format("invalid sweep threshold {} ms: use at least 1 ms",
                             options.threshold.count()));
  }
  if (options.batch_size < 1 || options.batch_size > 10000) {
    return error(errc::invalid_argument,
                 fmt::format("invalid sweep batch size {}: use 1 to 10000", options.batch_size));
  }
  if (options.scan_count < 1 || options.scan_count > 10000) {
    return error(errc::invalid_argument,
                 fmt::format("invalid sweep scan count {}: use 1 to 10000", options.scan_count));
  }
  if (options.shard_parallelism < 1 || options.shard_parallelism > 256) {
    return error(errc::invalid_argument,
                 fmt::format("invalid shard parallelism {}: use 1 to 256",
                             options.shard_parallelism));
  }
  return {};
}

bool young_by_id_time(std::string_view id, std::chrono::sys_time<std::chrono::milliseconds> now,
                      std::chrono::milliseconds threshold) {
  if (id.size() != trace_id::kTextSize) return false;
  auto parsed = trace_id::parse(id);
  if (!parsed || !parsed->is_v7()) return false;
  const auto minted = parsed->timestamp();
  return minted > now - threshold && minted <= now;
}

sweeper::sweeper(redis::client& client, registry_options registry, sweep_options options,
                 logger log)
    : client_(client),
      registry_(std::move(registry)),
      options_(options),
      log_(log.with_component("sweeper")) {
  if (auto valid = validate(registry_); !valid) throw std::invalid_argument(valid.error().what());
  if (auto valid = validate(options_); !valid) throw std::invalid_argument(valid.error().what());
  layout_ = make_layout(registry_);
  threshold_arg_ = fmt::format("{:.3f}", static_cast<double>(options_.threshold.count()) / 1000.0);
  ttl_arg_ = std::to_string(registry_.terminal_ttl.count());
  failsafe_ms_arg_ = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(registry_.failsafe_ttl).count());
}

std::chrono::sys_time<std::chrono::milliseconds> sweeper::server_now() const {
  return pass_server_start_ + std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - pass_steady_start_);
}

asio::awaitable<result<sweep_summary>> sweeper::async_sweep(std::function<bool()> should_stop) {
  if (!should_stop) should_stop = [] { return false; };
  sweep_summary summary;
  const auto started = std::chrono::steady_clock::now();

  result<void> walked;
  if (layout_->index() == index_kind::sorted_set) {
    walked = co_await async_sweep_sorted(summary, should_stop);
  } else {
    walked = co_await async_sweep_set(summary, should_stop);
  }
  summary.duration = std::chrono::steady_clock::now() - started;
  // A canceled pass was stopped by its caller (a watchdog that lost its
  // lease, for one), which reports why.
  if (!walked && walked.error().code == std::errc::operation_canceled) co_return walked.error();
  if (!walked) {
    log_.warn("sweep_failed", {{"error", walked.error().what()},
                               {"batches_done", summary.batches},
                               {"remedy", "check that Redis is reachable and that the index "
                                          "key is a set or sorted set; the next pass retries"}});
    co_return walked.error();
  }
  co_return summary;
}

asio::awaitable<result<void>> sweeper::async_sweep_set(sweep_summary& summary,
                                                       const std::function<bool()>& should_stop) {
  const std::string index_key = layout_->index_key(0);
  if (!options_.read_every_id) {
    auto now = co_await async_server_time(client_, index_key);
    if (!now) co_return now.error();
    pass_server_start_ = *now;
    pass_steady_start_ = std::chrono::steady_clock::now();
  }

  // Prime the pipeline with the first page of ids.
  auto page = co_await async_scan(client_, index_key, "0", options_.scan_count);
  if (!page) co_return page.error();

  while (true) {
    std::vector<std::string> ids = std::move(page->ids);
    const bool last = page->cursor == "0";
    summary.scanned += ids.size();
    if (!options_.read_every_id) {
      const auto now = server_now();
      const auto young = std::remove_if(ids.begin(), ids.end(), [&](const std::string& id) {
        return young_by_id_time(id, now, options_.threshold);
      });
      summary.skipped += static_cast<std::uint64_t>(ids.end() - young);
      ids.erase(young, ids.end());
    }

    // Run this page's batches and fetch the next page at the same time.
    result<std::vector<redis::reply>> batches = std::vector<redis::reply>{};
    bool stopped = false;
    auto run_batches = async_batches(client_, *layout_, index_key, std::move(ids),
                                     options_.batch_size, threshold_arg_, ttl_arg_, should_stop,
                                     stopped);
    if (last) {
      batches = co_await std::move(run_batches);
    } else {
      auto [done, next] = co_await (std::move(run_batches) &&
                                    async_scan(client_, index_key, page->cursor,
                                               options_.scan_count));
      batches = std::move(done);
      page = std::move(next);
    }
    if (!batches) co_return batches.error();
    for (const auto& reply : *batches) {
      ++summary.batches;
      if (auto counted = account(reply, summary); !counted) co_return counted.error();
    }

    if (stopped) {
      summary.stopped_early = true;
      co_return result<void>{};
    }
    if (last) co_return result<void>{};
    if (!page) co_return page.error();
    if (should_stop()) {
      summary.stopped_early = true;
      co_return result<void>{};
    }
  }
}

asio::awaitable<result<void>> sweeper::async_sweep_sorted(sweep_summary& summary,
                                                          const std::function<bool()>& should_stop) {
  // A fixed number of workers take shards from a shared counter, so shards
  // on different cluster nodes are swept in parallel while the number of
  // requests in flight stays bounded.
  const std::uint32_t shards = layout_->index_count();
  std::uint32_t next_shard = 0;
  result<void> first_error;

  auto worker = [&]() -> asio::awaitable<void> {
    while (first_error && next_shard < shards && !summary.stopped_early) {
      // Between shards is between batches too: check the stop predicate.
      if (next_shard > 0 && should_stop()) {
        summary.stopped_early = true;
        break;
      }
      std::uint32_t shard = next_shard++;
      auto done = co_await async_sweep_shard(shard, summary, should_stop);
      if (!done && first_error) first_error = done.error();
    }
  };

  const std::uint32_t workers = std::min(options_.shard_parallelism, shards);
  auto executor = co_await asio::this_coro::executor;
  // Run the workers concurrently and wait for all of them: a counter of
  // running workers and a timer used as an event.
  std::uint32_t running = workers;
  asio::steady_timer all_done(executor, std::chrono::steady_clock::time_point::max());
  for (std::uint32_t i = 0; i < workers; ++i) {
    asio::co_spawn(
        executor,
        [&]() -> asio::awaitable<void> {
          co_await worker();
          if (--running == 0) all_done.cancel();
        },
        asio::detached);
  }
  boost::system::error_code ignored;
  co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  co_return first_error;
}

asio::awaitable<result<void>> sweeper::async_sweep_shard(std::uint32_t shard,
                                                         sweep_summary& summary,
                                                         const std::function<bool()>& should_stop) {
  const std::string index_key = layout_->index_key(shard);
  const std::string trace_prefix = layout_->trace_key_prefix(shard);
  const std::string limit = std::to_string(options_.batch_size);
  std::uint64_t offset = 0;

  while (true) {
    std::string offset_arg = std::to_string(offset);
    std::vector<std::string_view> keys = {index_key};
    std::vector<std::string_view> args = {threshold_arg_, ttl_arg_,   limit,
                                          trace_prefix,   offset_arg, failsafe_ms_arg_};
    auto reply = co_await client_.async_eval(scripts::sweep_sorted(), keys, args);
    if (!reply) co_return reply.error();
    if (!reply->is_array() || reply->elements.size() <= kReplyKept) {
      co_return error(errc::protocol_error, "unexpected reply from the sorted sweep script");
    }
    const auto read = static_cast<std::uint64_t>(reply->elements[kReplyRead].integer);
    summary.scanned += read;
    if (read > 0) {
      ++summary.batches;
      if (auto counted = account(*reply, summary); !counted) co_return counted.error();
    }
    offset += static_cast<std::uint64_t>(reply->elements[kReplyKept].integer);

    if (read < options_.batch_size) co_return result<void>{};
    if (should_stop()) {
      summary.stopped_early = true;
      co_return result<void>{};
    }
  }
}

result<void> sweeper::account(const redis::reply& reply, sweep_summary& summary) {
  if (!reply.is_array() || reply.elements.size() <= kReplyMalformed) {
    return error(errc::protocol_error, "unexpected reply from the sweep script");
  }
  const auto& e = reply.elements;
  summary.stale += static_cast<std::uint64_t>(e[kReplyStale].integer);
  summary.finished += static_cast<std::uint64_t>(e[kReplyFinished].integer);
  summary.live += static_cast<std::uint64_t>(e[kReplyLive].integer);

  const auto& orphans = e[kReplyOrphans].elements;
  for (std::size_t i = 0; i + 1 < orphans.size(); i += 2) {
    orphan_report report{orphans[i].str, std::stod(orphans[i + 1].str)};
    log_.warn("trace_orphaned", {{"trace_id", report.id}, {"age_s", orphans[i + 1].str}});
    summary.orphans.push_back(std::move(report));
    ++summary.orphaned;
  }

  const auto& malformed = e[kReplyMalformed].elements;
  for (std::size_t i = 0; i + 1 < malformed.size(); i += 2) {
    ++summary.malformed;
    const std::string& id = malformed[i].str;
    if (malformed_logged_.size() >= kMaxRemembered) malformed_logged_.clear();
    if (malformed_logged_.insert(id).second) {
      log_.warn("trace_malformed",
                {{"trace_id", id},
                 {"reason", malformed[i + 1].str},
                 {"remedy", "inspect the key, then repair or delete it and its index entry; "
                            "the sweep leaves it alone"}});
    }
  }
  return {};
}

}  // namespace tracewatch
