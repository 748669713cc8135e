// Shared pieces of the command-line program: the global options every
// command takes, exit codes, and self-registration of subcommands.

#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tracewatch::cli {

// Exit codes of every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // operational failure: Redis unreachable, a check failed
inline constexpr int kExitUsage = 2;    // usage error or bad input; nothing was written

// Options that every command accepts.
struct global_options {
  std::string redis_url;       // --redis; empty means TRACEWATCH_REDIS_URL, then the default
  std::string layout = "compat";
  std::string prefix = "sg";
  std::uint32_t shards = 256;  // --shards, sharded layout only
  std::string log_format = "logfmt";
  std::string log_level;  // empty: the command's default

  // --redis, else TRACEWATCH_REDIS_URL, else redis://127.0.0.1:6379.
  std::string effective_redis_url() const;
};

// A subcommand: `setup` adds it to the application and returns the action to
// run when the user picked it. The action returns the exit code.
using command_setup = std::function<std::function<int()>(CLI::App& app, global_options& globals)>;

// Registers a subcommand at static-initialisation time; `order` sorts --help.
struct command_registration {
  command_registration(int order, command_setup setup);
};

struct registered_command {
  int order;
  command_setup setup;
};
std::vector<registered_command>& command_list();

}  // namespace tracewatch::cli
