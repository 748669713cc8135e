#include "tracewatch/metrics.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace tracewatch {
namespace {

TEST(Metrics, HeaderExampleRenders) {
  metrics_registry registry;
  counter& sweeps = registry.add_counter("tracewatch_sweeps_total", "Sweeps finished.");
  counter_family& errors = registry.add_counter_family(
      "tracewatch_redis_errors_total", "Failed Redis requests, by kind.", {"kind"});
  sweeps.inc();
  errors.with({"timeout"}).inc(2);

  EXPECT_EQ(registry.render(),
            "# HELP tracewatch_sweeps_total Sweeps finished.\n"
            "# TYPE tracewatch_sweeps_total counter\n"
            "tracewatch_sweeps_total 1\n"
            "# HELP tracewatch_redis_errors_total Failed Redis requests, by kind.\n"
            "# TYPE tracewatch_redis_errors_total counter\n"
            "tracewatch_redis_errors_total{kind=\"timeout\"} 2\n");
}

TEST(Metrics, ChildrenSortedByLabelValues) {
  metrics_registry registry;
  auto& family = registry.add_counter_family("requests_total", "Requests.", {"kind", "shard"});
  family.with({"write", "1"}).inc();
  family.with({"read", "2"}).inc(3);
  family.with({"read", "10"}).inc(5);

  EXPECT_EQ(registry.render(),
            "# HELP requests_total Requests.\n"
            "# TYPE requests_total counter\n"
            "requests_total{kind=\"read\",shard=\"10\"} 5\n"
            "requests_total{kind=\"read\",shard=\"2\"} 3\n"
            "requests_total{kind=\"write\",shard=\"1\"} 1\n");
}

TEST(Metrics, WithReturnsSameChild) {
  metrics_registry registry;
  auto& family = registry.add_counter_family("requests_total", "Requests.", {"kind"});
  counter& first = family.with({"read"});
  counter& second = family.with({"read"});
  EXPECT_EQ(&first, &second);
}

TEST(Metrics, FamilyWithoutChildrenShowsHelpAndType) {
  metrics_registry registry;
  registry.add_gauge_family("leader", "1 while this process holds the lease.", {"shard"});
  EXPECT_EQ(registry.render(),
            "# HELP leader 1 while this process holds the lease.\n"
            "# TYPE leader gauge\n");
}

TEST(Metrics, GaugeValuesUseShortestDecimal) {
  metrics_registry registry;
  auto& family = registry.add_gauge_family("g", "G.", {"case"});
  family.with({"a_tenth"}).set(0.1);
  family.with({"b_negative"}).set(-2.5);
  family.with({"c_whole"}).set(100.0);
  family.with({"d_inf"}).set(std::numeric_limits<double>::infinity());
  family.with({"e_minus_inf"}).set(-std::numeric_limits<double>::infinity());
  family.with({"f_nan"}).set(std::numeric_limits<double>::quiet_NaN());

  EXPECT_EQ(registry.render(),
            "# HELP g G.\n"
            "# TYPE g gauge\n"
            "g{case=\"a_tenth\"} 0.1\n"
            "g{case=\"b_negative\"} -2.5\n"
            "g{case=\"c_whole\"} 100\n"
            "g{case=\"d_inf\"} +Inf\n"
            "g{case=\"e_minus_inf\"} -Inf\n"
            "g{case=\"f_nan\"} NaN\n");
}

TEST(Metrics, GaugeIncAndDec) {
  metrics_registry registry;
  gauge& open = registry.add_gauge("open_connections", "Open connections.");
  open.inc();
  open.inc(2.5);
  open.dec();
  EXPECT_DOUBLE_EQ(open.value(), 2.5);
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  metrics_registry registry;
  histogram& h = registry.add_histogram("tracewatch_sweep_duration_seconds", "Sweep duration.",
                                        {0.1, 1.0, 10.0});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le means <=)
  h.observe(0.5);
  h.observe(20.0);

