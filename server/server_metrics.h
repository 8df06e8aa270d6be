// What vidgen-server tells Prometheus: jobs by model and state, queue depth and the oldest queued job's age (read
// from the job store at each scrape, so they survive restarts), groups serving each model, and counters and
// histograms of what the services did since the server started.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "metrics/registry.h"
#include "server/group_registry.h"
#include "server/job_store.h"

namespace vidgen::server {

class ServerMetrics {
 public:
  ServerMetrics(metrics::Registry& registry, JobStore& jobs, GroupRegistry& groups, const Clock& clock);

  void Submitted(const std::string& model);
  void Leased(const JobLease& lease);
  // Denoising heartbeats time the steps between them (each step of a heartbeat that reports several gets their
  // mean). A heartbeat of a job this server did not lease (leased before a restart) counts no steps.
  void Progressed(const v1::HeartbeatRequest& heartbeat);
  void Uploaded(std::int64_t bytes);
  void Completed(const v1::CompleteJobRequest& request, const JobStore::Completed& job);
  void Ended(const std::string& job_id);  // failed, requeued or cancelled by its group
  void Lapsed(int leases);

 private:
  struct Running {
    std::string model;
    int step = 0;              // the last denoising step reported
    std::int64_t step_ms = 0;  // when it was reported (0: none yet)
    std::int64_t seen_ms = 0;
  };
  void Collect();

  JobStore& jobs_;
  GroupRegistry& groups_;
  const Clock& clock_;
  metrics::Family &jobs_by_state_, &queue_depth_, &queue_oldest_, &groups_by_model_;
  metrics::Family &submitted_, &leased_, &completed_, &lapsed_, &upload_bytes_, &steps_, &predicted_share_;
  metrics::Family &job_seconds_, &queue_wait_seconds_, &step_seconds_;
  std::mutex mutex_;
  std::unordered_map<std::string, Running> running_;                           // by job id; GUARDED_BY(mutex_)
  std::unordered_map<std::string, std::pair<double, double>> steps_by_model_;  // full, predicted; GUARDED_BY(mutex_)
};

}  // namespace vidgen::server
