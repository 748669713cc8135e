#include "demo_report.hpp"

#include <algorithm>
#include <span>
#include <unordered_set>

#include <boost/json/array.hpp>
#include <fmt/format.h>

namespace tracewatch::cli {
namespace {

// Ids read per pipelined request: two commands each, and a few tens of
// kilobytes of reply.
constexpr std::size_t kReadBatch = 500;
// Failing ids quoted in a check's detail.
constexpr std::size_t kExamples = 3;

bool is_terminal_state(std::string_view state) {
  return state == "COMPLETED" || state == "ERRORED";
}

std::string describe(const std::string& id, const trace_observation& t) {
  if (!t.exists) return fmt::format("{} (hash missing)", id);
  return fmt::format("{} (state={} error={} {})", id, t.state.empty() ? "-" : t.state,
                     t.error.empty() ? "-" : t.error, t.in_index ? "in index" : "not in index");
}

// Reads state, error and index membership of `ids` into `seen`.
asio::awaitable<result<void>> async_read_traces(redis::client& client, const layout& keys,
                                                std::span<const std::string> ids,
                                                demo_observations& seen) {
  const bool sorted = keys.index() == index_kind::sorted_set;
  for (std::size_t begin = 0; begin < ids.size(); begin += kReadBatch) {
    const auto batch = ids.subspan(begin, std::min(kReadBatch, ids.size() - begin));
    redis::request req;
    for (const auto& id : batch) {
      req.push("HMGET", keys.trace_key(id), "state", "error");
      if (sorted) {
        req.push("ZSCORE", keys.index_key_for(id), id);
      } else {
        req.push("SISMEMBER", keys.index_key_for(id), id);
      }
    }
    auto replies = co_await client.async_exec(req);
    if (!replies) co_return replies.error();

    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& fields = (*replies)[2 * i];
      const auto& member = (*replies)[2 * i + 1];
      if (fields.is_error()) co_return error(errc::server_error, fields.str);
      if (member.is_error()) co_return error(errc::server_error, member.str);
      trace_observation t;
      if (fields.is_array() && fields.elements.size() == 2) {
        t.state = fields.elements[0].str;
        t.error = fields.elements[1].str;
        // HMGET returns nil for every field of a missing key, and a demo
        // trace always has a state.
        t.exists = !fields.elements[0].is_nil();
      }
      t.in_index = sorted ? !member.is_nil() : member.integer == 1;
      seen.traces[batch[i]] = std::move(t);
    }
  }
  co_return result<void>{};
}

// Lists the whole index and reads the state of every entry.
asio::awaitable<result<void>> async_read_index(redis::client& client, registry& reg,
                                               demo_observations& seen) {
  std::unordered_set<std::string> listed;
  std::string cursor = "0";
  do {
    auto page = co_await reg.async_list_active(cursor, 1000);
    if (!page) co_return page.error();
    listed.insert(page->ids.begin(), page->ids.end());
    cursor = page->cursor;
  } while (cursor != "0");
  seen.index_entries = listed.size();

  const std::vector<std::string> ids(listed.begin(), listed.end());
  for (std::size_t begin = 0; begin < ids.size(); begin += kReadBatch) {
    const std::size_t end = std::min(ids.size(), begin + kReadBatch);
    redis::request req;
    for (std::size_t i = begin; i < end; ++i)
      req.push("HGET", reg.keys().trace_key(ids[i]), "state");
    auto replies = co_await client.async_exec(req);
    if (!replies) co_return replies.error();
    for (std::size_t i = begin; i < end; ++i) {
      const auto& state = (*replies)[i - begin];
      if (state.is_error()) co_return error(errc::server_error, state.str);
      if (is_terminal_state(state.str)) seen.finished_in_index.emplace_back(ids[i], state.str);
    }
  }
  co_return result<void>{};
}

// Counts the ids of `ids` for which `ok` returns true and quotes a few others.
template <class Predicate>
demo_check check_all(std::string title, const std::vector<std::string>& ids,
                     const demo_observations& seen, std::string_view what, Predicate ok) {
  demo_check check{std::move(title), true, {}};
  std::size_t good = 0;
  std::vector<std::string> examples;
  for (const auto& id : ids) {
    const auto found = seen.traces.find(id);
    const trace_observation t = found == seen.traces.end() ? trace_observation{} : found->second;
    if (ok(t)) {
      ++good;
    } else if (examples.size() < kExamples) {
      examples.push_back(describe(id, t));
    }
  }
  check.passed = good == ids.size();
  check.detail = fmt::format("{} of {} {}", good, ids.size(), what);
  if (!examples.empty()) check.detail += fmt::format("; for example {}", fmt::join(examples, ", "));
  return check;
}

bool is_orphaned(const trace_observation& t) {
  return t.exists && t.state == "ERRORED" && t.error == "orphaned";
}

}  // namespace

