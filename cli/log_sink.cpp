#include "log_sink.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace tracewatch::cli {
namespace {

spdlog::level::level_enum to_spdlog(log_level level) {
  switch (level) {
    case log_level::debug: return spdlog::level::debug;
    case log_level::info: return spdlog::level::info;
    case log_level::warn: return spdlog::level::warn;
    case log_level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// One spdlog logger for the whole process, so that every tracewatch logger
// writes through the same mutex. It is not registered in spdlog's global
// registry: nothing else looks it up by name.
std::shared_ptr<spdlog::logger> stderr_logger() {
  static const std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto created = std::make_shared<spdlog::logger>("tracewatch", std::move(sink));
    created->set_pattern("%v");  // the line is complete already
    created->set_level(spdlog::level::trace);  // tracewatch::logger filters by level
    created->flush_on(spdlog::level::trace);
    return created;
  }();
  return instance;
}

}  // namespace

logger make_stderr_logger(const log_sink_options& options) {
  auto out = stderr_logger();
  std::shared_ptr<log_rate_limiter> limiter;
  if (options.rate_limit) limiter = std::make_shared<log_rate_limiter>(*options.rate_limit);

  auto sink = [out, limiter, encoding = options.encoding](const log_record& record) {
    const auto now = std::chrono::system_clock::now();
    if (!limiter) {
      out->log(to_spdlog(record.level), spdlog::string_view_t(format_log_line(encoding, record, now)));
      return;
    }

    std::string key(record.component);
    key += '.';
    key += record.event;
    const auto decision = limiter->admit(key, std::chrono::steady_clock::now());
    if (!decision.allowed) return;
    if (decision.suppressed == 0) {
      out->log(to_spdlog(record.level), spdlog::string_view_t(format_log_line(encoding, record, now)));
      return;
    }

    // Report the lines left out since the last one of this key.
    std::vector<log_field> fields(record.fields.begin(), record.fields.end());
    fields.emplace_back("suppressed", decision.suppressed);
    const log_record counted{record.level, record.component, record.event, fields};
    out->log(to_spdlog(record.level), spdlog::string_view_t(format_log_line(encoding, counted, now)));
  };
  return logger(std::move(sink), options.min_level);
}

logger make_logger(const global_options& globals) {
  log_sink_options options;
  options.encoding = parse_log_encoding(globals.log_format).value_or(log_encoding::logfmt);
  options.min_level = parse_log_level(globals.log_level).value_or(log_level::info);
  return make_stderr_logger(options);
}

}  // namespace tracewatch::cli
