#include "server/services.h"

#include <fstream>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "proto/rpc.h"

namespace vidgen::server {
namespace {

// Runs a handler body, turning vidgen::Error into its status (its reason in the trailing metadata) and anything else
// into INTERNAL. Internal errors are logged in full and reach the client without their details (SQL, paths).
template <typename Body>
grpc::Status Handle(const char* method, grpc::ServerContext* context, Body&& body) {
  try {
    body();
    return grpc::Status::OK;
  } catch (const Error& e) {
    if (!e.reason().empty()) context->AddTrailingMetadata(rpc::kReasonKey, e.reason());
    if (e.code() == ErrorCode::kInternal) {
      spdlog::error("{}: {}", method, e.what());
      return {grpc::StatusCode::INTERNAL, fmt::format("{}: internal error (the server's log has the details)", method)};
    }
    if (e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kDataLoss)
      spdlog::error("{}: {}", method, e.what());
    return rpc::ToStatus(e);
  } catch (const std::bad_alloc&) {
    spdlog::error("{}: out of memory", method);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, fmt::format("{}: the server is out of memory", method)};
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", method, e.what());
    return {grpc::StatusCode::INTERNAL, fmt::format("{}: internal error (the server's log has the details)", method)};
  }
}

bool Terminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// A stream's writes, timed for the stall watchdog.
template <typename Writer, typename Message>
bool TimedWrite(StreamRegistry::Stream& stream, Writer* writer, const Message& message) {
  stream.BeginWrite();
  const bool written = writer->Write(message);
  stream.EndWrite();
  return written;
}

void RequireJobId(const std::string& id) {
  if (id.empty()) Fail(ErrorCode::kInvalidArgument, "job_id is required");
}

}  // namespace

v1::SubmitJobResponse SubmitJob(ServerState& state, const std::string& tenant, const v1::SubmitJobRequest& request) {
  if (request.priority() < 0 || request.priority() > 100) {
    Fail(ErrorCode::kInvalidArgument, "priority {} must be between 0 and 100", request.priority());
  }
  if (request.idempotency_key().size() > 128) {
    Fail(ErrorCode::kInvalidArgument, "idempotency_key is {} bytes; the limit is 128",
         request.idempotency_key().size());
  }
  const v1::JobSpec spec = NormalizeSpec(request.spec(), state.spec_limits, state.groups.ListModels());
  state.groups.Admit(spec);
  JobStore::Submitted submitted;
  try {
    submitted = state.jobs.Submit(
        {tenant, spec, request.spec().SerializeAsString(), request.priority(), request.idempotency_key()});
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kResourceExhausted) throw;
    throw Error(e.code(), e.what(), std::string(kReasonQueueFull));
  }
  if (!submitted.existing) {
    state.metrics.Submitted(spec.model());
    spdlog::info("{} submitted {} ({})", tenant, submitted.job_id, spec.model());
  }
  v1::SubmitJobResponse response;
  response.set_job_id(submitted.job_id);
  response.set_existing(submitted.existing);
  return response;
}

int RetryAfterSeconds(const ServerState& state) {
  return static_cast<int>(state.heartbeat.count() / 1000 + 5);
}

grpc::Status VideoServiceImpl::SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                                         v1::SubmitJobResponse* response) {
  return Handle("SubmitJob", context, [&] {
    try {
      *response = server::SubmitJob(state_, state_.auth.Tenant(*context), *request);
    } catch (const Error& e) {
      if (e.reason() == kReasonQueueFull) {
        context->AddTrailingMetadata("retry-after-seconds", std::to_string(RetryAfterSeconds(state_)));
      }
      throw;
    }
  });
}

grpc::Status VideoServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                      v1::Job* response) {
  return Handle("GetJob", context, [&] {
    const std::string tenant = state_.auth.Tenant(*context);
    RequireJobId(request->job_id());
    *response = state_.jobs.Get(tenant, request->job_id());
  });
}

grpc::Status VideoServiceImpl::ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                                        v1::ListJobsResponse* response) {
  return Handle("ListJobs", context, [&] {
    if (request->page_size() < 0) Fail(ErrorCode::kInvalidArgument, "page_size {} is negative", request->page_size());
    *response = state_.jobs.List(state_.auth.Tenant(*context), *request);
  });
}

