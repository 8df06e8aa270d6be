#include "models/memory_probe.h"

#include <algorithm>
#include <numeric>

#include <spdlog/spdlog.h>

#include "common/bytes.h"
#include "models/device_memory.h"
#include "models/layers/attention.h"

namespace vidgen {

std::vector<spec::JobRequest> MemoryProbeJobs(const spec::ModelInfo& model, const std::string& image) {
  struct Size {
    int sides, frames;
  };
  std::vector<spec::JobRequest> jobs;
  for (const auto [sides, frames] : {Size{2, 5}, Size{4, 17}, Size{8, 5}}) {
    spec::JobRequest job;
    job.model = model.name;
    job.prompt = "a memory probe";
    job.width = job.height = sides * model.side_multiple;
    job.frames = frames;
    job.steps = 1;
    if (model.task != spec::Task::kTextToVideo) job.image = image;
    if (model.task == spec::Task::kFirstLastFrame) job.last_image = image;
    spec::Normalize(job, model, spec::Limits{});
    jobs.push_back(std::move(job));
  }
  return jobs;
}

spec::MemoryProfile ProbeMemory(const VideoPipeline& pipeline, const spec::ModelInfo& model, const std::string& image,
                                const c10::Device& device, std::int64_t device_bytes, const ProbeGenerate& generate) {
  spec::MemoryProfile profile;
  profile.device_bytes = device_bytes;
  const std::int64_t loaded = CurrentMemory(device);
  std::vector<spec::MemoryProbe> probes;
  for (const auto& job : MemoryProbeJobs(model, image)) {
    spec::MemoryProbe probe{spec::VideoTokens(job, model), std::int64_t{job.width} * job.height, job.frames, 0, 0};
    GenerationCallbacks callbacks;
    callbacks.on_step = [&](const StepProgress& progress) {
      if (progress.step < progress.total) return;
      probe.denoise_bytes = PeakMemory(device) - loaded;
      ResetPeakMemory(device);
    };
    ReleaseFreeMemory(device);
    ResetPeakMemory(device);
    generate(job, callbacks);
    probe.decode_bytes = PeakMemory(device) - loaded;
    spdlog::debug("memory probe {}x{}, {} frames ({} tokens): denoising {}, decoding {}", job.width, job.height,
                  job.frames, probe.tokens, ByteSize(probe.denoise_bytes), ByteSize(probe.decode_bytes));
    probes.push_back(probe);
  }
  // What a job starts from: the weights and what the allocator could not give back after the probes.
  ReleaseFreeMemory(device);
  profile.resident_bytes = CurrentMemory(device);
  spec::FitProfile(profile, probes);
  // A decode ends holding the video it returns (3 values a pixel, 2 bytes or more each) and its 8-bit frames at once:
  // a floor for the per-frame term, which a noisy peak can hide (on a CPU, malloc reuses resident pages, so a small
  // model's probes may show no growth at all).
  constexpr double kDecodedBytesPerPixelFrame = 3 * 2 + 3;
  profile.decode_per_pixel_frame = std::max(profile.decode_per_pixel_frame, kDecodedBytesPerPixelFrame);
  profile.denoise_squared_bound = layers::ScoreBytesBound();

  const auto footprint = pipeline.TokenFootprint();
  profile.cache_branches = static_cast<int>(
      std::count_if(footprint.branch_numels.begin(), footprint.branch_numels.end(), [](auto n) { return n > 0; }));
  profile.cache_values_per_token =
      std::accumulate(footprint.branch_numels.begin(), footprint.branch_numels.end(), std::int64_t{0});
  profile.lite_values_per_token = footprint.output_numel;
  spdlog::info(
      "memory per rank: {} of {} resident; denoising {:.0f} + {:.0f}·n + {:.3g}·n² bytes for n tokens, decoding "
      "{:.0f} + {:.0f}·p + {:.1f}·p·f for f frames of p pixels",
      ByteSize(profile.resident_bytes), ByteSize(device_bytes), profile.denoise_base, profile.denoise_per_token,
      profile.denoise_per_token_squared, profile.decode_base, profile.decode_per_pixel, profile.decode_per_pixel_frame);
  return profile;
}

}  // namespace vidgen
