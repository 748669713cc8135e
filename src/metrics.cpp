#include "tracewatch/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace tracewatch {
namespace {

bool is_metric_name(std::string_view name) {
  if (name.empty()) return false;
  auto first_ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  };
  if (!first_ok(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return first_ok(c) || (c >= '0' && c <= '9'); });
}

bool is_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  auto first_ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!first_ok(name.front())) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return first_ok(c) || (c >= '0' && c <= '9'); });
}

std::string_view to_string(metric_type type) {
  switch (type) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

// Appends `{a="x",b="y"` without the closing brace, or nothing when there
// are no labels, so that a histogram can add its `le` label.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, bool close) {
  if (names.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (close) out += '}';
}

void append_sample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view value) {
  out += name;
  append_labels(out, names, values, true);
  out += ' ';
  out += value;
  out += '\n';
}

void append_histogram(std::string& out, std::string_view name, const std::vector<std::string>& names,
                      const std::vector<std::string>& values, const histogram& h) {
  const histogram::snapshot snap = h.read();
  const auto& bounds = h.upper_bounds();
  for (std::size_t i = 0; i <= bounds.size(); ++i) {
    out += name;
    out += "_bucket";
    if (names.empty()) {
      out += '{';
    } else {
      append_labels(out, names, values, false);
      out += ',';
    }
    out += "le=\"";
    out += i < bounds.size() ? format_sample_value(bounds[i]) : std::string("+Inf");
    out += "\"} ";
    out += fmt::format("{}", snap.cumulative[i]);
    out += '\n';
  }
  append_sample(out, fmt::format("{}_sum", name), names, values, format_sample_value(snap.sum));
  append_sample(out, fmt::format("{}_count", name), names, values, fmt::format("{}", snap.count));
}

void check_bounds(std::string_view name, const std::vector<double>& bounds) {
  if (bounds.empty()) {
    throw std::invalid_argument(fmt::format("histogram '{}' has no bucket bounds", name));
  }
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
      throw std::invalid_argument(fmt::format(
          "histogram '{}' bucket bounds must be finite and strictly increasing; bound {} is {}",
          name, i, bounds[i]));
    }
  }
}

}  // namespace

// --- histogram -------------------------------------------------------------

histogram::histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds_.size() + 1)) {}

