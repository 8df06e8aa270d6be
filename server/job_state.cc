#include "server/job_state.h"

#include <algorithm>
#include <array>

#include "common/error.h"

namespace vidgen::server {
namespace {

using enum JobState;

const std::array<EdgeRule, 6>& Rules() {
  static const std::array<EdgeRule, 6> rules = {{
      {Edge::kLease, "lease", {kQueued}, kRunning,
       "stage = 'loading', step = 0, eta_seconds = 0, attempts = attempts + 1, lease_id = :lease_id, "
       "lease_group = :group, lease_expires_ms = :lease_expires_ms, "
       "started_ms = CASE WHEN started_ms = 0 THEN :now ELSE started_ms END"},
      {Edge::kCancelQueued, "cancel while queued", {kQueued}, kCancelled, "stage = 'cancelled', finished_ms = :now"},
      {Edge::kComplete, "complete", {kRunning}, kSucceeded,
       "stage = 'done', step = total_steps, eta_seconds = 0, lease_id = NULL, lease_group = NULL, finished_ms = :now"},
      {Edge::kRequeue, "requeue", {kRunning}, kQueued,
       "stage = 'queued', step = 0, eta_seconds = 0, lease_id = NULL, lease_group = NULL, finished_ms = 0"},
      {Edge::kFail, "fail", {kRunning}, kFailed,
       "stage = 'failed', eta_seconds = 0, lease_id = NULL, lease_group = NULL, finished_ms = :now"},
      {Edge::kCancelRunning, "cancel while running", {kRunning}, kCancelled,
       "stage = 'cancelled', eta_seconds = 0, lease_id = NULL, lease_group = NULL, finished_ms = :now"},
  }};
  return rules;
}

}  // namespace

bool Terminal(JobState state) {
  return state == kSucceeded || state == kFailed || state == kCancelled;
}

std::string_view StateName(JobState state) {
  switch (state) {
    case kQueued: return "QUEUED";
    case kRunning: return "RUNNING";
    case kSucceeded: return "SUCCEEDED";
    case kFailed: return "FAILED";
    case kCancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

const EdgeRule& RuleOf(Edge edge) {
  for (const auto& rule : Rules()) {
    if (rule.edge == edge) return rule;
  }
  Fail(ErrorCode::kInternal, "job state machine: no rule for edge {}", static_cast<int>(edge));
}

void RequireEdge(JobState from, Edge edge) {
  const auto& rule = RuleOf(edge);
  if (std::find(rule.from.begin(), rule.from.end(), from) == rule.from.end()) {
    Fail(ErrorCode::kInternal, "job state machine: '{}' does not leave {}", rule.name, StateName(from));
  }
}

}  // namespace vidgen::server