grpc::Status VideoServiceImpl::WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                        grpc::ServerWriter<v1::Job>* writer) {
  return Handle("WatchJob", context, [&] {
    const std::string tenant = state_.auth.Tenant(*context);
    RequireJobId(request->job_id());
    const auto stream = state_.streams.Open(tenant, context);
    const JobEvents::Subscription changes(state_.jobs.events(), request->job_id());
    std::string last;
    while (!context->IsCancelled() && !state_.jobs.events().stopped()) {
      const auto seen = changes.version();
      const v1::Job job = state_.jobs.Get(tenant, request->job_id());
      std::string bytes = job.SerializeAsString();
      if (bytes != last) {
        if (!TimedWrite(*stream, writer, job)) return;  // the client went away
        last = std::move(bytes);
      }
      if (Terminal(job.state())) return;
      changes.Wait(seen, std::chrono::seconds(5));
    }
    if (state_.jobs.events().stopped()) Fail(ErrorCode::kUnavailable, "the server is stopping; watch again");
    Fail(ErrorCode::kCancelled, "the watch was cancelled");
  });
}

grpc::Status VideoServiceImpl::CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                                         v1::Job* response) {
  return Handle("CancelJob", context, [&] {
    const std::string tenant = state_.auth.Tenant(*context);
    RequireJobId(request->job_id());
    *response = state_.jobs.Cancel(tenant, request->job_id());
    spdlog::info("{} cancelled {} ({})", tenant, request->job_id(), v1::JobState_Name(response->state()));
  });
}

grpc::Status VideoServiceImpl::DownloadVideo(grpc::ServerContext* context, const v1::DownloadVideoRequest* request,
                                             grpc::ServerWriter<v1::VideoChunk>* writer) {
  return Handle("DownloadVideo", context, [&] {
    const std::string tenant = state_.auth.Tenant(*context);
    RequireJobId(request->job_id());
    const int chunk_bytes = request->chunk_bytes() == 0 ? 1 << 20 : request->chunk_bytes();
    if (chunk_bytes < 1 || chunk_bytes > (4 << 20)) {
      Fail(ErrorCode::kInvalidArgument, "chunk_bytes {} must be between 1 and 4 MiB", request->chunk_bytes());
    }
    const auto artifact = state_.jobs.Artifact(tenant, request->job_id());
    const auto stream = state_.streams.Open(tenant, context);
    if (request->offset() < 0 || request->offset() > artifact.bytes) {
      Fail(ErrorCode::kOutOfRange, "offset {} is outside the video's {} bytes", request->offset(), artifact.bytes);
    }
    std::ifstream in(artifact.path, std::ios::binary);
    if (!in) Fail(ErrorCode::kDataLoss, "the video of job '{}' is missing on the server", request->job_id());
    in.seekg(request->offset());
    std::int64_t offset = request->offset();
    std::string buffer(static_cast<std::size_t>(chunk_bytes), '\0');
    do {
      const auto want = static_cast<std::streamsize>(std::min<std::int64_t>(chunk_bytes, artifact.bytes - offset));
      in.read(buffer.data(), want);
      if (in.gcount() != want) Fail(ErrorCode::kDataLoss, "the video of job '{}' is truncated", request->job_id());
      v1::VideoChunk chunk;
      chunk.set_offset(offset);
      chunk.set_data(buffer.data(), static_cast<std::size_t>(want));
      chunk.set_total_bytes(artifact.bytes);
      chunk.set_sha256(artifact.sha256);
      chunk.set_mime_type(artifact.mime_type);
      if (!TimedWrite(*stream, writer, chunk)) return;
      offset += want;
    } while (offset < artifact.bytes && !context->IsCancelled());
  });
}

grpc::Status VideoServiceImpl::ListModels(grpc::ServerContext* context, const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* response) {
  return Handle("ListModels", context, [&] {
    state_.auth.Tenant(*context);
    *response = state_.groups.ListModels();
  });
}

grpc::Status WorkerServiceImpl::RegisterGroup(grpc::ServerContext* context, const v1::RegisterGroupRequest* request,
                                              v1::RegisterGroupResponse* response) {
  return Handle("RegisterGroup", context, [&] {
    state_.auth.CheckWorker(*context);
    response->set_group_id(state_.groups.Register(*request));
    response->set_lease_seconds(static_cast<int>(state_.jobs.limits().lease.count() / 1000));
    response->set_heartbeat_seconds(static_cast<int>(std::max<std::int64_t>(1, state_.heartbeat.count() / 1000)));
    response->set_max_request_bytes(state_.max_request_bytes);
    spdlog::info("worker group {} ({}, {} ranks) registered as {}", request->name().substr(0, 100),
                 request->models(0).name().substr(0, 100), request->world_size(), response->group_id());
  });
}

