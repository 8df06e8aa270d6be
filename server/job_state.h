// The job state machine (docs/job-states.md). A job is queued, running, or ended (succeeded, failed, cancelled);
// it moves only along the edges below, and every move is one compare-and-set UPDATE in the job store, driven by this
// table: the states it may leave, the state it enters, the columns it resets.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace vidgen::server {

// Stored as these numbers, which are v1::JobState's.
enum class JobState { kQueued = 1, kRunning = 2, kSucceeded = 3, kFailed = 4, kCancelled = 5 };

bool Terminal(JobState state);
std::string_view StateName(JobState state);

enum class Edge {
  kLease,          // queued -> running: a worker group took it
  kCancelQueued,   // queued -> cancelled: its tenant cancelled it
  kComplete,       // running -> succeeded: its video is attached
  kRequeue,        // running -> queued: a retryable failure, or a lapsed lease with attempts left
  kFail,           // running -> failed: an error, or a lapsed lease with no attempts left
  kCancelRunning,  // running -> cancelled: its group stopped it, or its lease lapsed after a cancel request
};

struct EdgeRule {
  Edge edge;
  std::string_view name;
  std::vector<JobState> from;
  JobState to;
  // The SET clause of what the edge resets, beside `state` and `message`. May use the parameters :now, :lease_id,
  // :group and :lease_expires_ms.
  std::string_view resets;
};

const EdgeRule& RuleOf(Edge edge);
// Throws Error(INTERNAL) naming both when `edge` does not leave `from`: a move the state machine does not have.
void RequireEdge(JobState from, Edge edge);

}  // namespace vidgen::server
