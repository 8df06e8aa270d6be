#include "worker/group.h"

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "media/image_encoder.h"
#include "media/video_encoder.h"
#include "models/device_memory.h"
#include "models/memory_probe.h"
#include "proto/spec_proto.h"
#include "worker/job.h"
#include "worker/reporter.h"

namespace vidgen::worker {
namespace {

// Job n goes to the group under "job/<n>"; a follower done with job n publishes "done/<n>/<rank>".
std::string JobKey(std::int64_t n) {
  return "job/" + std::to_string(n);
}
std::string DoneKey(std::int64_t n, int rank) {
  return "done/" + std::to_string(n) + "/" + std::to_string(rank);
}

}  // namespace

Group::Group(std::unique_ptr<VideoPipeline> pipeline, Consensus* consensus, GroupOptions options)
    : pipeline_(std::move(pipeline)), consensus_(consensus), options_(std::move(options)) {
  pipeline_->KeepLoraSets(options_.kept_lora_sets);
  if (options_.lora_dir.empty()) return;
  if (!std::filesystem::is_directory(options_.lora_dir)) {
    Fail(ErrorCode::kNotFound, "LoRA folder '{}' does not exist", options_.lora_dir);
  }
  for (const auto& entry : std::filesystem::directory_iterator(options_.lora_dir)) {
    const bool peft_folder =
        entry.is_directory() && std::filesystem::exists(entry.path() / "adapter_model.safetensors");
    if (entry.path().extension() != ".safetensors" && !peft_folder) continue;
    const auto name = (peft_folder ? entry.path().filename() : entry.path().stem()).string();
    loras_.emplace(name, pipeline_->ReadLora(entry.path().string()));
  }
  spdlog::info("{} LoRA(s) from '{}'", loras_.size(), options_.lora_dir);
}

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
    Generate(spec, nullptr);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnavailable) throw;  // the group is broken
    spdlog::info("rank {}: job {} ended: {}", consensus_->rank(), n, e.what());
  }
  consensus_->Publish(DoneKey(n, consensus_->rank()), "");
  return true;
}

spec::MemoryProfile Group::ProbeMemory(const spec::ModelInfo& model, std::int64_t device_bytes) {
  // An image-to-video model's probes start from a gray square: what they measure does not depend on its pixels.
  constexpr int kSide = 64;
  const std::vector<std::uint8_t> gray(std::size_t{kSide} * kSide * 3, 128);
  const auto image = model.task == spec::Task::kTextToVideo ? std::string() : media::EncodePng(gray, kSide, kSide);
  return vidgen::ProbeMemory(*pipeline_, model, image, options_.device, device_bytes,
                             [&](const spec::JobRequest& job, const GenerationCallbacks& callbacks) {
                               const auto spec = rpc::ToProto(job);
                               Publish(next_job_++, spec);
                               return Generate(spec, nullptr, callbacks.on_step);
                             });
}

void Group::Publish(std::int64_t n, const v1::JobSpec& spec) {
  if (!consensus_) return;
  consensus_->Publish(JobKey(n), spec.SerializeAsString());
  unforgotten_.push_back(n);
}

GenerationResult Group::Generate(const v1::JobSpec& spec, Reporter* reporter,
                                 const std::function<void(const StepProgress&)>& on_step) {
  const auto request = ToGenerationRequest(spec, loras_);
  GenerationCallbacks callbacks;
  callbacks.cancelled = [&] {
    const bool stop = reporter && reporter->cancelled();
    return consensus_ ? consensus_->Decide(stop) : stop;
  };
  callbacks.on_step = on_step;
  double last_step_seconds = 0;
  if (reporter) {
    callbacks.on_step = [&](const StepProgress& progress) {
      const double eta = progress.seconds / progress.step * (progress.total - progress.step);
      reporter->Update(progress.step == progress.total ? "decoding" : "denoising", progress.step, progress.total, eta);
      if (options_.metrics) options_.metrics->Stepped(progress.seconds - last_step_seconds);
      last_step_seconds = progress.seconds;
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
      Publish(n, lease.spec());
      const auto start = std::chrono::steady_clock::now();
      ResetPeakMemory(options_.device);
      const auto result = Generate(lease.spec(), &reporter);
      const auto peak_memory = PeakMemory(options_.device);
      reporter.Update("encoding_video");
      const auto encode_start = std::chrono::steady_clock::now();
      const auto video = Encode(id, lease.spec().output(), result.frames);
      if (options_.metrics) {
        options_.metrics->Generated(
            result.stats, peak_memory,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - encode_start).count());
      }
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
      if (options_.metrics) options_.metrics->Ended("succeeded");
      spdlog::info("job {} done in {:.1f} s", id, done.seconds());
      return;
    } catch (const Error& e) {
      if (reporter.lease_lost()) {
        if (options_.metrics) options_.metrics->Ended("lease_lost");
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
  if (options_.metrics) options_.metrics->Ended(failure.cancelled() ? "cancelled" : "failed");
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
  const std::span<const std::uint8_t> rgb(contiguous.data_ptr<std::uint8_t>(),
                                          static_cast<std::size_t>(contiguous.numel()));
  if (!options_.frames_dir.empty()) {
    std::ofstream(fmt::format("{}/{}.rgb", options_.frames_dir, id), std::ios::binary)
        .write(reinterpret_cast<const char*>(rgb.data()), static_cast<std::streamsize>(rgb.size()));
  }
  const std::string path = fmt::format("{}/{}.{}", options_.work_dir, id, options.container);
  media::EncodeVideo(rgb, static_cast<int>(frames.size(0)), static_cast<int>(frames.size(1)),
                     static_cast<int>(frames.size(2)), options, path);
  return path;
}

void Group::ForgetFollowedJobs() {
  const auto followed = [&](std::int64_t n) {
    for (int rank = 1; rank < consensus_->size(); ++rank) {
      if (!consensus_->Await(DoneKey(n, rank), std::chrono::milliseconds(0))) return false;
    }
    return true;
  };
  // A job's key goes only once every follower has read it: a job can end on the leader before a follower has
  // started it (a request the pipeline refuses ends before any collective).
  std::erase_if(unforgotten_, [&](std::int64_t n) {
    if (!followed(n)) return false;
    consensus_->Forget(JobKey(n));
    for (int rank = 1; rank < consensus_->size(); ++rank) consensus_->Forget(DoneKey(n, rank));
    return true;
  });
}

}  // namespace vidgen::worker