  EXPECT_EQ(registry.render(),
            "# HELP tracewatch_sweep_duration_seconds Sweep duration.\n"
            "# TYPE tracewatch_sweep_duration_seconds histogram\n"
            "tracewatch_sweep_duration_seconds_bucket{le=\"0.1\"} 2\n"
            "tracewatch_sweep_duration_seconds_bucket{le=\"1\"} 3\n"
            "tracewatch_sweep_duration_seconds_bucket{le=\"10\"} 3\n"
            "tracewatch_sweep_duration_seconds_bucket{le=\"+Inf\"} 4\n"
            "tracewatch_sweep_duration_seconds_sum 20.65\n"
            "tracewatch_sweep_duration_seconds_count 4\n");
}

TEST(Metrics, HistogramWithLabelsPutsLeLast) {
  metrics_registry registry;
  auto& family = registry.add_histogram_family("script_seconds", "Script run time.", {"script"}, {1.0});
  family.with({"sweep"}).observe(2.0);

  EXPECT_EQ(registry.render(),
            "# HELP script_seconds Script run time.\n"
            "# TYPE script_seconds histogram\n"
            "script_seconds_bucket{script=\"sweep\",le=\"1\"} 0\n"
            "script_seconds_bucket{script=\"sweep\",le=\"+Inf\"} 1\n"
            "script_seconds_sum{script=\"sweep\"} 2\n"
            "script_seconds_count{script=\"sweep\"} 1\n");
}

TEST(Metrics, HistogramDropsNaN) {
  histogram h({1.0});
  h.observe(std::numeric_limits<double>::quiet_NaN());
  h.observe(0.5);
  const auto snap = h.read();
  EXPECT_EQ(snap.count, 1u);
  EXPECT_DOUBLE_EQ(snap.sum, 0.5);
}

TEST(Metrics, HistogramObservesDurationInSeconds) {
  histogram h({0.001, 1.0});
  h.observe(std::chrono::milliseconds(250));
  const auto snap = h.read();
  EXPECT_DOUBLE_EQ(snap.sum, 0.25);
  EXPECT_EQ(snap.cumulative[0], 0u);
  EXPECT_EQ(snap.cumulative[1], 1u);
}

