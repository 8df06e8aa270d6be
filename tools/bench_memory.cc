#include "tools/bench_memory.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "common/process_memory.h"
#include "models/device_memory.h"
#include "models/families.h"
#include "models/job_request.h"
#include "models/memory_probe.h"
#include "tools/size_flag.h"

namespace vidgen::tools {

int RunMemoryBench(const MemoryBenchOptions& options) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency()));
  const auto family = DetectFamily(options.model_dir);
  PipelineOptions load;
  load.dtype = ParseModelDType(options.dtype);
  const std::int64_t before_load = ProcessStatusBytes("VmRSS");
  const auto pipeline = LoadPipeline(options.model_dir, family, load);
  for (const auto& tensor : pipeline->weights()) tensor.sum().item();  // mapped weights resident, as after a job

  // The request as a job would run it: the checkpoint's defaults, then the family's.
  spec::ModelInfo model{"bench", family, ReadCheckpointDefaults(options.model_dir),
                        static_cast<int>(pipeline->side_multiple()), pipeline->task()};
  spec::JobRequest job;
  job.model = model.name;
  job.prompt = "a red circle moving left on a gray background";
  job.frames = options.frames;
  job.steps = options.steps;
  job.cache.preset = options.cache;
  if (!options.size.empty()) std::tie(job.width, job.height) = ParseSizeFlag(options.size);
  spec::Normalize(job, model, spec::Limits{});
  const auto request = ToGenerationRequest(job);

  const std::int64_t resident = ProcessStatusBytes("VmRSS");
  std::optional<spec::MemoryEstimate> estimate;
  if (options.estimate) {
    const c10::Device cpu(torch::kCPU);
    const auto profile = ProbeMemory(*pipeline, model, /*image=*/"", cpu, TotalMemory(cpu),
                                     [&](const spec::JobRequest& probe, const GenerationCallbacks& callbacks) {
                                       return pipeline->Generate(ToGenerationRequest(probe), callbacks);
                                     });
    estimate = spec::EstimateJobMemory(profile, spec::ParallelRequest{1, 1, false}, job, model);
  }
  std::int64_t first_step = 0, denoise = 0;
  GenerationCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress& progress) {
    if (progress.step == 1) {
      first_step = ProcessStatusBytes("VmHWM") - resident;
      ResetPeakResidentBytes();
    }
    if (progress.step == progress.total) {
      denoise = ProcessStatusBytes("VmHWM") - resident;
      ResetPeakResidentBytes();
    }
  };
  ResetPeakResidentBytes();
  const auto result = pipeline->Generate(request, callbacks);
  const std::int64_t decode = ProcessStatusBytes("VmHWM") - resident;
  const std::int64_t tokens =
      ((job.frames - 1) / 4 + 1) * (job.width / model.side_multiple) * (job.height / model.side_multiple);
  nlohmann::json report = {{"benchmark", "memory"},
                           {"model_dir", options.model_dir},
                           {"width", job.width},
                           {"height", job.height},
                           {"frames", job.frames},
                           {"steps", job.steps},
                           {"cache", options.cache},
                           {"video_tokens", tokens},
                           {"loaded_bytes", resident - before_load},
                           {"text_and_first_step_bytes", first_step},
                           {"denoise_bytes", denoise},
                           {"decode_bytes", decode},
                           {"cache_peak_bytes", result.stats.cache_peak_bytes}};
  const std::int64_t measured = std::max({first_step, denoise, decode});
  if (estimate) {
    report["estimate"] = {{"resident_bytes", estimate->resident}, {"denoise_bytes", estimate->denoise},
                          {"cache_bytes", estimate->cache},       {"decode_bytes", estimate->decode},
                          {"peak_bytes", estimate->peak()},       {"measured_peak_bytes", resident + measured}};
  }
  if (options.json) {
    fmt::print("{}\n", report.dump(2));
  } else {
    const auto mib = [](std::int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
    fmt::print(
        "{}x{}, {} frames ({} tokens), {} steps, cache {}: loaded {:.1f} MiB; above it, text + step 1 "
        "{:.1f} MiB, denoising {:.1f} MiB (cache {:.1f}), decoding {:.1f} MiB\n",
        job.width, job.height, job.frames, tokens, job.steps, options.cache, mib(resident - before_load),
        mib(first_step), mib(denoise), mib(result.stats.cache_peak_bytes), mib(decode));
    if (estimate) {
      fmt::print("estimate: {}; measured above resident {:.1f} MiB, estimated {:.1f} MiB\n", estimate->Describe(),
                 mib(measured), mib(estimate->peak() - estimate->resident));
    }
  }
  return 0;
}

}  // namespace vidgen::tools