grpc::Status WorkerServiceImpl::LeaseJob(grpc::ServerContext* context, const v1::LeaseJobRequest* request,
                                         v1::LeaseJobResponse* response) {
  return Handle("LeaseJob", context, [&] {
    state_.auth.CheckWorker(*context);
    const auto models = state_.groups.Touch(request->group_id());
    const GroupRegistry::Polling polling(state_.groups, request->group_id());  // idle while it waits here
    const auto take = [&](const v1::JobSpec& spec) { return state_.groups.ShouldTake(request->group_id(), spec); };
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(std::clamp(request->wait_ms(), 0, 30000));
    while (true) {
      const auto version = state_.jobs.events().queue_version();
      if (auto lease = state_.jobs.LeaseNext(request->group_id(), models, take)) {
        response->set_has_job(true);
        response->set_job_id(lease->job_id);
        response->set_lease_id(lease->lease_id);
        *response->mutable_spec() = lease->spec;
        response->set_attempt(lease->attempt);
        state_.metrics.Leased(*lease);
        spdlog::info("{} leased to {} (attempt {})", lease->job_id, request->group_id(), lease->attempt);
        return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline || context->IsCancelled() || state_.jobs.events().stopped()) return;
      state_.jobs.events().WaitForQueue(
          version,
          std::min<std::chrono::milliseconds>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                                              std::chrono::milliseconds(500)));
    }
  });
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  return Handle("Heartbeat", context, [&] {
    state_.auth.CheckWorker(*context);
    state_.groups.Touch(request->group_id());
    *response = state_.jobs.Heartbeat(*request);
    if (!response->lease_lost()) state_.metrics.Progressed(*request);
  });
}

grpc::Status WorkerServiceImpl::UploadArtifact(grpc::ServerContext* context,
                                               grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                                               v1::UploadArtifactResponse* response) {
  return Handle("UploadArtifact", context, [&] {
    state_.auth.CheckWorker(*context);
    v1::UploadArtifactRequest message;
    if (!reader->Read(&message)) Fail(ErrorCode::kInvalidArgument, "an upload needs at least one message");
    const std::string job_id = message.job_id(), lease_id = message.lease_id();
    // The id names the file: only ids this server makes get that far.
    const bool well_formed = job_id.size() == 36 && job_id.starts_with("job-") &&
                             job_id.find_first_not_of("0123456789abcdef", 4) == std::string::npos;
    if (!well_formed) Fail(ErrorCode::kInvalidArgument, "'{}' is not a job id", job_id);
    const std::string mime_type = message.mime_type().empty() ? "video/mp4" : message.mime_type();
    if (mime_type != "video/mp4" && mime_type != "video/webm") {
      Fail(ErrorCode::kInvalidArgument, "mime_type '{}' is not video/mp4 or video/webm", mime_type.substr(0, 40));
    }
    // Nothing is written for a lease that is not current, and only a few uploads, one a lease, run at once.
    state_.jobs.CheckLease(job_id, lease_id);
    const auto slot = state_.streams.BeginUpload(lease_id);
    auto upload = state_.artifacts.Begin(job_id, mime_type);
    std::string sha256;
    do {
      upload->Append(message.data());
      if (!message.sha256().empty()) sha256 = message.sha256();
    } while (reader->Read(&message));
    if (context->IsCancelled()) Fail(ErrorCode::kCancelled, "the upload was cut short");
    const auto artifact = upload->Finish(sha256);
    std::optional<std::string> replaced;
    try {
      replaced = state_.jobs.AttachArtifact(job_id, lease_id, artifact);
    } catch (const Error&) {
      state_.artifacts.Remove(artifact.path);
      throw;
    }
    if (replaced) state_.artifacts.Remove(*replaced);  // an earlier upload of this lease: no row points to it now
    state_.metrics.Uploaded(artifact.bytes);
    response->set_bytes(artifact.bytes);
    response->set_sha256(artifact.sha256);
  });
}

grpc::Status WorkerServiceImpl::CompleteJob(grpc::ServerContext* context, const v1::CompleteJobRequest* request,
                                            v1::CompleteJobResponse*) {
  return Handle("CompleteJob", context, [&] {
    state_.auth.CheckWorker(*context);
    state_.metrics.Completed(*request, state_.jobs.Complete(*request));
    spdlog::info("{} succeeded", request->job_id());
  });
}

grpc::Status WorkerServiceImpl::FailJob(grpc::ServerContext* context, const v1::FailJobRequest* request,
                                        v1::FailJobResponse*) {
  return Handle("FailJob", context, [&] {
    state_.auth.CheckWorker(*context);
    state_.jobs.Fail(*request);
    state_.metrics.Ended(request->job_id());
    spdlog::info("{} {}: {}", request->job_id(), request->cancelled() ? "cancelled" : "failed", request->message());
  });
}

}  // namespace vidgen::server
