// `tracewatch id [-n N]`: print N new trace ids, one a line.

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <span>
#include <system_error>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "cli.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch::cli {
namespace {

// Lines are written in blocks of this many bytes (1,771 ids), so printing a
// million ids takes a few hundred write calls.
constexpr std::size_t kLinesPerBlock = 65536 / (trace_id::kTextSize + 1);

// Parses the -n value: a whole number from 1 up. Returns the error message
// for anything else.
std::variant<std::uint64_t, std::string> parse_count(const std::string& text) {
  std::uint64_t count = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, count);
  if (ec == std::errc::result_out_of_range) {
    return fmt::format("tracewatch id: -n {} is too large: at most {} ids", text, UINT64_MAX);
  }
  if (text.empty() || ec != std::errc() || end != last) {
    return fmt::format("tracewatch id: invalid -n \"{}\": expected a positive whole number of ids, "
                       "e.g. -n 1000",
                       text);
  }
  if (count == 0) {
    return "tracewatch id: invalid -n 0: expected a positive whole number of ids, e.g. -n 1000";
  }
  return count;
}

// Prints `count` ids to standard output. Returns the exit code.
int print_ids(std::uint64_t count) {
  constexpr std::size_t kLineSize = trace_id::kTextSize + 1;
  std::vector<char> block(kLinesPerBlock * kLineSize);

  std::uint64_t remaining = count;
  while (remaining > 0) {
    const std::size_t lines = remaining < kLinesPerBlock ? static_cast<std::size_t>(remaining)
                                                         : kLinesPerBlock;
    char* line = block.data();
    for (std::size_t i = 0; i < lines; ++i, line += kLineSize) {
      new_trace_id().format_to(std::span<char, trace_id::kTextSize>(line, trace_id::kTextSize));
      line[trace_id::kTextSize] = '\n';
    }
    if (std::fwrite(block.data(), 1, lines * kLineSize, stdout) != lines * kLineSize) break;
    remaining -= lines;
  }

  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    fmt::print(stderr, "tracewatch id: cannot write to standard output: {}\n",
               std::strerror(errno));
    return kExitFailure;
  }
  return kExitOk;
}

const command_registration kIdCommand{
    10, [](CLI::App& app, global_options&) -> std::function<int()> {
      CLI::App* command = app.add_subcommand("id", "Print new UUIDv7 trace ids, one a line");
      auto count_text = std::make_shared<std::string>("1");
      command->add_option("-n,--count", *count_text, "Number of ids to print, 1 or more")
          ->type_name("N")
          ->capture_default_str();

      return [count_text]() -> int {
        const auto count = parse_count(*count_text);
        if (const auto* message = std::get_if<std::string>(&count)) {
          fmt::print(stderr, "{}\n", *message);
          return kExitUsage;
        }
        return print_ids(std::get<std::uint64_t>(count));
      };
    }};

}  // namespace
}  // namespace tracewatch::cli
