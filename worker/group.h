// A worker group's loop. The leader (rank 0) leases a job from its JobSource and publishes it to the group; every
// rank runs the pipeline on its share; before each denoising step the group decides on the leader's word whether to
// stop, so that all ranks stop at the same step; the leader encodes, uploads and reports the end. A follower runs what
// the leader publishes. The job source and the consensus are injected: vidgen-worker gives a ServerLink and the
// rendezvous store, tests give fakes and run the loop in process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/generation.h"
#include "spec/memory.h"
#include "worker/consensus.h"
#include "worker/job.h"
#include "worker/job_source.h"
#include "worker/worker_metrics.h"

namespace vidgen::worker {

class Reporter;

struct GroupOptions {
  std::string work_dir = ".";  // where videos are encoded before upload
  // When set, each job's frames as they go to the encoder: <job id>.rgb, frames × height × width × 3 bytes (to
  // compare a job with vidgen-generate's PNGs of the same request).
  std::string frames_dir;
  // When set, every <name>.safetensors here (or PEFT folder <name>/ with adapter_model.safetensors) is a LoRA jobs
  // may name, read and checked against the model at start.
  std::string lora_dir;
  // LoRA sets besides the one in use kept merged on the host (VideoPipeline::KeepLoraSets).
  std::size_t kept_lora_sets = 2;
  // When set, the leader's steps, peak memory on `device`, cache bytes and encoding time go here (not owned).
  WorkerMetrics* metrics = nullptr;
  c10::Device device{c10::kCPU};
};

class Group {
 public:
  // `consensus`: nullptr for a group of one; not owned, must outlive the group. Throws Error naming a LoRA of
  // options.lora_dir that does not fit the model.
  Group(std::unique_ptr<VideoPipeline> pipeline, Consensus* consensus, GroupOptions options);

  bool leader() const { return !consensus_ || consensus_->rank() == 0; }
  // The LoRAs the group can apply, by name.
  const LoraLibrary& loras() const { return loras_; }

  // The leader: leases one job (waiting up to `wait`) and takes it to its end, reported to `source`; false when
  // none came. Throws Error(UNAVAILABLE) when the group broke during the job (after failing it as retryable).
  bool LeadOne(JobSource& source, std::chrono::milliseconds wait);
  // A follower: runs the next job the leader publishes (waiting up to `wait`); false when none came. A job that
  // fails here fails on the leader too; throws Error(UNAVAILABLE) when the group broke in the middle of one.
  bool FollowOne(std::chrono::milliseconds wait);

  // The leader, before its first job: what jobs of `model` need on one rank of this group, measured by probe jobs
  // that every rank runs (models/memory_probe.h) on `device_bytes` per rank.
  spec::MemoryProfile ProbeMemory(const spec::ModelInfo& model, std::int64_t device_bytes);

  [[noreturn]] void Lead(JobSource& source);
  [[noreturn]] void Follow();

 private:
  // `reporter`: the leader's for a leased job (steps reported, cancels heeded); `on_step` is called otherwise.
  GenerationResult Generate(const v1::JobSpec& spec, Reporter* reporter,
                            const std::function<void(const StepProgress&)>& on_step = nullptr);
  // The leader hands job `n` to the followers.
  void Publish(std::int64_t n, const v1::JobSpec& spec);
  void RunLeased(JobSource& source, std::int64_t n, const v1::LeaseJobResponse& lease);
  std::string Encode(const std::string& id, const v1::OutputSettings& output, const at::Tensor& frames) const;
  void ForgetFollowedJobs();

  std::unique_ptr<VideoPipeline> pipeline_;
  Consensus* consensus_;
  GroupOptions options_;
  LoraLibrary loras_;
  std::int64_t next_job_ = 0;
  std::vector<std::int64_t> unforgotten_;  // the leader's published jobs whose keys are still in the store
};

}  // namespace vidgen::worker
