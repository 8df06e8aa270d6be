// The metrics registry's text exposition: what Prometheus parses.
#include <gtest/gtest.h>

#include "metrics/registry.h"

namespace vidgen::metrics {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndCumulativeHistogramsInTheExpositionFormat) {
  Registry registry;
  auto& jobs = registry.Counter("jobs_total", "Jobs", {"model"});
  auto& depth = registry.Gauge("queue_depth", "Queued");
  auto& seconds = registry.Histogram("step_seconds", "A step", {"model"}, {0.5, 1, 2});
  jobs.Add({"wan"});
  jobs.Add({"wan"}, 2);
  jobs.Add({"a\"b\\c\nd"});
  depth.Set({}, 7);
  depth.Add({}, -2);
  seconds.Observe({"wan"}, 0.5);     // on a bound: counts in its bucket
  seconds.Observe({"wan"}, 1.5, 2);  // twice
  seconds.Observe({"wan"}, 10);      // past every bound
  EXPECT_EQ(registry.Render(),
            "# HELP jobs_total Jobs\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{model=\"a\\\"b\\\\c\\nd\"} 1\n"
            "jobs_total{model=\"wan\"} 3\n"
            "# HELP queue_depth Queued\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth 5\n"
            "# HELP step_seconds A step\n"
            "# TYPE step_seconds histogram\n"
            "step_seconds_bucket{model=\"wan\",le=\"0.5\"} 1\n"
            "step_seconds_bucket{model=\"wan\",le=\"1\"} 1\n"
            "step_seconds_bucket{model=\"wan\",le=\"2\"} 3\n"
            "step_seconds_bucket{model=\"wan\",le=\"+Inf\"} 4\n"
            "step_seconds_sum{model=\"wan\"} 13.5\n"
            "step_seconds_count{model=\"wan\"} 4\n");
}

TEST(MetricsTest, CollectorsRunAtEachScrapeAndClearedGaugesDropWhatWentAway) {
  Registry registry;
  auto& groups = registry.Gauge("groups", "Groups", {"model"});
  std::vector<std::string> live = {"a", "b"};
  registry.OnScrape([&] {
    groups.Clear();
    for (const auto& model : live) groups.Set({model}, 1);
  });
  registry.OnScrape([] { throw std::runtime_error("the store is down"); });  // logged; the rest still renders
  EXPECT_NE(registry.Render().find("groups{model=\"b\"} 1\n"), std::string::npos);
  live = {"a"};
  const auto text = registry.Render();
  EXPECT_NE(text.find("groups{model=\"a\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("model=\"b\""), std::string::npos);
}

TEST(MetricsTest, RefusesNamesPrometheusDoesNotTakeAndWrongLabelCounts) {
  Registry registry;
  EXPECT_THROW(registry.Counter("2jobs", "x"), std::invalid_argument);
  EXPECT_THROW(registry.Counter("jobs-total", "x"), std::invalid_argument);
  EXPECT_THROW(registry.Gauge("depth", "x", {"le"}), std::invalid_argument);
  EXPECT_THROW(registry.Gauge("depth", "x", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(registry.Histogram("h", "x", {}, {1, 1}), std::invalid_argument);
  auto& jobs = registry.Counter("jobs_total", "x", {"model"});
  EXPECT_THROW(registry.Gauge("jobs_total", "x"), std::invalid_argument);
  EXPECT_THROW(jobs.Add({}), std::invalid_argument);
  EXPECT_THROW(jobs.Add({"a", "b"}), std::invalid_argument);
}

TEST(MetricsTest, ExponentialBuckets) {
  EXPECT_EQ(ExponentialBuckets(0.25, 2, 4), (std::vector<double>{0.25, 0.5, 1, 2}));
}

}  // namespace
}  // namespace vidgen::metrics
