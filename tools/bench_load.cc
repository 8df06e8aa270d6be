#include "tools/bench_load.h"

#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/bytes.h"
#include "common/error.h"
#include "common/process_memory.h"
#include "models/families.h"
#include "tools/synthetic_checkpoint.h"

namespace vidgen::tools {
namespace {

namespace fs = std::filesystem;

int MeasureLoad(const LoadBenchOptions& options) {
  torch::NoGradGuard no_grad;
  const auto family = options.family.empty() ? DetectFamily(options.model_dir) : spec::ParseFamily(options.family);
  PipelineOptions load;
  load.dtype = ParseModelDType(options.dtype);
  load.device = c10::Device(options.device);
  const std::int64_t before = ProcessStatusBytes("VmRSS");
  ResetPeakResidentBytes();
  const auto start = std::chrono::steady_clock::now();
  const auto pipeline = LoadPipeline(options.model_dir, family, load);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Weights used straight from the mapped file are resident only once read: read them all, as a first step would.
  std::int64_t weights = 0;
  for (const auto& tensor : pipeline->weights()) {
    weights += tensor.numel() * tensor.element_size();
    if (tensor.device().is_cpu()) tensor.sum().item();
  }
  const std::int64_t peak = ProcessStatusBytes("VmHWM") - before;
  const double ratio = static_cast<double>(peak) / static_cast<double>(weights);
  if (options.json) {
    fmt::print("{}\n", nlohmann::json{{"benchmark", "load"},
                                      {"model_dir", options.model_dir},
                                      {"family", spec::FamilyName(family)},
                                      {"dtype", options.dtype},
                                      {"device", options.device},
                                      {"torch_version", TORCH_VERSION},
                                      {"load_seconds", seconds},
                                      {"weight_bytes", weights},
                                      {"peak_rss_bytes", peak},
                                      {"peak_rss_over_weights", ratio}}
                           .dump(2));
  } else {
    fmt::print("load {} ({}, {} on {}): {:.2f} s, weights {}, peak resident {} above the start ({:.2f}x the weights)\n",
               options.model_dir, spec::FamilyName(family), options.dtype, options.device, seconds, ByteSize(weights),
               ByteSize(peak), ratio);
  }
  return 0;
}

}  // namespace

int RunLoadBench(const LoadBenchOptions& options) {
  if (options.synthetic_gib <= 0) {
    if (options.model_dir.empty())
      Fail(ErrorCode::kInvalidArgument, "load: --model-dir or --synthetic-gib is required");
    return MeasureLoad(options);
  }
  if (options.family.empty()) Fail(ErrorCode::kInvalidArgument, "load: --synthetic-gib needs --family");
  const auto family = spec::ParseFamily(options.family);
  const SyntheticDit dit{.bytes = static_cast<std::int64_t>(options.synthetic_gib * (1 << 30))};
  spdlog::info("a synthetic {} DiT of about {}", spec::FamilyName(family), ByteSize(dit.bytes));
  const SyntheticCheckpoint checkpoint(family, dit, options.parts_from);
  // Measured in a process of its own: this one's heap still holds what writing the checkpoint used.
  const auto self = fs::read_symlink("/proc/self/exe").string();
  const auto command =
      fmt::format("'{}' load --model-dir '{}' --family {} --dtype {} --device {}{}", self, checkpoint.dir(),
                  options.family, options.dtype, options.device, options.json ? " --json" : "");
  return std::system(command.c_str()) == 0 ? 0 : 1;
}

}  // namespace vidgen::tools
