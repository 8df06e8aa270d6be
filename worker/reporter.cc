#include "worker/reporter.h"

#include <chrono>

namespace vidgen::worker {

Reporter::Reporter(JobSource& source, const std::string& job_id, const std::string& lease_id) : source_(source) {
  progress_.set_job_id(job_id);
  progress_.set_lease_id(lease_id);
  progress_.set_stage("loading");
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    auto last_sent = std::chrono::steady_clock::time_point();
    while (!stop_) {
      // Stage changes go out at once, steps at most five times a second, and the lease is renewed every period.
      const auto now = std::chrono::steady_clock::now();
      const bool due = now - last_sent >= source_.heartbeat_period() ||
                       (now - last_sent >= std::chrono::milliseconds(200) && dirty_) || stage_changed_;
      if (due) {
        const auto request = progress_;
        stage_changed_ = dirty_ = false;
        lock.unlock();
        const auto reply = source_.Heartbeat(request);
        lock.lock();
        last_sent = now;
        if (reply.cancel()) cancel_ = true;
        if (reply.lease_lost()) lease_lost_ = cancel_ = true;
      }
      wake_.wait_for(lock, std::chrono::milliseconds(200));
    }
  });
}

Reporter::~Reporter() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Reporter::Update(const std::string& stage, int step, int total_steps, double eta_seconds) {
  {
    std::lock_guard lock(mutex_);
    stage_changed_ = stage_changed_ || stage != progress_.stage();
    progress_.set_stage(stage);
    if (total_steps > 0) {  // stages after denoising keep the step count
      progress_.set_step(step);
      progress_.set_total_steps(total_steps);
    }
    progress_.set_eta_seconds(eta_seconds);
    dirty_ = true;
  }
  wake_.notify_all();
}

}  // namespace vidgen::worker
