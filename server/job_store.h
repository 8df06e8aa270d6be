// The durable job queue: every job, its state, lease and artifact, in SQLite (WAL, synchronous=FULL). Each method is
// one transaction, committed before it returns, so what a caller was told survives a crash. Jobs belong to tenants:
// every lookup by a tenant is scoped to it, and another tenant's job reads as NOT_FOUND.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/sqlite.h"
#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::server {

struct StoreLimits {
  int max_queued = 1000;  // SubmitJob answers RESOURCE_EXHAUSTED beyond this
  int max_attempts = 3;   // leases a job may take before a lapse fails it
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
};

struct JobLease {
  std::string job_id, lease_id;
  v1::JobSpec spec;
  int attempt = 0;
};

struct StoredArtifact {
  std::string path, sha256, mime_type;
  std::int64_t bytes = 0;
};

class JobStore {
 public:
  // Opens or creates the store. Leases of running jobs are renewed for one lease period: after a restart, their
  // groups get time to reconnect before the jobs go back to the queue.
  JobStore(const std::string& path, StoreLimits limits);

  struct Submitted {
    std::string job_id;
    bool existing = false;
  };
  // Queues a validated spec. The same tenant and idempotency key return the first job (ALREADY_EXISTS when the spec
  // differs); a full queue is RESOURCE_EXHAUSTED.
  Submitted Submit(const std::string& tenant, const v1::JobSpec& spec, int priority,
                   const std::string& idempotency_key);

  v1::Job Get(const std::string& tenant, const std::string& job_id);
  v1::ListJobsResponse List(const std::string& tenant, const v1::ListJobsRequest& request);
  // A queued job ends at once; a running one is flagged, and its group stops it at the next step.
  v1::Job Cancel(const std::string& tenant, const std::string& job_id);
  StoredArtifact Artifact(const std::string& tenant, const std::string& job_id);

  // The next queued job for one of `models` (highest priority, then oldest), leased to `group_id`.
  std::optional<JobLease> LeaseNext(const std::string& group_id, const std::vector<std::string>& models);
  // Renews the lease and records progress; reports whether the job was cancelled or the lease is gone.
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  // Records the uploaded video of a leased job. FAILED_PRECONDITION when the lease is no longer current.
  void AttachArtifact(const std::string& job_id, const std::string& lease_id, const StoredArtifact& artifact);
  void Complete(const v1::CompleteJobRequest& request);  // needs the artifact attached
  void Fail(const v1::FailJobRequest& request);
  // Lapsed leases: the job goes back to the queue, or fails after max_attempts, or ends cancelled when a cancel was
  // asked for. Returns how many jobs changed.
  int ExpireLeases();
  // Forgets the videos of jobs finished before `cutoff`; returns their files for the caller to delete.
  std::vector<std::string> ExpireArtifacts(std::chrono::system_clock::time_point cutoff);

  // Change notification for watchers: a counter bumped by every change, and a wait for it to move.
  std::uint64_t version() const;
  void WaitForChange(std::uint64_t seen, std::chrono::milliseconds timeout) const;

  const StoreLimits& limits() const { return limits_; }

 private:
  v1::Job ReadJob(Statement& row);
  int QueuePosition(std::int64_t seq, int priority);
  void Changed();

  StoreLimits limits_;
  std::mutex mutex_;  // one connection, one transaction at a time
  Database db_;
  mutable std::mutex version_mutex_;
  mutable std::condition_variable version_changed_;
  std::uint64_t version_ = 0;
};

}  // namespace vidgen::server
