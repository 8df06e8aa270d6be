#include "worker/group.h"

#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "proto/spec_proto.h"
#include "worker/job.h"
#include "worker/reporter.h"
#include "worker/video_encoder.h"

namespace vidgen::worker {
namespace {

// Job n goes to the group under "job/<n>"; before step k of job n the leader publishes "step/<n>/<k>" = "1" to stop;
// a follower that has read all it needs of job n publishes "done/<n>/<rank>".
std::string JobKey(std::int64_t n) {
  return "job/" + std::to_string(n);
}
std::string StepKey(std::int64_t n, int k) {
  return "step/" + std::to_string(n) + "/" + std::to_string(k);
}
std::string DoneKey(std::int64_t n, int rank) {
  return "done/" + std::to_string(n) + "/" + std::to_string(rank);
}

}  // namespace

Group::Group(std::unique_ptr<VideoPipeline> pipeline, Consensus* consensus, GroupOptions options)
    : pipeline_(std::move(pipeline)), consensus_(consensus), options_(std::move(options)) {}

void Group::Lead(JobSource& source) {
  while (true) LeadOne(source, std::chrono::seconds(10));
}

void Group::Follow() {
  while (true) FollowOne(std::chrono::hours(1));
}

bool Group::LeadOne(JobSource& source, std::chrono::milliseconds wait) {
  if (consensus_) ForgetFollowedJobs();
  const auto lease = source.Lease(wait);
  if (!lease) return false;
  RunLeased(source, next_job_++, *lease);
  return true;
}

bool Group::FollowOne(std::chrono::milliseconds wait) {
  const auto bytes = consensus_->Await(JobKey(next_job_), wait);
  if (!bytes) return false;
  const std::int64_t n = next_job_++;
  v1::JobSpec spec;
  if (!spec.ParseFromString(*bytes)) Fail(ErrorCode::kUnavailable, "job {} from the leader does not parse", n);
  try {
    Generate(n, spec, nullptr);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnavailable) throw;  // the group is broken
    spdlog::info("rank {}: job {} ended: {}", consensus_->rank(), n, e.what());
  }
  consensus_->Publish(DoneKey(n, consensus_->rank()), "");
  return true;
}

GenerationResult Group::Generate(std::int64_t n, const v1::JobSpec& spec, Reporter* reporter) {
  const auto request = ToGenerationRequest(spec);
  GenerationCallbacks callbacks;
  int k = 0;
  callbacks.cancelled = [&] {
    const int step = k++;
    if (!consensus_) return reporter->cancelled();
    if (leader()) {
      const bool stop = reporter->cancelled();
      consensus_->Publish(StepKey(n, step), stop ? "1" : "0");
      unforgotten_[n] = step + 1;
      return stop;
    }
    const auto decision = consensus_->Await(StepKey(n, step), options_.leader_silence);
    if (!decision) Fail(ErrorCode::kUnavailable, "the leader did not decide step {} of job {}", step, n);
    return *decision == "1";
  };
  if (reporter) {
    callbacks.on_step = [&](const StepProgress& progress) {
      const double eta = progress.seconds / progress.step * (progress.total - progress.step);
      reporter->Update(progress.step == progress.total ? "decoding" : "denoising", progress.step, progress.total, eta);
    };
  }
  return pipeline_->Generate(request, callbacks);
}

void Group::RunLeased(JobSource& source, std::int64_t n, const v1::LeaseJobResponse& lease) {
  const std::string& id = lease.job_id();
  spdlog::info("job {} (attempt {}): {}x{}, {} frames, {} steps, cache {}", id, lease.attempt(), lease.spec().width(),
               lease.spec().height(), lease.spec().frames(), lease.spec().steps(), lease.spec().cache().preset());
  v1::FailJobRequest failure;
  failure.set_job_id(id);
  failure.set_lease_id(lease.lease_id());
  bool group_broken = false;
  {
    Reporter reporter(source, id, lease.lease_id());
    try {
      if (consensus_) {
        consensus_->Publish(JobKey(n), lease.spec().SerializeAsString());
        unforgotten_[n] = 0;
      }
      const auto start = std::chrono::steady_clock::now();
      const auto result = Generate(n, lease.spec(), &reporter);
      reporter.Update("encoding_video");
      const auto video = Encode(id, lease.spec().output(), result.frames);
      reporter.Update("uploading");
      source.Upload(id, lease.lease_id(), video, std::string(spec::MimeType(rpc::FromProto(lease.spec()).output)));
      std::filesystem::remove(video);
      v1::CompleteJobRequest done;
      done.set_job_id(id);
      done.set_lease_id(lease.lease_id());
      done.set_full_steps(result.stats.full_steps);
      done.set_predicted_steps(result.stats.predicted_steps);
      done.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      source.Complete(done);
      spdlog::info("job {} done in {:.1f} s", id, done.seconds());
      return;
    } catch (const Error& e) {
      if (reporter.lease_lost()) {
        spdlog::warn("job {}: the lease was lost; dropped", id);
        return;
      }
      failure.set_message(e.what());
      failure.set_cancelled(e.code() == ErrorCode::kCancelled);
      group_broken = e.code() == ErrorCode::kUnavailable;
      failure.set_retryable(group_broken);
    } catch (const std::exception& e) {
      failure.set_message(std::string("internal error: ") + e.what());
    }
  }
  spdlog::warn("job {} {}: {}", id, failure.cancelled() ? "cancelled" : "failed", failure.message());
  try {
    source.Fail(failure);
  } catch (const Error& e) {
    spdlog::warn("job {}: could not report the failure: {}", id, e.what());
  }
  if (group_broken) Fail(ErrorCode::kUnavailable, "the worker group is broken: {}", failure.message());
}

std::string Group::Encode(const std::string& id, const v1::OutputSettings& output, const at::Tensor& frames) const {
  const auto options = ToVideoOptions(output);
  const auto contiguous = frames.to(torch::kCPU).contiguous();
  const auto* data = contiguous.data_ptr<std::uint8_t>();
  const std::vector<std::uint8_t> rgb(data, data + contiguous.numel());
  const std::string path = fmt::format("{}/{}.{}", options_.work_dir, id, options.container);
  EncodeVideo(rgb, static_cast<int>(frames.size(0)), static_cast<int>(frames.size(1)), static_cast<int>(frames.size(2)),
              options, path);
  return path;
}

void Group::ForgetFollowedJobs() {
  const auto followed = [&](std::int64_t n) {
    for (int rank = 1; rank < consensus_->size(); ++rank) {
      if (!consensus_->Await(DoneKey(n, rank), std::chrono::milliseconds(0))) return false;
    }
    return true;
  };
  // A job's keys go only once every follower has read them: a follower may still be catching up on the last step
  // decisions of a job the leader has long left (a cancel needs no collective to end it).
  std::erase_if(unforgotten_, [&](const auto& job) {
    const auto [n, steps] = job;
    if (!followed(n)) return false;
    consensus_->Forget(JobKey(n));
    for (int k = 0; k < steps; ++k) consensus_->Forget(StepKey(n, k));
    for (int rank = 1; rank < consensus_->size(); ++rank) consensus_->Forget(DoneKey(n, rank));
    return true;
  });
}

}  // namespace vidgen::worker
