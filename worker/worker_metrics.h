// What a worker group's leader tells Prometheus: how long the model took to load, each denoising step by family and
// layout, each job's peak device memory and cache bytes, and how long encoding took.
#pragma once

#include <cstdint>
#include <string>

#include "metrics/registry.h"
#include "models/generation.h"

namespace vidgen::worker {

class WorkerMetrics {
 public:
  // `family` and `layout` ("ulysses2_ring1_cfg1") label every step.
  WorkerMetrics(metrics::Registry& registry, std::string family, std::string layout);

  void Loaded(double seconds);
  void Stepped(double seconds);
  // A job that produced its video: its pipeline's statistics, its peak device memory and its encoding time.
  void Generated(const GenerationStats& stats, std::int64_t peak_memory_bytes, double encode_seconds);
  void Ended(const std::string& outcome);  // succeeded, failed, cancelled, lease_lost

 private:
  const std::string family_, layout_;
  metrics::Family &load_seconds_, &step_seconds_, &peak_memory_bytes_, &cache_bytes_, &encode_seconds_, &jobs_;
};

}  // namespace vidgen::worker
