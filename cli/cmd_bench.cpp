// `tracewatch bench`: runs the benchmark program, tracewatch-bench, which is
// built and installed beside this one.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli.hpp"

namespace tracewatch::cli {
namespace {

// tracewatch-bench in this program's directory, else the bare name for a
// PATH look-up.
std::string bench_program() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "tracewatch-bench";
    if (std::filesystem::exists(beside)) return beside.string();
  }
  return "tracewatch-bench";
}

const command_registration bench_command(90, [](CLI::App& app, global_options&) {
  auto args = std::make_shared<std::vector<std::string>>();
  auto* sub = app.add_subcommand(
      "bench",
      "Run the benchmarks (ids, connection, creates, sweep, memory) and print a summary "
      "beside their anchors; pass --help for the benchmark program's options");
  sub->prefix_command();  // everything after `bench` goes to the benchmark program
  return [sub, args]() -> int {
    std::string program = bench_program();
    std::vector<std::string> forwarded = {program};
    for (const auto& extra : sub->remaining()) forwarded.push_back(extra);
    std::vector<char*> argv;
    for (auto& a : forwarded) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    fmt::print(stderr,
               "tracewatch: cannot run {}: {}; build it with 'cmake --build build' "
               "(TRACEWATCH_BUILD_BENCH=ON) or install it beside tracewatch\n",
               program, std::strerror(errno));
    return kExitFailure;
  };
});

}  // namespace
}  // namespace tracewatch::cli
