// While a job runs, its progress to the job source every heartbeat period from a thread of its own, and the
// source's cancel and lease news back.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "worker/job_source.h"

namespace vidgen::worker {

class Reporter {
 public:
  Reporter(JobSource& source, const std::string& job_id, const std::string& lease_id);
  ~Reporter();

  // A new stage, with the denoising step when there is one (total_steps 0: the step count stays).
  void Update(const std::string& stage, int step = 0, int total_steps = 0, double eta_seconds = 0);
  bool cancelled() const { return cancel_; }
  bool lease_lost() const { return lease_lost_; }

 private:
  JobSource& source_;
  v1::HeartbeatRequest progress_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool stage_changed_ = true;  // send at once
  bool dirty_ = false;         // send within 200 ms
  std::atomic<bool> cancel_{false}, lease_lost_{false};
  std::thread thread_;
};

}  // namespace vidgen::worker
