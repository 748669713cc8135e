// Formatting of log records as one line of text: logfmt (the default of the
// command-line program) or JSON. Pure functions, no I/O: the program's sink
// writes the lines through spdlog.
//
// Every line starts with the same keys in this order: `ts` (UTC, RFC 3339 with
// milliseconds), `level`, `component` (left out when empty) and `msg` (the
// event name), then the record's fields in their order.
//
// Example (log_format_test.cpp runs it):
//   log_field fields[] = {{"trace_id", "0193a1b2-..."}, {"age_s", "1801.2"}};
//   log_record record{log_level::warn, "sweeper", "trace_orphaned", fields};
//   format_logfmt(record, time);
//   // ts=2026-12-04T19:45:46.123Z level=warn component=sweeper msg=trace_orphaned
//   //   trace_id=0193a1b2-... age_s=1801.2            (one line)
//   format_json(record, time);
//   // {"ts":"2026-12-04T19:45:46.123Z","level":"warn","component":"sweeper",
//   //  "msg":"trace_orphaned","trace_id":"0193a1b2-...","age_s":"1801.2"}

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "tracewatch/logger.hpp"

namespace tracewatch {

enum class log_encoding { logfmt, json };

// Parses "logfmt" or "json"; std::nullopt for anything else.
std::optional<log_encoding> parse_log_encoding(std::string_view text) noexcept;

// Parses "debug", "info", "warn" or "error"; std::nullopt for anything else.
std::optional<log_level> parse_log_level(std::string_view text) noexcept;

// Formats `time` as UTC with millisecond precision: 2026-12-04T19:45:46.123Z.
std::string format_log_timestamp(std::chrono::system_clock::time_point time);

// Formats a record as one logfmt line, without the line feed.
//
// A value is written bare unless it is empty or contains a space, a control
// character, '=' or '"'; then it is double-quoted, and inside the quotes
// backslash, '"', line feed, carriage return and tab are escaped as \\, \",
// \n, \r and \t, and other control characters as \u00XX. A key is written
// with every byte that would break the key=value syntax replaced by '_'.
// A field named like a fixed key (ts, level, component, msg) is written with
// the prefix `field_` so that no key appears twice. Invalid UTF-8 is replaced
// with U+FFFD in keys and values.
std::string format_logfmt(const log_record& record, std::chrono::system_clock::time_point time);

// Formats a record as one JSON object on one line, without the line feed.
// Every value is a JSON string, because log_field stores text: numbers stay
// strings such as "1801.2". Control characters are escaped, invalid UTF-8 is
// replaced with U+FFFD, and fixed key names get the `field_` prefix as above.
std::string format_json(const log_record& record, std::chrono::system_clock::time_point time);

// Formats with the chosen encoding.
std::string format_log_line(log_encoding encoding, const log_record& record,
                            std::chrono::system_clock::time_point time);

}  // namespace tracewatch
