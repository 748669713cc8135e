#include "tracewatch/log_format.hpp"

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tracewatch {
namespace {

using std::chrono::system_clock;

// 2026-12-04T19:45:46.123Z
system_clock::time_point example_time() {
  using namespace std::chrono;
  return sys_days{year{2026} / December / 4} + hours(19) + minutes(45) + seconds(46) +
         milliseconds(123) + microseconds(999);
}

std::string logfmt_of(std::vector<log_field> fields, std::string_view component = "c",
                      std::string_view event = "e") {
  log_record record{log_level::info, component, event, fields};
  return format_logfmt(record, example_time());
}

std::string json_of(std::vector<log_field> fields, std::string_view component = "c",
                    std::string_view event = "e") {
  log_record record{log_level::info, component, event, fields};
  return format_json(record, example_time());
}

constexpr std::string_view kLogfmtPrefix = "ts=2026-12-04T19:45:46.123Z level=info component=c msg=e";
constexpr std::string_view kJsonPrefix =
    R"({"ts":"2026-12-04T19:45:46.123Z","level":"info","component":"c","msg":"e")";

// The expected line: the fixed prefix of logfmt_of() or json_of(), then `parts`.
template <class... Parts>
std::string expected_line(std::string_view prefix, const Parts&... parts) {
  std::string line(prefix);
  (line.append(std::string_view(parts)), ...);
  return line;
}

template <class... Parts>
std::string logfmt_line(const Parts&... parts) {
  return expected_line(kLogfmtPrefix, parts...);
}

template <class... Parts>
std::string json_line(const Parts&... parts) {
  return expected_line(kJsonPrefix, parts...);
}

TEST(LogFormat, HeaderExampleLogfmt) {
  log_field fields[] = {{"trace_id", "0193a1b2-..."}, {"age_s", "1801.2"}};
  log_record record{log_level::warn, "sweeper", "trace_orphaned", fields};
  EXPECT_EQ(format_logfmt(record, example_time()),
            "ts=2026-12-04T19:45:46.123Z level=warn component=sweeper msg=trace_orphaned "
            "trace_id=0193a1b2-... age_s=1801.2");
}

TEST(LogFormat, HeaderExampleJson) {
  log_field fields[] = {{"trace_id", "0193a1b2-..."}, {"age_s", "1801.2"}};
  log_record record{log_level::warn, "sweeper", "trace_orphaned", fields};
  EXPECT_EQ(format_json(record, example_time()),
            R"({"ts":"2026-12-04T19:45:46.123Z","level":"warn","component":"sweeper",)"
            R"("msg":"trace_orphaned","trace_id":"0193a1b2-...","age_s":"1801.2"})");
}

TEST(LogFormat, TimestampIsUtcMilliseconds) {
  EXPECT_EQ(format_log_timestamp(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_log_timestamp(example_time()), "2026-12-04T19:45:46.123Z");
  // Before the epoch the milliseconds still count forward from the second.
  EXPECT_EQ(format_log_timestamp(system_clock::time_point{} - std::chrono::milliseconds(1)),
            "1969-12-31T23:59:59.999Z");
}

TEST(LogFormat, LogfmtQuotesSpacesEqualsAndQuotes) {
  EXPECT_EQ(logfmt_of({{"k", "two words"}}), logfmt_line(" k=\"two words\""));
  EXPECT_EQ(logfmt_of({{"k", "a=b"}}), logfmt_line(" k=\"a=b\""));
  EXPECT_EQ(logfmt_of({{"k", "say \"hi\""}}), logfmt_line(" k=\"say \\\"hi\\\"\""));
}

TEST(LogFormat, LogfmtEscapesInsideQuotes) {
  EXPECT_EQ(logfmt_of({{"k", "line\nnext"}}), logfmt_line(" k=\"line\\nnext\""));
  EXPECT_EQ(logfmt_of({{"k", "tab\there"}}), logfmt_line(" k=\"tab\\there\""));
  EXPECT_EQ(logfmt_of({{"k", "c:\\dir x"}}), logfmt_line(" k=\"c:\\\\dir x\""));
  EXPECT_EQ(logfmt_of({{"k", std::string("nul\0!", 5)}}),
            logfmt_line(" k=\"nul\\u0000!\""));
}

TEST(LogFormat, LogfmtBareBackslashStaysRaw) {
  EXPECT_EQ(logfmt_of({{"k", "c:\\dir"}}), logfmt_line(" k=c:\\dir"));
}

TEST(LogFormat, LogfmtEmptyValueIsQuoted) {
  EXPECT_EQ(logfmt_of({{"k", ""}}), logfmt_line(" k=\"\""));
}

TEST(LogFormat, LogfmtKeyCharactersReplaced) {
  EXPECT_EQ(logfmt_of({{"a b=c\"d", "v"}}), logfmt_line(" a_b_c_d=v"));
  EXPECT_EQ(logfmt_of({{"", "v"}}), logfmt_line(" _=v"));
}

TEST(LogFormat, FixedKeyFieldsArePrefixed) {
  EXPECT_EQ(logfmt_of({{"msg", "m"}, {"level", "l"}}),
            logfmt_line(" field_msg=m field_level=l"));
  EXPECT_EQ(json_of({{"ts", "t"}}), json_line(R"(,"field_ts":"t"})"));
}

TEST(LogFormat, ComponentOmittedWhenEmpty) {
  EXPECT_EQ(logfmt_of({}, ""), "ts=2026-12-04T19:45:46.123Z level=info msg=e");
  EXPECT_EQ(json_of({}, ""), R"({"ts":"2026-12-04T19:45:46.123Z","level":"info","msg":"e"})");
}

TEST(LogFormat, JsonEscapesControlCharacters) {
  EXPECT_EQ(json_of({{"k", "q\"b\\n\nr\rt\tbs\bff\f"}}),
            json_line(R"(,"k":"q\"b\\n\nr\rt\tbs\bff\f"})"));
  EXPECT_EQ(json_of({{"k", std::string("\x01\x1f\0", 3)}}),
            json_line(R"(,"k":"\u0001\u001f\u0000"})"));
}

TEST(LogFormat, JsonEscapesKeys) {
  EXPECT_EQ(json_of({{"a\"b", "v"}}), json_line(R"(,"a\"b":"v"})"));
}

TEST(LogFormat, ValidUtf8IsKept) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // café € 😀
  EXPECT_EQ(json_of({{"k", text}}), json_line(",\"k\":\"", text, "\"}"));
  EXPECT_EQ(logfmt_of({{"k", "caf\xC3\xA9"}}), logfmt_line(" k=caf\xC3\xA9"));
}

TEST(LogFormat, InvalidUtf8IsReplaced) {
  const std::string replacement = "\xEF\xBF\xBD";
  // A lone continuation byte, a truncated sequence, an overlong '/', and a surrogate.
  EXPECT_EQ(json_of({{"k", "a\x80z"}}), json_line(",\"k\":\"a", replacement, "z\"}"));
  EXPECT_EQ(json_of({{"k", "a\xE2\x82"}}),
            json_line(",\"k\":\"a", replacement, replacement, "\"}"));
  EXPECT_EQ(json_of({{"k", "\xC0\xAF"}}),
            json_line(",\"k\":\"", replacement, replacement, "\"}"));
  EXPECT_EQ(logfmt_of({{"k", "\xED\xA0\x80"}}),
            logfmt_line(" k=", replacement, replacement, replacement));
}

TEST(LogFormat, FormatLogLineSelectsEncoding) {
  log_record record{log_level::error, "c", "e", {}};
  EXPECT_EQ(format_log_line(log_encoding::json, record, example_time()),
            format_json(record, example_time()));
  EXPECT_EQ(format_log_line(log_encoding::logfmt, record, example_time()),
            format_logfmt(record, example_time()));
}

TEST(LogFormat, ParsesLevelsAndEncodings) {
  EXPECT_EQ(parse_log_level("debug"), log_level::debug);
  EXPECT_EQ(parse_log_level("warn"), log_level::warn);
  EXPECT_EQ(parse_log_level("WARN"), std::nullopt);
  EXPECT_EQ(parse_log_level("warning"), std::nullopt);
  EXPECT_EQ(parse_log_encoding("json"), log_encoding::json);
  EXPECT_EQ(parse_log_encoding("logfmt"), log_encoding::logfmt);
  EXPECT_EQ(parse_log_encoding("text"), std::nullopt);
}

}  // namespace
}  // namespace tracewatch