asio::awaitable<result<demo_observations>> async_observe(redis::client& client, registry& reg,
                                                         const demo_tally& tally) {
  demo_observations seen;
  for (const auto* ids : {&tally.completed, &tally.late, &tally.abandoned, &tally.lost}) {
    auto read = co_await async_read_traces(client, reg.keys(), *ids, seen);
    if (!read) co_return read.error();
  }
  auto index = co_await async_read_index(client, reg, seen);
  if (!index) co_return index.error();
  co_return seen;
}

std::vector<demo_check> evaluate_checks(const demo_tally& tally, const demo_observations& seen) {
  std::vector<demo_check> checks;

  // 1. The watchdog reaped every trace a crashed worker left behind.
  checks.push_back(
      check_all("every abandoned trace was reaped", tally.abandoned, seen,
                "abandoned traces are ERRORED with error=orphaned and out of the index",
                [](const trace_observation& t) { return is_orphaned(t) && !t.in_index; }));

  // 2. No sweep overwrote a completion.
  checks.push_back(check_all("no completed trace was marked ERRORED", tally.completed, seen,
                             "completed traces are still COMPLETED",
                             [](const trace_observation& t) { return t.state == "COMPLETED"; }));

  // 3. Finished traces left the index.
  {
    demo_check check{"no finished trace is left in the index", seen.finished_in_index.empty(), {}};
    check.detail = fmt::format("{} of {} index entries are COMPLETED or ERRORED",
                               seen.finished_in_index.size(), seen.index_entries);
    std::vector<std::string> examples;
    for (const auto& [id, state] : seen.finished_in_index) {
      if (examples.size() == kExamples) break;
      examples.push_back(fmt::format("{} ({})", id, state));
    }
    if (!examples.empty())
      check.detail += fmt::format("; for example {}", fmt::join(examples, ", "));
    checks.push_back(std::move(check));
  }

  // 4. Every trace is accounted for, and the watchdogs reported exactly the
  // orphans that Redis shows among the demo's traces.
  {
    std::uint64_t orphaned_in_redis = 0;
    for (const auto& [id, t] : seen.traces) orphaned_in_redis += is_orphaned(t) ? 1 : 0;
    const std::uint64_t outcomes =
        tally.completed.size() + tally.late.size() + tally.abandoned.size() + tally.lost.size();
    demo_check check{"the counts add up", false, {}};
    check.passed = outcomes == tally.created && seen.index_entries == 0 &&
                   tally.reaped.size() == orphaned_in_redis;
    check.detail = fmt::format(
        "created {} = completed {} + abandoned {} + late {} + lost {}{}; index entries {}; "
        "orphans reported by the watchdogs {}, orphaned in Redis {}",
        tally.created, tally.completed.size(), tally.abandoned.size(), tally.late.size(),
        tally.lost.size(),
        outcomes == tally.created ? "" : fmt::format(" + in flight {}", tally.in_flight()),
        seen.index_entries, tally.reaped.size(), orphaned_in_redis);
    checks.push_back(std::move(check));
  }
  return checks;
}

