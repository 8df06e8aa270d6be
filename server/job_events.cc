#include "server/job_events.h"

namespace vidgen::server {

JobEvents::Subscription::Subscription(JobEvents& events, std::string job_id)
    : events_(events), job_id_(std::move(job_id)) {
  std::lock_guard lock(events_.mutex_);
  auto& channel = events_.channels_[job_id_];
  if (!channel) channel = std::make_unique<Channel>();
  ++channel->subscribers;
  channel_ = channel.get();
}

JobEvents::Subscription::~Subscription() {
  std::lock_guard lock(events_.mutex_);
  if (--channel_->subscribers == 0) events_.channels_.erase(job_id_);
}

std::uint64_t JobEvents::Subscription::version() const {
  std::lock_guard lock(events_.mutex_);
  return channel_->version;
}

void JobEvents::Subscription::Wait(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(events_.mutex_);
  channel_->changed.wait_for(lock, timeout, [&] { return channel_->version != seen || events_.stopped_; });
}

void JobEvents::JobChanged(const std::string& job_id) {
  std::lock_guard lock(mutex_);
  if (const auto it = channels_.find(job_id); it != channels_.end()) {
    ++it->second->version;
    it->second->changed.notify_all();
  }
}

void JobEvents::QueueChanged() {
  std::lock_guard lock(mutex_);
  ++queue_version_;
  queue_changed_.notify_all();
  for (auto& [id, channel] : channels_) {
    ++channel->version;
    channel->changed.notify_all();
  }
}

std::uint64_t JobEvents::queue_version() const {
  std::lock_guard lock(mutex_);
  return queue_version_;
}

void JobEvents::WaitForQueue(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  queue_changed_.wait_for(lock, timeout, [&] { return queue_version_ != seen || stopped_; });
}

void JobEvents::Stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  queue_changed_.notify_all();
  for (auto& [id, channel] : channels_) channel->changed.notify_all();
}

bool JobEvents::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

}  // namespace vidgen::server
