#include "worker/server_link.h"

#include <algorithm>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/sha256.h"
#include "proto/rpc.h"

namespace vidgen::worker {
namespace {

bool Transient(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

ServerLink::ServerLink(LinkOptions options)
    : options_(std::move(options)),
      stub_(v1::WorkerService::NewStub(rpc::MakeChannel(options_.server, options_.tls_ca))) {}

std::unique_ptr<grpc::ClientContext> ServerLink::Context(std::chrono::milliseconds deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  rpc::AddBearer(*context, options_.token);
  context->set_deadline(std::chrono::system_clock::now() + deadline);
  return context;
}

template <typename Call>
void ServerLink::Retry(const char* what, std::chrono::milliseconds deadline, Call&& call) {
  const auto give_up = std::chrono::steady_clock::now() + options_.patience;
  auto pause = std::chrono::milliseconds(200);
  while (true) {
    const auto context = Context(deadline);
    const grpc::Status status = call(*context);
    if (status.ok()) return;
    if (rpc::Reason(*context) == kReasonUnknownGroup) {
      Register();  // the server restarted and forgot this group
      continue;
    }
    if (!Transient(status) || std::chrono::steady_clock::now() > give_up) rpc::ThrowStatus(status, what, context.get());
    spdlog::warn("{}: server unreachable ({}); retrying", what, status.error_message());
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(5000));
  }
}

void ServerLink::Register() {
  while (true) {
    v1::RegisterGroupResponse response;
    const auto context = Context(std::chrono::seconds(10));
    const grpc::Status status = stub_->RegisterGroup(context.get(), options_.group, &response);
    if (status.ok()) {
      group_id_ = response.group_id();
      heartbeat_period_ = std::chrono::seconds(std::max(1, response.heartbeat_seconds()));
      // Upload chunks leave room for the message's other fields under the server's limit.
      if (response.max_request_bytes() > 0) {
        chunk_bytes_ = std::clamp(response.max_request_bytes() - (64 << 10), 4 << 10, 1 << 20);
      }
      spdlog::info("registered with {} as {}", options_.server, group_id_);
      return;
    }
    if (!Transient(status)) rpc::ThrowStatus(status, "RegisterGroup");
    spdlog::warn("RegisterGroup: {} unreachable ({}); retrying", options_.server, status.error_message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

std::optional<v1::LeaseJobResponse> ServerLink::Lease(std::chrono::milliseconds wait) {
  if (group_id_.empty()) Register();
  v1::LeaseJobResponse response;
  // Leasing waits for the server however long it is away: an idle group has nothing to lose.
  while (true) {
    v1::LeaseJobRequest request;
    request.set_group_id(group_id_);
    request.set_wait_ms(static_cast<int>(wait.count()));
    const auto context = Context(wait + std::chrono::seconds(10));
    const grpc::Status status = stub_->LeaseJob(context.get(), request, &response);
    if (status.ok()) break;
    if (rpc::Reason(*context) == kReasonUnknownGroup) {
      Register();
      continue;
    }
    if (!Transient(status)) rpc::ThrowStatus(status, "LeaseJob", context.get());
    spdlog::warn("LeaseJob: {} unreachable ({}); retrying", options_.server, status.error_message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!response.has_job()) return std::nullopt;
  return response;
}

v1::HeartbeatResponse ServerLink::Heartbeat(v1::HeartbeatRequest request) {
  request.set_group_id(group_id_);
  v1::HeartbeatResponse response;
  const auto context = Context(std::chrono::seconds(10));
  const grpc::Status status = stub_->Heartbeat(context.get(), request, &response);
  if (rpc::Reason(*context) == kReasonUnknownGroup) {
    Register();
    return {};
  }
  if (!status.ok()) spdlog::warn("Heartbeat: {}", status.error_message());
  return status.ok() ? response : v1::HeartbeatResponse();
}

void ServerLink::Upload(const std::string& job_id, const std::string& lease_id, const std::string& path,
                        const std::string& mime_type) {
  const std::string sha256 = Sha256OfFile(path);
  Retry("UploadArtifact", std::chrono::minutes(10), [&](grpc::ClientContext& context) {
    v1::UploadArtifactResponse response;
    auto writer = stub_->UploadArtifact(&context, &response);
    std::ifstream in(path, std::ios::binary);
    std::string buffer(static_cast<std::size_t>(chunk_bytes_), '\0');
    v1::UploadArtifactRequest message;
    message.set_job_id(job_id);
    message.set_lease_id(lease_id);
    message.set_mime_type(mime_type);
    bool open = true;
    while (open && (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)) {
      message.set_data(buffer.data(), static_cast<std::size_t>(in.gcount()));
      open = writer->Write(message);
      message.Clear();
    }
    if (open) {
      message.set_sha256(sha256);
      writer->Write(message);
    }
    writer->WritesDone();
    return writer->Finish();
  });
}

void ServerLink::Complete(const v1::CompleteJobRequest& request) {
  Retry("CompleteJob", std::chrono::seconds(30), [&](grpc::ClientContext& context) {
    v1::CompleteJobResponse response;
    return stub_->CompleteJob(&context, request, &response);
  });
}

void ServerLink::Fail(const v1::FailJobRequest& request) {
  Retry("FailJob", std::chrono::seconds(30), [&](grpc::ClientContext& context) {
    v1::FailJobResponse response;
    return stub_->FailJob(&context, request, &response);
  });
}

}  // namespace vidgen::worker
