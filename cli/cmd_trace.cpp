// The lifecycle commands: create, get, advance, complete, fail and stats.

#include <cstdio>
#include <memory>

#include <boost/json/object.hpp>
#include <fmt/format.h>

#include "cli.hpp"
#include "runtime.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::cli {
namespace {

boost::json::value optional_number(const std::optional<double>& value) {
  if (!value) return nullptr;
  return *value;
}

// Runs `body` with a registry on a ready connection; input errors in the
// global options are reported before connecting.
int with_registry(const global_options& globals,
                  const std::function<asio::awaitable<int>(registry&)>& body) {
  auto options = make_registry_options(globals);
  if (!options) return report_error(options.error());
  return run_with_layout(globals, *options, [&](redis::client& client) -> asio::awaitable<int> {
    registry reg(client, *options);
    co_return co_await body(reg);
  });
}

int print_finish(const std::string& id, const finish_outcome& outcome, bool json) {
  if (json) {
    print_json(boost::json::object{{"id", id},
                                   {"applied", outcome.applied},
                                   {"state", outcome.state},
                                   {"previous_state", outcome.previous_state}});
  } else if (outcome.applied) {
    fmt::print("{} {}\n", id, outcome.state);
  } else {
    fmt::print(stderr, "tracewatch: trace {} was already {}; not changed\n", id, outcome.state);
  }
  return outcome.applied ? kExitOk : kExitFailure;
}

const command_registration create_command(20, [](CLI::App& app, global_options& globals) {
  struct args_t {
    std::string id;
    std::string state = "RECEIVED";
    std::vector<std::string> meta;
    bool json = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand("create", "Register a trace and print its id");
  sub->add_option("--id", args->id, "Trace id (a UUID); a new UUIDv7 when omitted");
  sub->add_option("--state", args->state, "Initial state")->capture_default_str();
  sub->add_option("--meta", args->meta, "Metadata field as KEY=VALUE; repeat for more");
  sub->add_flag("--json", args->json, "Print the result as JSON");
  return [&globals, args]() -> int {
    // Check every input before connecting, so bad input writes nothing.
    if (args->id.empty()) args->id = generate_trace_id();
    metadata fields;
    for (const auto& text : args->meta) {
      auto field = parse_field_assignment(text);
      if (!field) return report_error(field.error());
      fields.push_back(std::move(*field));
    }
    if (auto id = trace_id::parse(args->id); !id) return report_error(id.error());
    if (auto valid = validate_state(args->state); !valid) return report_error(valid.error());
    if (auto valid = validate_metadata(fields); !valid) return report_error(valid.error());

    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto created = co_await reg.async_create(args->id, args->state, fields);
      if (!created) co_return report_error(created.error());
      std::string id = trace_id::parse(args->id)->to_string();
      if (args->json) {
        print_json(boost::json::object{{"id", id}, {"created_at", *created}});
      } else {
        fmt::print("{}\n", id);
      }
      co_return kExitOk;
    });
  };
});

const command_registration get_command(21, [](CLI::App& app, global_options& globals) {
  struct args_t {
    std::string id;
    bool json = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand("get", "Show one trace");
  sub->add_option("id", args->id, "Trace id")->required();
  sub->add_flag("--json", args->json, "Print the trace as JSON");
  return [&globals, args]() -> int {
    if (auto id = trace_id::parse(args->id); !id) return report_error(id.error());
    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto info = co_await reg.async_get(args->id);
      if (!info) co_return report_error(info.error());
      if (args->json) {
        boost::json::object meta;
        for (const auto& [name, value] : info->metadata) meta[name] = value;
        boost::json::object out{{"id", info->id},
                                {"state", info->state},
                                {"created_at", optional_number(info->created_at)},
                                {"updated_at", optional_number(info->updated_at)},
                                {"finished_at", optional_number(info->finished_at)},
                                {"metadata", std::move(meta)}};
        if (!info->error.empty()) out["error"] = info->error;
        out["ttl_s"] = info->ttl ? boost::json::value(info->ttl->count()) : nullptr;
        print_json(out);
        co_return kExitOk;
      }
      auto line = [](std::string_view name, const auto& value) {
        fmt::print("{:<12} {}\n", name, value);
      };
      auto time_text = [](const std::optional<double>& t) {
        return t ? fmt::format("{:.6f}", *t) : std::string("-");
      };
      line("id", info->id);
      line("state", info->state.empty() ? "-" : info->state);
      line("created_at", time_text(info->created_at));
      if (info->updated_at) line("updated_at", time_text(info->updated_at));
      if (info->finished_at) line("finished_at", time_text(info->finished_at));
      if (!info->error.empty()) line("error", info->error);
      line("ttl", info->ttl ? fmt::format("{} s", info->ttl->count()) : std::string("none"));
      for (const auto& [name, value] : info->metadata) line(name, value);
      co_return kExitOk;
    });
  };
});

