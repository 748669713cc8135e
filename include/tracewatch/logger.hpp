// The logger that the library writes through. The library never logs by
// itself: every component takes a `logger`, and a default-constructed one
// discards everything. The command-line program supplies a sink that writes
// logfmt or JSON lines through spdlog.
//
// A log record is an event name (snake_case, such as `trace_orphaned`), the
// component that emitted it, and key/value fields. Sinks must not block for
// long and may be called from any thread the library runs on.

#pragma once

#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace tracewatch {

enum class log_level { debug, info, warn, error };

std::string_view to_string(log_level level) noexcept;

// One key/value pair of a record. The value is already formatted as text.
struct log_field {
  std::string_view key;
  std::string value;

  template <class T>
  log_field(std::string_view k, const T& v) : key(k), value(fmt::format("{}", v)) {}
  log_field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  log_field(std::string_view k, std::string_view v) : key(k), value(v) {}
  log_field(std::string_view k, const char* v) : key(k), value(v) {}
};

struct log_record {
  log_level level;
  std::string_view component;
  std::string_view event;
  std::span<const log_field> fields;
};

class logger {
 public:
  using sink = std::function<void(const log_record&)>;

  // A logger that discards every record.
  logger() = default;
  logger(sink s, log_level min_level) : sink_(std::move(s)), min_level_(min_level) {}

  // Returns a copy that tags its records with `component`.
  logger with_component(std::string_view component) const {
    logger copy = *this;
    copy.component_ = std::string(component);
    return copy;
  }

  bool enabled(log_level level) const noexcept { return sink_ && level >= min_level_; }

  void log(log_level level, std::string_view event,
           std::initializer_list<log_field> fields = {}) const {
    if (!enabled(level)) return;
    sink_(log_record{level, component_, event,
                     std::span<const log_field>(fields.begin(), fields.size())});
  }
  void debug(std::string_view event, std::initializer_list<log_field> f = {}) const { log(log_level::debug, event, f); }
  void info(std::string_view event, std::initializer_list<log_field> f = {}) const { log(log_level::info, event, f); }
  void warn(std::string_view event, std::initializer_list<log_field> f = {}) const { log(log_level::warn, event, f); }
  void error(std::string_view event, std::initializer_list<log_field> f = {}) const { log(log_level::error, event, f); }

 private:
  sink sink_;
  log_level min_level_ = log_level::info;
  std::string component_;
};

}  // namespace tracewatch
