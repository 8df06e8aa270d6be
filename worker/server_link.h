// The leader's connection to vidgen-server: registration, leases, heartbeats, upload and the end of a job, all
// retried across server restarts (the group registers again when the server has forgotten it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vidgen/v1/worker_service.grpc.pb.h"

namespace vidgen::worker {

struct LinkOptions {
  std::string server, token, tls_ca;
  v1::RegisterGroupRequest group;
  // How long a call keeps retrying while the server is unreachable before the link gives up on a job's last calls.
  std::chrono::seconds patience{std::chrono::minutes(5)};
};

class ServerLink {
 public:
  explicit ServerLink(LinkOptions options);

  // Waits for a job (long poll), registering first if needed; nullopt when none came in `wait`.
  std::optional<v1::LeaseJobResponse> Lease(std::chrono::milliseconds wait);
  v1::HeartbeatResponse Heartbeat(v1::HeartbeatRequest request);  // transport failures read as "no news"
  // Streams a file with its SHA-256, in chunks of at most 1 MiB that fit the server's message limit.
  void Upload(const std::string& job_id, const std::string& lease_id, const std::string& path,
              const std::string& mime_type);
  void Complete(const v1::CompleteJobRequest& request);
  void Fail(const v1::FailJobRequest& request);

  std::chrono::seconds heartbeat_period() const { return heartbeat_period_; }

 private:
  void Register();
  // Runs `call(context)` with a fresh context of `deadline` until it succeeds, registering again when the server
  // forgot the group and retrying UNAVAILABLE and DEADLINE_EXCEEDED for `patience`; throws on other codes.
  template <typename Call>
  void Retry(const char* what, std::chrono::milliseconds deadline, Call&& call);
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds deadline = std::chrono::seconds(30)) const;

  LinkOptions options_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string group_id_;
  std::chrono::seconds heartbeat_period_{5};
  int chunk_bytes_ = 1 << 20;
};

// While a job runs: reports its progress to the server every heartbeat period from a thread of its own, and raises
// `cancel` when the server asks (or the lease is lost).
class Reporter {
 public:
  Reporter(ServerLink& link, const std::string& job_id, const std::string& lease_id);
  ~Reporter();

  // A new stage, with the denoising step when there is one (total_steps 0: the step count stays).
  void Update(const std::string& stage, int step = 0, int total_steps = 0, double eta_seconds = 0);
  bool cancelled() const { return cancel_; }
  bool lease_lost() const { return lease_lost_; }

 private:
  void Send();

  ServerLink& link_;
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
