// The server's open streams: bounded per tenant, cancellable by the server. A watch or download whose write has
// waited past `stall` for a reader that stopped reading is cancelled (its thread and buffers freed), and every
// stream is cancelled when the server stops, so a shutdown never waits on a client. Uploads are bounded too: a
// few at a time, one per lease. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace grpc {
class ServerContext;
}

namespace vidgen::server {

class StreamRegistry {
  struct Entry {
    std::string tenant;
    grpc::ServerContext* context;
    std::chrono::steady_clock::time_point write_began;  // max(): no write pending
  };

 public:
  StreamRegistry(int per_tenant, std::chrono::milliseconds stall, int max_uploads);

  // An open stream; RAII.
  class Stream {
   public:
    Stream(StreamRegistry& registry, std::uint64_t id) : registry_(registry), id_(id) {}
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    // Around each blocking write, so a stalled reader can be told apart from an idle watch.
    void BeginWrite();
    void EndWrite();

   private:
    StreamRegistry& registry_;
    std::uint64_t id_;
  };
  // RESOURCE_EXHAUSTED when the tenant already has `per_tenant` streams open; UNAVAILABLE once stopping.
  std::unique_ptr<Stream> Open(const std::string& tenant, grpc::ServerContext* context);

  class Upload {
   public:
    Upload(StreamRegistry& registry, std::string lease_id) : registry_(registry), lease_id_(std::move(lease_id)) {}
    ~Upload();
    Upload(const Upload&) = delete;
    Upload& operator=(const Upload&) = delete;

   private:
    StreamRegistry& registry_;
    std::string lease_id_;
  };
  // RESOURCE_EXHAUSTED when `max_uploads` are in flight, ABORTED when this lease is uploading already.
  std::unique_ptr<Upload> BeginUpload(const std::string& lease_id);

  // Cancels the streams whose write began more than `stall` ago; returns how many.
  int CancelStalled();
  // Refuses new streams and cancels those blocked in a write; the rest end when they see the server stop.
  void Stop();
  int open() const;

 private:
  const int per_tenant_, max_uploads_;
  const std::chrono::milliseconds stall_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Entry> streams_;  // GUARDED_BY(mutex_)
  std::map<std::string, int> per_tenant_open_;  // GUARDED_BY(mutex_)
  std::set<std::string> uploading_;  // GUARDED_BY(mutex_): lease ids
  std::uint64_t next_id_ = 1;        // GUARDED_BY(mutex_)
  bool stopping_ = false;            // GUARDED_BY(mutex_)
};

}  // namespace vidgen::server
