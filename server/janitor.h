// The server's housekeeping, one round at a time from its main loop: lapsed leases, videos past retention,
// streams stalled on readers that stopped reading. A round never throws: a failing store (disk full, a lock held
// from outside, a corrupt page) is logged, reported through grpc.health.v1 as NOT_SERVING, and retried with a
// growing pause until it works again, while the rest of the server keeps answering what it can.
#pragma once

#include <chrono>
#include <functional>

#include "server/artifact_store.h"
#include "server/clock.h"
#include "server/job_store.h"
#include "server/server_metrics.h"
#include "server/streams.h"

namespace vidgen::server {

class Janitor {
 public:
  // `report_health(true|false)` is called when the store starts or stops failing.
  Janitor(JobStore& jobs, ArtifactStore& artifacts, StreamRegistry& streams, ServerMetrics& metrics,
          const Clock& clock, std::chrono::milliseconds retention, std::function<void(bool)> report_health);

  // One round; returns how long to wait before the next (half a second, longer while the store fails).
  std::chrono::milliseconds Tick();
  bool healthy() const { return failures_ == 0; }

 private:
  JobStore& jobs_;
  ArtifactStore& artifacts_;
  StreamRegistry& streams_;
  ServerMetrics& metrics_;
  const Clock& clock_;
  std::chrono::milliseconds retention_;
  std::function<void(bool)> report_health_;
  std::int64_t next_retention_ms_ = 0;
  int failures_ = 0;
};

}  // namespace vidgen::server
