#include "server/janitor.h"

#include <spdlog/spdlog.h>

namespace vidgen::server {

Janitor::Janitor(JobStore& jobs, ArtifactStore& artifacts, StreamRegistry& streams, ServerMetrics& metrics,
                 const Clock& clock, std::chrono::milliseconds retention, std::function<void(bool)> report_health)
    : jobs_(jobs),
      artifacts_(artifacts),
      streams_(streams),
      metrics_(metrics),
      clock_(clock),
      retention_(retention),
      report_health_(std::move(report_health)) {}

std::chrono::milliseconds Janitor::Tick() {
  if (const int stalled = streams_.CancelStalled()) spdlog::warn("cancelled {} stream(s) whose readers stalled", stalled);
  try {
    if (const int lapsed = jobs_.ExpireLeases()) {
      metrics_.Lapsed(lapsed);
      spdlog::warn("{} lease(s) lapsed", lapsed);
    }
    if (const auto now = clock_.NowMs(); now >= next_retention_ms_) {
      for (const auto& path : jobs_.ExpireArtifacts(now - retention_.count())) artifacts_.Remove(path);
      next_retention_ms_ = now + 60'000;
    }
  } catch (const std::exception& e) {
    // Every error of the store: a bad_alloc or a SQLite failure alike must not end the server.
    if (failures_ == 0 || failures_ % 8 == 0) spdlog::error("job store failing (attempt {}): {}", failures_ + 1, e.what());
    if (failures_++ == 0) report_health_(false);
    return std::chrono::milliseconds(std::min(30'000, 500 << std::min(failures_, 6)));
  }
  if (failures_ > 0) {
    spdlog::info("job store working again after {} failed round(s)", failures_);
    failures_ = 0;
    report_health_(true);
  }
  return std::chrono::milliseconds(500);
}

}  // namespace vidgen::server
