#include "server/server_metrics.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace vidgen::server {
namespace {

constexpr JobState kStates[] = {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                                JobState::kCancelled};

std::string Lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

double Seconds(std::int64_t ms) {
  return static_cast<double>(std::max<std::int64_t>(ms, 0)) / 1000.0;
}

// A job that has not been heard of this long is gone without a word (its lease lapsed): its entry goes.
constexpr std::int64_t kForgetRunningMs = 3'600'000;

}  // namespace

ServerMetrics::ServerMetrics(metrics::Registry& registry, JobStore& jobs, GroupRegistry& groups, const Clock& clock)
    : jobs_(jobs),
      groups_(groups),
      clock_(clock),
      jobs_by_state_(registry.Gauge("vidgen_jobs", "Jobs in the store by model and state", {"model", "state"})),
      queue_depth_(registry.Gauge("vidgen_queue_depth", "Queued jobs by model", {"model"})),
      queue_oldest_(registry.Gauge("vidgen_queue_oldest_seconds",
                                   "Age of the oldest queued job by model (0: none queued)", {"model"})),
      groups_by_model_(registry.Gauge("vidgen_worker_groups", "Worker groups serving each model now", {"model"})),
      submitted_(registry.Counter("vidgen_jobs_submitted_total", "Jobs queued by SubmitJob", {"model"})),
      leased_(registry.Counter("vidgen_jobs_leased_total", "Leases given to worker groups", {"model"})),
      completed_(registry.Counter("vidgen_jobs_completed_total", "Jobs that succeeded", {"model"})),
      lapsed_(registry.Counter("vidgen_leases_lapsed_total", "Leases whose group stopped answering")),
      upload_bytes_(registry.Counter("vidgen_upload_bytes_total", "Video bytes uploaded by worker groups")),
      steps_(registry.Counter("vidgen_steps_total", "Denoising steps of succeeded jobs, computed or forecast",
                              {"model", "kind"})),
      predicted_share_(registry.Gauge("vidgen_predicted_step_share",
                                      "Share of the succeeded jobs' steps the cache forecast", {"model"})),
      job_seconds_(registry.Histogram("vidgen_job_seconds", "Submit to success", {"model"},
                                      metrics::ExponentialBuckets(0.5, 2, 14))),
      queue_wait_seconds_(registry.Histogram("vidgen_queue_wait_seconds", "Submit to lease", {"model"},
                                             metrics::ExponentialBuckets(0.05, 2, 16))),
      step_seconds_(registry.Histogram("vidgen_step_seconds", "One denoising step, from the groups' heartbeats",
                                       {"model"}, metrics::ExponentialBuckets(0.01, 2, 14))) {
  registry.OnScrape([this] { Collect(); });
}

void ServerMetrics::Collect() {
  const auto counts = jobs_.CountJobs();
  const auto models = groups_.ListModels();
  const auto now = clock_.NowMs();
  jobs_by_state_.Clear();
  queue_depth_.Clear();
  queue_oldest_.Clear();
  groups_by_model_.Clear();
  // Every model the server knows of shows every series, zeros included.
  std::set<std::string> known;
  for (const auto& model : models.models()) {
    known.insert(model.name());
    groups_by_model_.Set({model.name()}, model.worker_groups());
  }
  for (const auto& count : counts) known.insert(count.model);
  for (const auto& model : known) {
    for (const auto state : kStates) jobs_by_state_.Set({model, Lowercase(StateName(state))}, 0);
    queue_depth_.Set({model}, 0);
    queue_oldest_.Set({model}, 0);
  }
  for (const auto& count : counts) {
    jobs_by_state_.Set({count.model, Lowercase(StateName(count.state))}, static_cast<double>(count.jobs));
    if (count.state != JobState::kQueued) continue;
    queue_depth_.Set({count.model}, static_cast<double>(count.jobs));
    queue_oldest_.Set({count.model}, Seconds(now - count.oldest_created_ms));
  }
}

void ServerMetrics::Submitted(const std::string& model) {
  submitted_.Add({model});
}

void ServerMetrics::Leased(const JobLease& lease) {
  const auto now = clock_.NowMs();
  const std::string& model = lease.spec.model();
  leased_.Add({model});
  queue_wait_seconds_.Observe({model}, Seconds(now - lease.created_ms));
  std::lock_guard lock(mutex_);
  std::erase_if(running_, [&](const auto& entry) { return now - entry.second.seen_ms > kForgetRunningMs; });
  running_[lease.job_id] = {model, 0, 0, now};
}

void ServerMetrics::Progressed(const v1::HeartbeatRequest& heartbeat) {
  const auto now = clock_.NowMs();
  std::lock_guard lock(mutex_);
  const auto it = running_.find(heartbeat.job_id());
  if (it == running_.end()) return;
  auto& job = it->second;
  job.seen_ms = now;
  if (heartbeat.stage() != "denoising" && heartbeat.stage() != "decoding") return;
  // The first step's report starts the clock: before it the group was encoding text, not stepping.
  if (job.step_ms > 0 && heartbeat.step() > job.step) {
    const int steps = heartbeat.step() - job.step;
    step_seconds_.Observe({job.model}, Seconds(now - job.step_ms) / steps, steps);
  }
  if (heartbeat.step() > job.step) {
    job.step = heartbeat.step();
    job.step_ms = now;
  }
}

void ServerMetrics::Uploaded(std::int64_t bytes) {
  upload_bytes_.Add({}, static_cast<double>(bytes));
}

void ServerMetrics::Completed(const v1::CompleteJobRequest& request, const JobStore::Completed& job) {
  completed_.Add({job.model});
  job_seconds_.Observe({job.model}, Seconds(clock_.NowMs() - job.created_ms));
  steps_.Add({job.model, "full"}, request.full_steps());
  steps_.Add({job.model, "predicted"}, request.predicted_steps());
  std::lock_guard lock(mutex_);
  auto& [full, predicted] = steps_by_model_[job.model];
  full += request.full_steps();
  predicted += request.predicted_steps();
  if (full + predicted > 0) predicted_share_.Set({job.model}, predicted / (full + predicted));
  running_.erase(request.job_id());
}

void ServerMetrics::Ended(const std::string& job_id) {
  std::lock_guard lock(mutex_);
  running_.erase(job_id);
}

void ServerMetrics::Lapsed(int leases) {
  lapsed_.Add({}, leases);
}

}  // namespace vidgen::server
