// Prometheus metrics: counters, gauges and histograms, each optionally split
// by a small fixed set of labels, rendered in the text exposition format 0.0.4.
//
// Updating a metric is lock-free (relaxed atomics) and safe from any thread.
// Registering a metric and looking up a labelled child take a mutex, so a hot
// path looks its child up once and keeps the reference. Every reference
// returned here stays valid for the registry's lifetime.
//
// Names follow the Prometheus conventions: a `tracewatch_` prefix, base units
// (`_seconds`, `_bytes`) and a `_total` suffix on counters.
//
// Example (metrics_test.cpp runs it):
//   metrics_registry registry;
//   counter& sweeps = registry.add_counter("tracewatch_sweeps_total", "Sweeps finished.");
//   counter_family& errors = registry.add_counter_family(
//       "tracewatch_redis_errors_total", "Failed Redis requests, by kind.", {"kind"});
//   sweeps.inc();
//   errors.with({"timeout"}).inc(2);
//   registry.render();
//   // # HELP tracewatch_sweeps_total Sweeps finished.
//   // # TYPE tracewatch_sweeps_total counter
//   // tracewatch_sweeps_total 1
//   // # HELP tracewatch_redis_errors_total Failed Redis requests, by kind.
//   // # TYPE tracewatch_redis_errors_total counter
//   // tracewatch_redis_errors_total{kind="timeout"} 2

#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tracewatch {

// A value that only goes up, such as the number of sweeps finished.
class counter {
 public:
  void inc(std::uint64_t amount = 1) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down, such as the number of open connections.
class gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1.0) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1.0) noexcept { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into buckets with fixed upper bounds, plus their sum.
class histogram {
 public:
  // REQUIRES: `upper_bounds` is strictly increasing and finite (the registry
  // checks this before it constructs one). The +Inf bucket is implicit.
  explicit histogram(std::vector<double> upper_bounds);

  // Counts `value` into the first bucket whose upper bound is >= value. A NaN
  // observation is dropped, because it would turn the sum into NaN for good.
  void observe(double value) noexcept;

  // Observes a duration in seconds, the Prometheus base unit.
  template <class Rep, class Period>
  void observe(std::chrono::duration<Rep, Period> elapsed) noexcept {
    observe(std::chrono::duration<double>(elapsed).count());
  }

  // A copy for rendering. `cumulative[i]` counts the observations <=
  // upper_bounds()[i], the last entry is the +Inf bucket, and `count` equals
  // that last entry. Under concurrent observe() calls the sum may include an
  // observation that the buckets do not show yet, or the reverse.
  struct snapshot {
    std::vector<std::uint64_t> cumulative;
    double sum = 0.0;
    std::uint64_t count = 0;
  };
  snapshot read() const;

  const std::vector<double>& upper_bounds() const noexcept { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative; +Inf last
  std::atomic<double> sum_{0.0};
};

// Bucket bounds for request and sweep durations in seconds: 1 ms to 10 s.
std::vector<double> default_duration_buckets();

// `count` bounds: start, start*factor, start*factor^2, ...
// REQUIRES: start > 0, factor > 1, count >= 1.
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

enum class metric_type { counter, gauge, histogram };

namespace detail {

// The type-independent part of a family, which the registry stores and renders.
class family_base {
 public:
  family_base(std::string name, std::string help, metric_type type,
              std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), type_(type),
        label_names_(std::move(label_names)) {}
  virtual ~family_base() = default;
  family_base(const family_base&) = delete;
  family_base& operator=(const family_base&) = delete;

  const std::string& name() const noexcept { return name_; }
  metric_type type() const noexcept { return type_; }
  const std::vector<std::string>& label_names() const noexcept { return label_names_; }

  // Appends the HELP and TYPE lines and one sample line per child.
  void render(std::string& out) const;

 protected:
  virtual void render_samples(std::string& out) const = 0;

 private:
  std::string name_;
  std::string help_;
  metric_type type_;
  std::vector<std::string> label_names_;
};

}  // namespace detail

// One metric name with one child per combination of label values, such as
// tracewatch_redis_errors_total{kind="timeout"} and {kind="protocol"}.
template <class Metric>
class metric_family final : public detail::family_base {
 public:
  metric_family(std::string name, std::string help, std::vector<std::string> label_names,
                std::vector<double> upper_bounds);

  // Returns the child for these label values, in the order of label_names(),
  // creating it at zero on first use. Takes a mutex: keep the reference.
  // Throws std::invalid_argument if the number of values differs from the
  // number of label names.
  Metric& with(std::initializer_list<std::string_view> label_values);

  // Bucket bounds of histogram children; empty for counters and gauges.
  const std::vector<double>& upper_bounds() const noexcept { return upper_bounds_; }

 private:
  void render_samples(std::string& out) const override;

  std::vector<double> upper_bounds_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

using counter_family = metric_family<counter>;
using gauge_family = metric_family<gauge>;
using histogram_family = metric_family<histogram>;

extern template class metric_family<counter>;
extern template class metric_family<gauge>;
extern template class metric_family<histogram>;

// The set of metric families that one /metrics endpoint serves.
//
// Registration validates names: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*,
// label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__", and a
// histogram may not use the label "le". Registering a name again with the
// same type, labels and buckets returns the existing family, so components
// that share a metric can each register it. Any other mismatch, and an
// invalid name, throws std::invalid_argument naming the metric, because both
// are programming errors rather than operator input.
//
// Thread safety: every member may be called from any thread.
class metrics_registry {
 public:
  metrics_registry() = default;
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  counter& add_counter(std::string name, std::string help);
  gauge& add_gauge(std::string name, std::string help);
  // REQUIRES: `upper_bounds` is non-empty, strictly increasing and finite.
  histogram& add_histogram(std::string name, std::string help,
                           std::vector<double> upper_bounds = default_duration_buckets());

  counter_family& add_counter_family(std::string name, std::string help,
                                     std::vector<std::string> label_names);
  gauge_family& add_gauge_family(std::string name, std::string help,
                                 std::vector<std::string> label_names);
  histogram_family& add_histogram_family(std::string name, std::string help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> upper_bounds = default_duration_buckets());

  // Returns every family in the text exposition format 0.0.4, in the order
  // of registration, children sorted by label values. A family without
  // children yet shows its HELP and TYPE lines only.
  std::string render() const;

 private:
  template <class Metric>
  metric_family<Metric>& add_family(std::string name, std::string help, metric_type type,
                                    std::vector<std::string> label_names,
                                    std::vector<double> upper_bounds);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<detail::family_base>> families_;
};

// The Content-Type of render()'s output.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Escapes a label value for the text format: backslash, double quote and
// line feed become \\, \" and \n.
std::string escape_label_value(std::string_view value);

// Escapes HELP text: backslash and line feed become \\ and \n.
std::string escape_help(std::string_view help);

// Formats a sample value as the text format expects: the shortest decimal
// that reads back as the same double, or NaN, +Inf, -Inf.
std::string format_sample_value(double value);

}  // namespace tracewatch
