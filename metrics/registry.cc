#include "metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vidgen::metrics {
namespace {

bool ValidName(const std::string& name) {
  static const std::regex pattern("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name, pattern);
}

// A label value in the exposition format: backslash, double quote and line feed escaped.
std::string Escaped(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

// Go's and Prometheus's spelling of a sample value.
std::string Number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

Family::Family(std::string name, Type type, std::string help, std::vector<std::string> labels,
               std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      labels_(std::move(labels)),
      bounds_(std::move(bounds)) {}

Family::Series& Family::At(const LabelValues& labels) {
  if (labels.size() != labels_.size()) {
    throw std::invalid_argument(
        fmt::format("metric {} takes {} label values, not {}", name_, labels_.size(), labels.size()));
  }
  auto [it, added] = series_.try_emplace(labels);
  if (added && type_ == Type::kHistogram) it->second.counts.assign(bounds_.size() + 1, 0);
  return it->second;
}

void Family::Add(const LabelValues& labels, double delta) {
  std::lock_guard lock(mutex_);
  At(labels).value += delta;
}

void Family::Set(const LabelValues& labels, double value) {
  std::lock_guard lock(mutex_);
  At(labels).value = value;
}

void Family::Observe(const LabelValues& labels, double value, std::int64_t count) {
  const auto bucket = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                               bounds_.begin());  // the first bound ≥ value; +Inf past them
  std::lock_guard lock(mutex_);
  auto& series = At(labels);
  series.counts[bucket] += count;
  series.count += count;
  series.value += value * static_cast<double>(count);
}

void Family::Clear() {
  std::lock_guard lock(mutex_);
  series_.clear();
}

void Family::Render(std::string& out) const {
  std::lock_guard lock(mutex_);
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, help_, name_, TypeName(type_));
  const auto label_text = [&](const LabelValues& values, const std::string& extra) {
    std::string text;
    for (std::size_t i = 0; i < values.size(); ++i) {
      text += fmt::format("{}{}=\"{}\"", text.empty() ? "" : ",", labels_[i], Escaped(values[i]));
    }
    if (!extra.empty()) text += (text.empty() ? "" : ",") + extra;
    return text.empty() ? text : "{" + text + "}";
  };
  for (const auto& [values, series] : series_) {
    if (type_ != Type::kHistogram) {
      out += fmt::format("{}{} {}\n", name_, label_text(values, ""), Number(series.value));
      continue;
    }
    std::int64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += series.counts[i];
      const auto le = i < bounds_.size() ? Number(bounds_[i]) : "+Inf";
      out += fmt::format("{}_bucket{} {}\n", name_, label_text(values, "le=\"" + le + "\""), cumulative);
    }
    out += fmt::format("{}_sum{} {}\n", name_, label_text(values, ""), Number(series.value));
    out += fmt::format("{}_count{} {}\n", name_, label_text(values, ""), series.count);
  }
}

Family& Registry::Declare(const std::string& name, Type type, const std::string& help, std::vector<std::string> labels,
                          std::vector<double> bounds) {
  if (!ValidName(name)) throw std::invalid_argument("not a metric name: '" + name + "'");
  for (const auto& label : labels) {
    if (!ValidName(label) || label.find(':') != std::string::npos || label == "le") {
      throw std::invalid_argument("not a label name: '" + label + "'");
    }
  }
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    throw std::invalid_argument("the buckets of " + name + " do not ascend");
  }
  std::lock_guard lock(mutex_);
  for (const auto& family : families_) {
    if (family->name() == name) throw std::invalid_argument("metric " + name + " declared twice");
  }
  families_.push_back(std::make_unique<Family>(name, type, help, std::move(labels), std::move(bounds)));
  return *families_.back();
}

Family& Registry::Counter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return Declare(name, Type::kCounter, help, std::move(labels), {});
}

Family& Registry::Gauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  return Declare(name, Type::kGauge, help, std::move(labels), {});
}

Family& Registry::Histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                            std::vector<double> bounds) {
  return Declare(name, Type::kHistogram, help, std::move(labels), std::move(bounds));
}

void Registry::OnScrape(std::function<void()> collect) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() {
  std::lock_guard lock(mutex_);
  for (const auto& collect : collectors_) {
    try {
      collect();
    } catch (const std::exception& e) {
      spdlog::warn("metrics: a collector failed: {}", e.what());
    }
  }
  std::string out;
  for (const auto& family : families_) family->Render(out);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  for (double bound = start; static_cast<int>(bounds.size()) < count; bound *= factor) bounds.push_back(bound);
  return bounds;
}

}  // namespace vidgen::metrics
