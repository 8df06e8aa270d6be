// The gRPC services of vidgen-server over one job store: the public VideoService and the internal WorkerService.
#pragma once

#include "server/artifact_store.h"
#include "server/auth.h"
#include "server/group_registry.h"
#include "server/job_store.h"
#include "server/server_metrics.h"
#include "server/spec.h"
#include "server/streams.h"
#include "vidgen/v1/video_service.grpc.pb.h"
#include "vidgen/v1/worker_service.grpc.pb.h"

namespace vidgen::server {

struct ServerState {
  JobStore& jobs;
  ArtifactStore& artifacts;
  GroupRegistry& groups;
  const Authenticator& auth;
  StreamRegistry& streams;
  ServerMetrics& metrics;
  spec::Limits spec_limits;
  std::chrono::milliseconds heartbeat{std::chrono::seconds(5)};
  int max_request_bytes = 8 << 20;  // what the server accepts in one message (worker uploads size chunks by it)
};

// A job submitted by `tenant`: checked, normalized, admitted by memory and queued. Throws Error naming what is
// wrong; a full queue is RESOURCE_EXHAUSTED with reason kReasonQueueFull (retry later), a job too large for every
// group RESOURCE_EXHAUSTED without it. The gRPC and HTTP APIs both submit through here.
v1::SubmitJobResponse SubmitJob(ServerState& state, const std::string& tenant, const v1::SubmitJobRequest& request);
// How long a client should wait before submitting again into a full queue.
int RetryAfterSeconds(const ServerState& state);

class VideoServiceImpl final : public v1::VideoService::Service {
 public:
  explicit VideoServiceImpl(ServerState& state) : state_(state) {}

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request, v1::Job* response) override;
  grpc::Status DownloadVideo(grpc::ServerContext* context, const v1::DownloadVideoRequest* request,
                             grpc::ServerWriter<v1::VideoChunk>* writer) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;

 private:
  ServerState& state_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(ServerState& state) : state_(state) {}

  grpc::Status RegisterGroup(grpc::ServerContext* context, const v1::RegisterGroupRequest* request,
                             v1::RegisterGroupResponse* response) override;
  grpc::Status LeaseJob(grpc::ServerContext* context, const v1::LeaseJobRequest* request,
                        v1::LeaseJobResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status UploadArtifact(grpc::ServerContext* context, grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                              v1::UploadArtifactResponse* response) override;
  grpc::Status CompleteJob(grpc::ServerContext* context, const v1::CompleteJobRequest* request,
                           v1::CompleteJobResponse* response) override;
  grpc::Status FailJob(grpc::ServerContext* context, const v1::FailJobRequest* request,
                       v1::FailJobResponse* response) override;

 private:
  ServerState& state_;
};

}  // namespace vidgen::server
