// The leader's connection to vidgen-server: registration, leases, heartbeats, upload and the end of a job, all
// retried across server restarts (the group registers again when the server has forgotten it).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "vidgen/v1/worker_service.grpc.pb.h"
#include "worker/job_source.h"

namespace vidgen::worker {

struct LinkOptions {
  std::string server, token, tls_ca;
  v1::RegisterGroupRequest group;
  // How long a call keeps retrying while the server is unreachable before the link gives up on a job's last calls.
  std::chrono::seconds patience{std::chrono::minutes(5)};
};

class ServerLink final : public JobSource {
 public:
  explicit ServerLink(LinkOptions options);

  // A long poll, registering first if needed.
  std::optional<v1::LeaseJobResponse> Lease(std::chrono::milliseconds wait) override;
  v1::HeartbeatResponse Heartbeat(v1::HeartbeatRequest request) override;
  std::chrono::milliseconds heartbeat_period() const override { return heartbeat_period_; }
  // Streams a file with its SHA-256, in chunks of at most 1 MiB that fit the server's message limit.
  void Upload(const std::string& job_id, const std::string& lease_id, const std::string& path,
              const std::string& mime_type) override;
  void Complete(const v1::CompleteJobRequest& request) override;
  void Fail(const v1::FailJobRequest& request) override;

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
  std::chrono::milliseconds heartbeat_period_{std::chrono::seconds(5)};
  int chunk_bytes_ = 1 << 20;
};

}  // namespace vidgen::worker
