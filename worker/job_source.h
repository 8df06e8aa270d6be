// Where a group's leader gets its jobs and reports them: vidgen-server through a ServerLink, or a test's fake.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::worker {

class JobSource {
 public:
  virtual ~JobSource() = default;
  // Waits up to `wait` for a job; nullopt when none came.
  virtual std::optional<v1::LeaseJobResponse> Lease(std::chrono::milliseconds wait) = 0;
  // Progress out, cancel and lease news back; a failure to reach the server reads as no news.
  virtual v1::HeartbeatResponse Heartbeat(v1::HeartbeatRequest request) = 0;
  virtual std::chrono::milliseconds heartbeat_period() const = 0;
  virtual void Upload(const std::string& job_id, const std::string& lease_id, const std::string& path,
                      const std::string& mime_type) = 0;
  virtual void Complete(const v1::CompleteJobRequest& request) = 0;
  virtual void Fail(const v1::FailJobRequest& request) = 0;
};

}  // namespace vidgen::worker