const command_registration advance_command(22, [](CLI::App& app, global_options& globals) {
  struct args_t {
    std::string id;
    std::string state;
    bool json = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand("advance", "Move a trace to a non-terminal state");
  sub->add_option("id", args->id, "Trace id")->required();
  sub->add_option("state", args->state, "New state, such as INFERENCE")->required();
  sub->add_flag("--json", args->json, "Print the result as JSON");
  return [&globals, args]() -> int {
    if (auto id = trace_id::parse(args->id); !id) return report_error(id.error());
    if (auto valid = validate_intermediate_state(args->state); !valid) {
      return report_error(valid.error());
    }
    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto previous = co_await reg.async_advance(args->id, args->state);
      if (!previous) co_return report_error(previous.error());
      std::string id = trace_id::parse(args->id)->to_string();
      if (args->json) {
        print_json(boost::json::object{
            {"id", id}, {"state", args->state}, {"previous_state", *previous}});
      } else {
        fmt::print("{} {} -> {}\n", id, previous->empty() ? "-" : *previous, args->state);
      }
      co_return kExitOk;
    });
  };
});

const command_registration complete_command(23, [](CLI::App& app, global_options& globals) {
  struct args_t {
    std::string id;
    bool json = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand(
      "complete", "Mark a trace COMPLETED (exit 1 when it was already finished)");
  sub->add_option("id", args->id, "Trace id")->required();
  sub->add_flag("--json", args->json, "Print the result as JSON");
  return [&globals, args]() -> int {
    if (auto id = trace_id::parse(args->id); !id) return report_error(id.error());
    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto outcome = co_await reg.async_complete(args->id);
      if (!outcome) co_return report_error(outcome.error());
      co_return print_finish(trace_id::parse(args->id)->to_string(), *outcome, args->json);
    });
  };
});

const command_registration fail_command(24, [](CLI::App& app, global_options& globals) {
  struct args_t {
    std::string id;
    std::string reason;
    bool json = false;
  };
  auto args = std::make_shared<args_t>();
  auto* sub = app.add_subcommand(
      "fail", "Mark a trace ERRORED with a reason (exit 1 when it was already finished)");
  sub->add_option("id", args->id, "Trace id")->required();
  sub->add_option("--reason", args->reason, "Failure reason stored in the error field");
  sub->add_flag("--json", args->json, "Print the result as JSON");
  return [&globals, args]() -> int {
    if (auto id = trace_id::parse(args->id); !id) return report_error(id.error());
    if (auto valid = validate_reason(args->reason); !valid) return report_error(valid.error());
    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto outcome = co_await reg.async_fail(args->id, args->reason);
      if (!outcome) co_return report_error(outcome.error());
      co_return print_finish(trace_id::parse(args->id)->to_string(), *outcome, args->json);
    });
  };
});

const command_registration stats_command(25, [](CLI::App& app, global_options& globals) {
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("stats", "Count active traces by state and show the oldest");
  sub->add_flag("--json", *json, "Print the counts as JSON");
  return [&globals, json]() -> int {
    return with_registry(globals, [&](registry& reg) -> asio::awaitable<int> {
      auto stats = co_await reg.async_stats();
      if (!stats) co_return report_error(stats.error());
      if (*json) {
        boost::json::object by_state;
        for (const auto& [state, count] : stats->by_state) by_state[state] = count;
        print_json(boost::json::object{
            {"active", stats->active},
            {"by_state", std::move(by_state)},
            {"missing", stats->missing},
            {"oldest_age_s", optional_number(stats->oldest_age_s)}});
        co_return kExitOk;
      }
      fmt::print("{:<16} {}\n", "active", stats->active);
      for (const auto& [state, count] : stats->by_state) {
        fmt::print("  {:<14} {}\n", state.empty() ? "(no state)" : state, count);
      }
      if (stats->missing > 0) fmt::print("{:<16} {}\n", "index_stale", stats->missing);
      fmt::print("{:<16} {}\n", "oldest_age_s",
                 stats->oldest_age_s ? fmt::format("{:.1f}", *stats->oldest_age_s) : "-");
      co_return kExitOk;
    });
  };
});

}  // namespace
}  // namespace tracewatch::cli
