// The durable job queue: every job, its state, lease and artifact, in SQLite (WAL, synchronous=FULL). Each method is
// one transaction, committed before it returns, so what a caller was told survives a crash. Jobs belong to tenants:
// every lookup by a tenant is scoped to it, and another tenant's job reads as NOT_FOUND. A job's state changes only
// along the edges of the state machine (job_state.h), each a compare-and-set in SQL. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/clock.h"
#include "server/job_events.h"
#include "server/job_state.h"
#include "server/sqlite.h"
#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::server {

struct StoreLimits {
  int max_queued = 1000;  // SubmitJob answers RESOURCE_EXHAUSTED beyond this
  int max_attempts = 3;   // leases a job may take before a lapse fails it
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(10)};  // how long a statement waits for a lock
};

struct JobLease {
  std::string job_id, lease_id;
  v1::JobSpec spec;
  int attempt = 0;
  std::int64_t created_ms = 0;  // when it was submitted
};

// How many jobs of a model are in a state, and for queued jobs when the oldest of them was submitted.
struct JobCount {
  std::string model;
  JobState state = JobState::kQueued;
  std::int64_t jobs = 0;
  std::int64_t oldest_created_ms = 0;  // kQueued only
};

struct StoredArtifact {
  std::string path, sha256, mime_type;
  std::int64_t bytes = 0;
};

struct SubmitRequest {
  std::string tenant;
  v1::JobSpec spec;     // normalized: what the job runs
  std::string request;  // the spec as the client sent it: what an idempotent retry is compared with
  int priority = 0;
  std::string idempotency_key;
};

class JobStore {
 public:
  // Opens or creates the store; FAILED_PRECONDITION for an empty (0-byte) file, which is no store a server wrote.
  // Leases of running jobs are renewed for one lease period: after a restart, their groups get time to reconnect
  // before the jobs go back to the queue. `clock` must outlive the store.
  JobStore(const std::string& path, StoreLimits limits, const Clock& clock);

  struct Submitted {
    std::string job_id;
    bool existing = false;
  };
  // Queues a job. The same tenant and idempotency key return the first job when the client sent the same request
  // with the same priority, ALREADY_EXISTS naming what differs otherwise; a full queue is RESOURCE_EXHAUSTED.
  Submitted Submit(const SubmitRequest& request);

  v1::Job Get(const std::string& tenant, const std::string& job_id);
  v1::ListJobsResponse List(const std::string& tenant, const v1::ListJobsRequest& request);
  // A queued job ends at once; a running one is flagged, and its group stops it at the next step.
  v1::Job Cancel(const std::string& tenant, const std::string& job_id);
  StoredArtifact Artifact(const std::string& tenant, const std::string& job_id);

  // Every model's jobs by state (the states a model has no job in are left out). Metrics scrapes run it under the
  // store's lock, so it reads no more than the counts' table (a row per model and state) and the queued jobs (at
  // most StoreLimits::max_queued) through the queue's index, whatever the store's history.
  std::vector<JobCount> CountJobs();
  static constexpr const char* kCountJobsSql = "SELECT model, state, jobs FROM job_counts WHERE jobs > 0";
  static constexpr const char* kOldestQueuedSql =
      "SELECT model, min(created_ms) FROM jobs WHERE state = ? GROUP BY model";

  // The next queued job for one of `models` (highest priority, then oldest) that `take` accepts (among the first
  // kLeaseCandidates; all when `take` is empty), leased to `group_id`.
  static constexpr int kLeaseCandidates = 64;
  std::optional<JobLease> LeaseNext(const std::string& group_id, const std::vector<std::string>& models,
                                    const std::function<bool(const v1::JobSpec&)>& take = {});
  // FAILED_PRECONDITION unless `lease_id` is the running job's current lease.
  void CheckLease(const std::string& job_id, const std::string& lease_id);
  // Renews the lease and records progress; reports whether the job was cancelled or the lease is gone.
  // INVALID_ARGUMENT for progress that is not progress (a stage it does not know, steps out of range, a NaN ETA).
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  // Records the uploaded video of a leased job; returns the file of a video it replaced (a retried upload), for the
  // caller to delete. FAILED_PRECONDITION when the lease is no longer current.
  std::optional<std::string> AttachArtifact(const std::string& job_id, const std::string& lease_id,
                                            const StoredArtifact& artifact);
  struct Completed {
    std::string model;
    std::int64_t created_ms = 0;
  };
  Completed Complete(const v1::CompleteJobRequest& request);  // needs the artifact attached
  void Fail(const v1::FailJobRequest& request);
  // Lapsed leases: the job goes back to the queue, or fails after max_attempts, or ends cancelled when a cancel was
  // asked for. Returns how many jobs changed.
  int ExpireLeases();
  // Forgets the videos of jobs finished before `cutoff_ms`; returns their files for the caller to delete.
  std::vector<std::string> ExpireArtifacts(std::int64_t cutoff_ms);

  JobEvents& events() { return events_; }
  const StoreLimits& limits() const { return limits_; }

 private:
  struct Move {
    std::string message;  // the job's message after the move; empty keeps it
    std::string lease_id, group;
  };
  // Moves the jobs matching `where` (SQL over the jobs table; may use :id, :lease_id and :now) that are in one of
  // the edge's from-states along it; returns how many moved. Needs mutex_ and an open transaction.
  int Transition(Edge edge, std::string_view where, const std::string& job_id, const Move& move);
  v1::Job ReadJob(Statement& row);
  int QueuePosition(std::int64_t seq, int priority);

  StoreLimits limits_;
  const Clock& clock_;
  std::mutex mutex_;  // one connection, one transaction at a time
  Database db_;       // GUARDED_BY(mutex_)
  JobEvents events_;
};

}  // namespace vidgen::server
