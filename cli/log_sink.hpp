// The program's log output: each record formatted as one logfmt or JSON line
// (tracewatch/log_format.hpp) and written to stderr through spdlog.

#pragma once

#include <optional>

#include "cli.hpp"
#include "tracewatch/log_format.hpp"
#include "tracewatch/log_rate_limiter.hpp"
#include "tracewatch/logger.hpp"

namespace tracewatch::cli {

struct log_sink_options {
  log_encoding encoding = log_encoding::logfmt;
  log_level min_level = log_level::info;
  // When set, lines are limited per component and event (a key such as
  // "sweeper.trace_orphaned"), and the next line let through for a key gets
  // the field `suppressed` with the number of lines left out before it.
  std::optional<log_rate_limiter::options> rate_limit;
};

// Returns a logger that writes to stderr, one line per record, flushed at
// once. Thread-safe: the loggers share one spdlog logger with a mutex-guarded
// sink, so lines from different threads never interleave.
logger make_stderr_logger(const log_sink_options& options);

// The stderr logger that --log-format and --log-level choose, without a rate
// limit. CLI11 has checked both values; an unknown one falls back to logfmt
// or info.
logger make_logger(const global_options& globals);

}  // namespace tracewatch::cli