TEST(Metrics, LabelValuesAreEscaped) {
  metrics_registry registry;
  auto& family = registry.add_counter_family("c_total", "C.", {"path"});
  family.with({"a\\b\"c\nd"}).inc();
  EXPECT_NE(registry.render().find("c_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos);
}

TEST(Metrics, HelpTextIsEscaped) {
  metrics_registry registry;
  registry.add_counter("c_total", "Line one\nback\\slash \"quotes\" stay");
  EXPECT_NE(registry.render().find("# HELP c_total Line one\\nback\\\\slash \"quotes\" stay\n"),
            std::string::npos);
}

TEST(Metrics, SameRegistrationReturnsSameFamily) {
  metrics_registry registry;
  auto& first = registry.add_counter_family("c_total", "C.", {"kind"});
  auto& second = registry.add_counter_family("c_total", "C.", {"kind"});
  EXPECT_EQ(&first, &second);
}

TEST(Metrics, ConflictingRegistrationThrows) {
  metrics_registry registry;
  registry.add_counter_family("c_total", "C.", {"kind"});
  EXPECT_THROW(registry.add_gauge_family("c_total", "C.", {"kind"}), std::invalid_argument);
  EXPECT_THROW(registry.add_counter_family("c_total", "C.", {"other"}), std::invalid_argument);
  registry.add_histogram("h_seconds", "H.", {1.0});
  EXPECT_THROW(registry.add_histogram("h_seconds", "H.", {2.0}), std::invalid_argument);
}

TEST(Metrics, InvalidNamesThrow) {
  metrics_registry registry;
  EXPECT_THROW(registry.add_counter("", "Empty."), std::invalid_argument);
  EXPECT_THROW(registry.add_counter("1st_total", "Leading digit."), std::invalid_argument);
  EXPECT_THROW(registry.add_counter("has-dash_total", "Dash."), std::invalid_argument);
  EXPECT_THROW(registry.add_counter_family("c_total", "C.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(registry.add_counter_family("c_total", "C.", {"has:colon"}), std::invalid_argument);
  EXPECT_THROW(registry.add_counter_family("c_total", "C.", {"kind", "kind"}), std::invalid_argument);
  EXPECT_THROW(registry.add_histogram_family("h", "H.", {"le"}, {1.0}), std::invalid_argument);
}

TEST(Metrics, ValidNamesAccepted) {
  metrics_registry registry;
  EXPECT_NO_THROW(registry.add_counter("ns:sub_total", "Colon allowed in metric names."));
  EXPECT_NO_THROW(registry.add_counter_family("d_total", "D.", {"_x", "Kind2"}));
  EXPECT_NO_THROW(registry.add_counter_family("e_total", "E.", {"le"}));  // only histograms reserve le
}

TEST(Metrics, InvalidBucketsThrow) {
  metrics_registry registry;
  EXPECT_THROW(registry.add_histogram("a", "A.", {}), std::invalid_argument);
  EXPECT_THROW(registry.add_histogram("b", "B.", {1.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(registry.add_histogram("c", "C.", {2.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(registry.add_histogram("d", "D.", {1.0, std::numeric_limits<double>::infinity()}),
               std::invalid_argument);
}

TEST(Metrics, WrongLabelCountThrows) {
  metrics_registry registry;
  auto& family = registry.add_counter_family("c_total", "C.", {"kind"});
  EXPECT_THROW(family.with({}), std::invalid_argument);
  EXPECT_THROW(family.with({"a", "b"}), std::invalid_argument);
}

TEST(Metrics, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(0.001, 10.0, 3).size(), 3u);
  EXPECT_DOUBLE_EQ(exponential_buckets(0.001, 10.0, 3)[2], 0.1);
  EXPECT_THROW(exponential_buckets(0.0, 2.0, 3), std::invalid_argument);
  EXPECT_THROW(exponential_buckets(1.0, 1.0, 3), std::invalid_argument);
  EXPECT_THROW(exponential_buckets(1.0, 2.0, 0), std::invalid_argument);
}

TEST(Metrics, DefaultDurationBucketsAreValid) {
  metrics_registry registry;
  EXPECT_NO_THROW(registry.add_histogram("d_seconds", "D."));
}

// Many threads update the same metrics while another renders: no update is
// lost, and every rendering is well formed (TSan checks the rest).
TEST(MetricsConcurrency, UpdatesFromManyThreadsAreCounted) {
  metrics_registry registry;
  counter& total = registry.add_counter("events_total", "Events.");
  auto& by_kind = registry.add_counter_family("kinds_total", "Events by kind.", {"kind"});
  gauge& level = registry.add_gauge("level", "Level.");
  histogram& durations = registry.add_histogram("d_seconds", "D.", {0.5});

  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    while (!done.load()) {
      const std::string text = registry.render();
      EXPECT_EQ(text.back(), '\n');
    }
  });

  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      counter& mine = by_kind.with({t % 2 == 0 ? "even" : "odd"});
      for (int i = 0; i < kPerThread; ++i) {
        total.inc();
        mine.inc();
        level.inc();
        durations.observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  renderer.join();

  EXPECT_EQ(total.value(), std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(by_kind.with({"even"}).value() + by_kind.with({"odd"}).value(),
            std::uint64_t{kThreads} * kPerThread);
  EXPECT_DOUBLE_EQ(level.value(), double{kThreads} * kPerThread);
  const auto snap = durations.read();
  EXPECT_EQ(snap.count, std::uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(snap.cumulative[0], std::uint64_t{kThreads} * kPerThread / 2);
}

}  // namespace
}  // namespace tracewatch
