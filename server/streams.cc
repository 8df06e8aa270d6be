#include "server/streams.h"

#include <grpcpp/server_context.h>

#include "common/error.h"

namespace vidgen::server {

using SteadyClock = std::chrono::steady_clock;

StreamRegistry::StreamRegistry(int per_tenant, std::chrono::milliseconds stall, int max_uploads)
    : per_tenant_(per_tenant), max_uploads_(max_uploads), stall_(stall) {}

std::unique_ptr<StreamRegistry::Stream> StreamRegistry::Open(const std::string& tenant, grpc::ServerContext* context) {
  std::lock_guard lock(mutex_);
  if (stopping_) Fail(ErrorCode::kUnavailable, "the server is stopping");
  auto& count = per_tenant_open_[tenant];
  if (count >= per_tenant_) {
    Fail(ErrorCode::kResourceExhausted, "tenant '{}' has {} streams open, the limit of this server", tenant, count);
  }
  ++count;
  const auto id = next_id_++;
  streams_[id] = {tenant, context, SteadyClock::time_point::max()};
  return std::make_unique<Stream>(*this, id);
}

StreamRegistry::Stream::~Stream() {
  std::lock_guard lock(registry_.mutex_);
  const auto it = registry_.streams_.find(id_);
  if (--registry_.per_tenant_open_[it->second.tenant] == 0) registry_.per_tenant_open_.erase(it->second.tenant);
  registry_.streams_.erase(it);
}

void StreamRegistry::Stream::BeginWrite() {
  std::lock_guard lock(registry_.mutex_);
  registry_.streams_.at(id_).write_began = SteadyClock::now();
}

void StreamRegistry::Stream::EndWrite() {
  std::lock_guard lock(registry_.mutex_);
  registry_.streams_.at(id_).write_began = SteadyClock::time_point::max();
}

std::unique_ptr<StreamRegistry::Upload> StreamRegistry::BeginUpload(const std::string& lease_id) {
  std::lock_guard lock(mutex_);
  if (stopping_) Fail(ErrorCode::kUnavailable, "the server is stopping");
  if (uploading_.contains(lease_id)) {
    Fail(ErrorCode::kAborted, "lease '{}' is uploading already; retry when that upload ends", lease_id);
  }
  if (static_cast<int>(uploading_.size()) >= max_uploads_) {
    Fail(ErrorCode::kResourceExhausted, "{} uploads are in flight, the limit of this server; retry shortly",
         uploading_.size());
  }
  uploading_.insert(lease_id);
  return std::make_unique<Upload>(*this, lease_id);
}

StreamRegistry::Upload::~Upload() {
  std::lock_guard lock(registry_.mutex_);
  registry_.uploading_.erase(lease_id_);
}

int StreamRegistry::CancelStalled() {
  std::lock_guard lock(mutex_);
  const auto cutoff = SteadyClock::now() - stall_;
  int cancelled = 0;
  for (auto& [id, entry] : streams_) {
    if (entry.write_began < cutoff) {
      entry.context->TryCancel();
      entry.write_began = SteadyClock::time_point::max();  // once
      ++cancelled;
    }
  }
  return cancelled;
}

void StreamRegistry::Stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  // Streams waiting for news end themselves (they see the events stop); a write that waits on a reader may never
  // return by itself.
  for (auto& [id, entry] : streams_) {
    if (entry.write_began != SteadyClock::time_point::max()) entry.context->TryCancel();
  }
}

int StreamRegistry::open() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(streams_.size());
}

}  // namespace vidgen::server