void histogram::observe(double value) noexcept {
  if (std::isnan(value)) return;
  // lower_bound finds the first bound >= value; past the end is +Inf.
  auto it = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  auto index = static_cast<std::size_t>(it - upper_bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot snap;
  snap.cumulative.resize(upper_bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = running;
  }
  // The count is derived from the buckets so that it always equals +Inf.
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::vector<double> default_duration_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0.0) || !(factor > 1.0) || count == 0) {
    throw std::invalid_argument(fmt::format(
        "exponential_buckets needs start > 0, factor > 1 and count >= 1; got {}, {}, {}",
        start, factor, count));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (std::size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

// --- families ----------------------------------------------------------------

void detail::family_base::render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  out += escape_help(help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += to_string(type_);
  out += '\n';
  render_samples(out);
}

template <class Metric>
metric_family<Metric>::metric_family(std::string name, std::string help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> upper_bounds)
    : family_base(std::move(name), std::move(help),
                  std::is_same_v<Metric, counter> ? metric_type::counter
                  : std::is_same_v<Metric, gauge> ? metric_type::gauge
                                                  : metric_type::histogram,
                  std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

template <class Metric>
Metric& metric_family<Metric>::with(std::initializer_list<std::string_view> label_values) {
  if (label_values.size() != label_names().size()) {
    throw std::invalid_argument(fmt::format("metric '{}' has {} labels but {} values were given",
                                            name(), label_names().size(), label_values.size()));
  }
  std::vector<std::string> key(label_values.begin(), label_values.end());

  std::lock_guard lock(mutex_);
  auto it = children_.find(key);
  if (it != children_.end()) return *it->second;
  std::unique_ptr<Metric> child;
  if constexpr (std::is_same_v<Metric, histogram>) {
    child = std::make_unique<histogram>(upper_bounds_);
  } else {
    child = std::make_unique<Metric>();
  }
  Metric& ref = *child;
  children_.emplace(std::move(key), std::move(child));
  return ref;
}

template <class Metric>
void metric_family<Metric>::render_samples(std::string& out) const {
  std::lock_guard lock(mutex_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<Metric, counter>) {
      append_sample(out, name(), label_names(), values, fmt::format("{}", child->value()));
    } else if constexpr (std::is_same_v<Metric, gauge>) {
      append_sample(out, name(), label_names(), values, format_sample_value(child->value()));
    } else {
      append_histogram(out, name(), label_names(), values, *child);
    }
  }
}

template class metric_family<counter>;
template class metric_family<gauge>;
template class metric_family<histogram>;

// --- registry ----------------------------------------------------------------

template <class Metric>
metric_family<Metric>& metrics_registry::add_family(std::string name, std::string help,
                                                    metric_type type,
                                                    std::vector<std::string> label_names,
                                                    std::vector<double> upper_bounds) {
  // Validate everything before taking the lock or storing anything.
  if (!is_metric_name(name)) {
    throw std::invalid_argument(fmt::format(
        "invalid metric name '{}': use letters, digits, '_' and ':', not starting with a digit", name));
  }
  for (std::size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!is_label_name(label) || (type == metric_type::histogram && label == "le")) {
      throw std::invalid_argument(fmt::format(
          "invalid label name '{}' on metric '{}': use letters, digits and '_', not starting "
          "with a digit or '__'; histograms may not use 'le'", label, name));
    }
    if (std::find(label_names.begin(), label_names.begin() + static_cast<std::ptrdiff_t>(i), label) !=
        label_names.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw std::invalid_argument(fmt::format("label '{}' appears twice on metric '{}'", label, name));
    }
  }
  if (type == metric_type::histogram) check_bounds(name, upper_bounds);

  std::lock_guard lock(mutex_);
  for (const auto& family : families_) {
    if (family->name() != name) continue;
    auto* same = dynamic_cast<metric_family<Metric>*>(family.get());
    if (same == nullptr || same->label_names() != label_names || same->upper_bounds() != upper_bounds) {
      throw std::invalid_argument(fmt::format(
          "metric '{}' is already registered with a different type, labels or buckets", name));
    }
    return *same;
  }
  auto family = std::make_unique<metric_family<Metric>>(std::move(name), std::move(help),
                                                        std::move(label_names), std::move(upper_bounds));
  auto& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

counter& metrics_registry::add_counter(std::string name, std::string help) {
  return add_counter_family(std::move(name), std::move(help), {}).with({});
}

gauge& metrics_registry::add_gauge(std::string name, std::string help) {
  return add_gauge_family(std::move(name), std::move(help), {}).with({});
}

histogram& metrics_registry::add_histogram(std::string name, std::string help,
                                           std::vector<double> upper_bounds) {
  return add_histogram_family(std::move(name), std::move(help), {}, std::move(upper_bounds)).with({});
}

counter_family& metrics_registry::add_counter_family(std::string name, std::string help,
                                                     std::vector<std::string> label_names) {
  return add_family<counter>(std::move(name), std::move(help), metric_type::counter,
                             std::move(label_names), {});
}

gauge_family& metrics_registry::add_gauge_family(std::string name, std::string help,
                                                 std::vector<std::string> label_names) {
  return add_family<gauge>(std::move(name), std::move(help), metric_type::gauge,
                           std::move(label_names), {});
}

histogram_family& metrics_registry::add_histogram_family(std::string name, std::string help,
                                                         std::vector<std::string> label_names,
                                                         std::vector<double> upper_bounds) {
  return add_family<histogram>(std::move(name), std::move(help), metric_type::histogram,
                               std::move(label_names), std::move(upper_bounds));
}

std::string metrics_registry::render() const {
  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& family : families_) family->render(out);
  return out;
}

// --- text format helpers -----------------------------------------------------

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_sample_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // fmt's default format is the shortest text that reads back as the same double.
  return fmt::format("{}", value);
}

}  // namespace tracewatch
