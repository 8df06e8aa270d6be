// Change notification for the watchers of jobs. A watcher subscribes to one job and is woken by that job's changes
// and by changes of the queue (which move queue positions), not by every heartbeat of every running job. Lease
// pollers wait for the queue alone.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace vidgen::server {

class JobEvents {
  struct Channel {
    std::uint64_t version = 0;
    int subscribers = 0;
    std::condition_variable changed;
  };

 public:
  // RAII: the channel lives while someone watches it.
  class Subscription {
   public:
    Subscription(JobEvents& events, std::string job_id);
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    std::uint64_t version() const;
    // Returns when the version moved past `seen`, after `timeout`, or once the events stopped.
    void Wait(std::uint64_t seen, std::chrono::milliseconds timeout) const;

   private:
    JobEvents& events_;
    std::string job_id_;
    Channel* channel_;
  };

  void JobChanged(const std::string& job_id);
  // Also wakes every job's watchers: queued jobs' positions moved.
  void QueueChanged();
  std::uint64_t queue_version() const;
  void WaitForQueue(std::uint64_t seen, std::chrono::milliseconds timeout) const;
  // Wakes everyone for good (the server is stopping).
  void Stop();
  bool stopped() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Channel>> channels_;  // GUARDED_BY(mutex_)
  std::uint64_t queue_version_ = 0;                                     // GUARDED_BY(mutex_)
  mutable std::condition_variable queue_changed_;
  bool stopped_ = false;  // GUARDED_BY(mutex_)
};

}  // namespace vidgen::server