bool print_report(std::FILE* out, const demo_settings& settings, const demo_run_summary& run,
                  const demo_tally& tally, const std::vector<demo_check>& checks) {
  std::vector<std::string> sweeps;
  for (const auto& [name, count] : run.sweeps_by_watchdog) {
    sweeps.push_back(fmt::format("{} {}", name, count));
  }

  fmt::print(out, "\nReport after {:.1f} s on {} (layout {}, prefix {})\n", run.elapsed.count(),
             run.redis, run.layout, run.prefix);
  fmt::print(out, "  created    {:>7}  ({} s of ingress at {}/s, {} workers)\n", tally.created,
             settings.duration_s, settings.rate, settings.workers);
  fmt::print(out, "  completed  {:>7}\n", tally.completed.size());
  fmt::print(out, "  abandoned  {:>7}  (crash share {})\n", tally.abandoned.size(),
             settings.crash_share);
  fmt::print(out, "  reaped     {:>7}  (threshold {} s, sweep every {} s; sweeps: {})\n",
             tally.reaped.size(), settings.threshold_s, settings.interval_s,
             fmt::join(sweeps, ", "));
  if (!tally.late.empty()) {
    fmt::print(out,
               "  late       {:>7}  (completed after the watchdog had reaped them; "
               "the first terminal state won)\n",
               tally.late.size());
  }
  if (!tally.lost.empty() || tally.create_failed != 0) {
    fmt::print(out, "  lost       {:>7}  (a Redis request failed; {} creates failed)\n",
               tally.lost.size(), tally.create_failed);
  }

  fmt::print(out, "\nChecks against Redis:\n");
  std::size_t passed = 0;
  for (const auto& check : checks) {
    passed += check.passed ? 1 : 0;
    fmt::print(out, "  {}  {}: {}\n", check.passed ? "PASS" : "FAIL", check.title, check.detail);
  }
  const bool all = passed == checks.size();
  if (all) {
    fmt::print(out, "\nAll {} checks passed.\n", checks.size());
  } else {
    fmt::print(out, "\n{} of {} checks failed.\n", checks.size() - passed, checks.size());
  }
  std::fflush(out);
  return all;
}

boost::json::object report_json(const demo_settings& settings, const demo_run_summary& run,
                                const demo_tally& tally, const std::vector<demo_check>& checks) {
  boost::json::array check_list;
  bool all = true;
  for (const auto& check : checks) {
    all = all && check.passed;
    check_list.push_back(boost::json::object{
        {"title", check.title}, {"passed", check.passed}, {"detail", check.detail}});
  }
  boost::json::object sweeps;
  for (const auto& [name, count] : run.sweeps_by_watchdog) sweeps[name] = count;

  return boost::json::object{
      {"passed", all},
      {"elapsed_s", run.elapsed.count()},
      {"redis", run.redis},
      {"layout", run.layout},
      {"prefix", run.prefix},
      {"settings", boost::json::object{{"duration_s", settings.duration_s},
                                       {"rate", settings.rate},
                                       {"workers", settings.workers},
                                       {"crash_share", settings.crash_share},
                                       {"threshold_s", settings.threshold_s},
                                       {"interval_s", settings.interval_s},
                                       {"lease_s", settings.lease_s}}},
      {"counts", boost::json::object{{"created", tally.created},
                                     {"completed", tally.completed.size()},
                                     {"abandoned", tally.abandoned.size()},
                                     {"reaped", tally.reaped.size()},
                                     {"late", tally.late.size()},
                                     {"lost", tally.lost.size()},
                                     {"create_failed", tally.create_failed}}},
      {"sweeps", std::move(sweeps)},
      {"checks", std::move(check_list)}};
}

}  // namespace tracewatch::cli
