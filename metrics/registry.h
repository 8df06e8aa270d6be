// Metrics in Prometheus's text exposition format (version 0.0.4): counters, gauges and histograms by label values,
// kept in memory and rendered when scraped. Thread-safe. Names and label names are the program's own (checked when
// declared); label values may be anything a client sent and are escaped when rendered.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vidgen::metrics {

// Label values in the order of the family's label names.
using LabelValues = std::vector<std::string>;

enum class Type { kCounter, kGauge, kHistogram };

// One metric name: its type, help, label names and a value (or histogram) per label set.
class Family {
 public:
  Family(std::string name, Type type, std::string help, std::vector<std::string> labels, std::vector<double> bounds);

  void Add(const LabelValues& labels, double delta = 1);                          // counters and gauges
  void Set(const LabelValues& labels, double value);                              // gauges
  void Observe(const LabelValues& labels, double value, std::int64_t count = 1);  // histograms: `count` times
  // Gauges recomputed at each scrape: drops every label set first, so that one gone from the source goes too.
  void Clear();

  const std::string& name() const { return name_; }
  void Render(std::string& out) const;

 private:
  struct Series {
    double value = 0;                  // counter or gauge; a histogram's sum
    std::vector<std::int64_t> counts;  // a histogram's per-bucket counts (not cumulative), +Inf last
    std::int64_t count = 0;
  };
  Series& At(const LabelValues& labels);  // needs mutex_

  const std::string name_, help_;
  const Type type_;
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;  // histogram bucket upper bounds, ascending
  mutable std::mutex mutex_;
  std::map<LabelValues, Series> series_;
};

class Registry {
 public:
  // Declares a family; the reference stays valid as long as the registry. Throws std::invalid_argument for a name
  // or label name Prometheus does not accept, or a name declared twice.
  Family& Counter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family& Gauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family& Histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                    std::vector<double> bounds);

  // Runs before every render: where gauges are read from their source (the job store's counts) rather than kept.
  void OnScrape(std::function<void()> collect);

  // Every family, in the order declared. A collector that throws is logged, and what it had set is rendered.
  std::string Render();

 private:
  Family& Declare(const std::string& name, Type type, const std::string& help, std::vector<std::string> labels,
                  std::vector<double> bounds);

  std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> collectors_;
};

// Bucket bounds start, start·factor, …: `count` of them.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

}  // namespace vidgen::metrics
