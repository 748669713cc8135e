// tracewatch: UUIDv7 trace ids, the Redis trace registry and its watchdog.

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "cli.hpp"

namespace tracewatch::cli {

std::vector<registered_command>& command_list() {
  static std::vector<registered_command> commands;
  return commands;
}

command_registration::command_registration(int order, command_setup setup) {
  command_list().push_back({order, std::move(setup)});
}

std::string global_options::effective_redis_url() const {
  if (!redis_url.empty()) return redis_url;
  if (const char* env = std::getenv("TRACEWATCH_REDIS_URL"); env != nullptr && *env != '\0') {
    return env;
  }
  return "redis://127.0.0.1:6379";
}

}  // namespace tracewatch::cli

int main(int argc, char** argv) {
  using namespace tracewatch::cli;

  CLI::App app{"tracewatch: UUIDv7 trace ids, a Redis trace registry and an orphan watchdog"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", "tracewatch 0.1.0");

  global_options globals;
  app.add_option("--redis", globals.redis_url,
                 "Redis URL: redis://[user:password@]host[:port][/db] or unix:///path "
                 "(default: $TRACEWATCH_REDIS_URL, else redis://127.0.0.1:6379)")
      ->envname("TRACEWATCH_REDIS_URL");
  app.add_option("--layout", globals.layout,
                 "Keyspace layout: compat (the reference keys) or sharded (Redis Cluster)")
      ->check(CLI::IsMember({"compat", "sharded"}))
      ->capture_default_str();
  app.add_option("--prefix", globals.prefix, "Key prefix")->capture_default_str();
  app.add_option("--shards", globals.shards,
                 "Shards of the sharded layout; stored in Redis on first use, and every client "
                 "must use the same number")
      ->capture_default_str();
  app.add_option("--log-format", globals.log_format, "Log format: logfmt or json")
      ->check(CLI::IsMember({"logfmt", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", globals.log_level,
                 "Minimum log level: debug, info, warn, error (default: info for watchdog and "
                 "demo, error for the other commands)")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  auto& commands = command_list();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  std::vector<std::function<int()>> actions;
  actions.reserve(commands.size());
  for (auto& command : commands) actions.push_back(command.setup(app, globals));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  for (std::size_t i = 0; i < commands.size(); ++i) {
    // Each setup added exactly one subcommand, in registration order.
    CLI::App* sub = app.get_subcommands({})[i];
    if (sub->parsed()) return actions[i]();
  }
  return kExitUsage;
}
