// `tracewatch id`: runs the built program. It needs no Redis, but it lives
// with the Redis suites because only their build defines TRACEWATCH_CLI_PATH.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/cli.hpp"
#include "tracewatch/trace_id.hpp"

namespace tracewatch {
namespace {

using testing::cli_result;
using testing::run_cli;

using namespace std::chrono_literals;

TEST(CliId, PrintsMillionIncreasingIds) {
  constexpr std::size_t kCount = 1'000'000;
  constexpr std::size_t kLineSize = trace_id::kTextSize + 1;
  const auto start = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  const cli_result result = run_cli("id -n 1000000");
  const auto end = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());

  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  ASSERT_EQ(result.out.size(), kCount * kLineSize);

  // The timestamps must fall within the run, give or take 1 s for a clock
  // step while it ran. Strictly increasing also proves the ids unique.
  // Plain ifs keep the loop fast in sanitizer builds; each check still
  // fails with its own message.
  trace_id previous;
  for (std::size_t i = 0; i < kCount; ++i) {
    const std::string_view line(result.out.data() + i * kLineSize, kLineSize);
    const std::string_view text = line.substr(0, trace_id::kTextSize);
    if (line.back() != '\n') FAIL() << "line " << i << " does not end in a newline: " << line;
    const auto id = trace_id::parse(text);
    if (!id) FAIL() << "line " << i << ": " << id.error().what();
    if (id->to_string() != text) FAIL() << "line " << i << " is not canonical: " << text;
    if (!id->is_v7()) FAIL() << "line " << i << " is not a version-7 id: " << text;
    if (id->timestamp() < start - 1s) FAIL() << "line " << i << " is older than the run: " << text;
    if (id->timestamp() > end + 1s) FAIL() << "line " << i << " is newer than the run: " << text;
    if (i > 0 && !(previous < *id)) {
      FAIL() << "line " << i << " is not greater than line " << i - 1 << ": " << text;
    }
    previous = *id;
  }
}

TEST(CliId, PrintsOneIdByDefault) {
  const cli_result result = run_cli("id");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  ASSERT_EQ(result.out.size(), trace_id::kTextSize + 1);
  const auto id = trace_id::parse(std::string_view(result.out).substr(0, trace_id::kTextSize));
  ASSERT_TRUE(id) << id.error().what();
  EXPECT_TRUE(id->is_v7());
}

TEST(CliId, RejectsInvalidCount) {
  struct invalid_case {
    std::string arguments;
    std::string message;  // part of the expected standard error
  };
  const std::vector<invalid_case> cases = {
      {"id -n 0", "invalid -n 0: expected a positive whole number of ids"},
      {"id --count=-5", "invalid -n \"-5\": expected a positive whole number of ids"},
      {"id -n abc", "invalid -n \"abc\": expected a positive whole number of ids"},
      {"id -n 1.5", "invalid -n \"1.5\""},
      {"id -n 12abc", "invalid -n \"12abc\""},
      {"id -n ''", "invalid -n \"\""},
      {"id -n 99999999999999999999999", "-n 99999999999999999999999 is too large"},
  };
  for (const auto& c : cases) {
    const cli_result result = run_cli(c.arguments);
    EXPECT_EQ(result.exit_code, 2) << c.arguments;
    EXPECT_EQ(result.out, "") << c.arguments;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << c.arguments << ": " << result.err;
  }
}

}  // namespace
}  // namespace tracewatch
