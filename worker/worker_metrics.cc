#include "worker/worker_metrics.h"

namespace vidgen::worker {

WorkerMetrics::WorkerMetrics(metrics::Registry& registry, std::string family, std::string layout)
    : family_(std::move(family)),
      layout_(std::move(layout)),
      load_seconds_(registry.Gauge("vidgen_worker_load_seconds", "How long the model took to load")),
      step_seconds_(registry.Histogram("vidgen_worker_step_seconds", "One denoising step", {"family", "layout"},
                                       metrics::ExponentialBuckets(0.01, 2, 14))),
      peak_memory_bytes_(registry.Histogram("vidgen_worker_job_peak_memory_bytes",
                                            "Each job's peak device memory on the leader", {},
                                            metrics::ExponentialBuckets(64.0 * (1 << 20), 2, 12))),
      cache_bytes_(registry.Gauge("vidgen_worker_cache_bytes",
                                  "The last job's peak feature-cache bytes on the leader (0: no cache)")),
      encode_seconds_(registry.Histogram("vidgen_worker_encode_seconds", "Encoding a job's video", {},
                                         metrics::ExponentialBuckets(0.01, 2, 14))),
      jobs_(registry.Counter("vidgen_worker_jobs_total", "Jobs this group ended, by outcome", {"outcome"})) {}

void WorkerMetrics::Loaded(double seconds) {
  load_seconds_.Set({}, seconds);
}

void WorkerMetrics::Stepped(double seconds) {
  step_seconds_.Observe({family_, layout_}, seconds);
}

void WorkerMetrics::Generated(const GenerationStats& stats, std::int64_t peak_memory_bytes, double encode_seconds) {
  peak_memory_bytes_.Observe({}, static_cast<double>(peak_memory_bytes));
  cache_bytes_.Set({}, static_cast<double>(stats.cache_peak_bytes));
  encode_seconds_.Observe({}, encode_seconds);
}

void WorkerMetrics::Ended(const std::string& outcome) {
  jobs_.Add({outcome});
}

}  // namespace vidgen::worker
