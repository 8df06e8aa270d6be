// vidgen-generate: one video from the command line, without a server.
#include <chrono>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/cpu_allocator.h"
#include "common/error.h"
#include "common/file.h"
#include "common/rank_launch.h"
#include "common/tool_main.h"
#include "models/families.h"
#include "models/job_request.h"
#include "models/lora/adapter.h"
#include "models/wan/config.h"
#include "parallel/launch.h"
#include "parallel/world.h"
#include "tools/lora_flag.h"
#include "tools/png.h"
#include "tools/size_flag.h"

namespace {

void DrawProgress(const vidgen::StepProgress& progress) {
  constexpr int kWidth = 30;
  const int filled = kWidth * progress.step / progress.total;
  const double per_step = progress.seconds / progress.step;
  fmt::print(stderr, "\rdenoising [{}{}] {}/{} {:.2f} s/step, {:.0f} s left ", std::string(filled, '#'),
             std::string(kWidth - filled, '.'), progress.step, progress.total, per_step,
             per_step * (progress.total - progress.step));
  if (progress.step == progress.total) fmt::print(stderr, "\n");
}

// A local run is held only to what the pipeline checks, not to a server's limits on one job.
const vidgen::spec::Limits kLimits{
    1 << 20, std::int64_t{1} << 40, 4096, 4097, 1000, std::int64_t{1} << 30, std::int64_t{4096} * 4096, 64};

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries the tool's results (JSON for --json).
  spdlog::set_default_logger(spdlog::stderr_color_mt("vidgen"));
  vidgen::TuneCpuAllocator();
  CLI::App app{"Generates one video with Wan2.1 or HunyuanVideo and writes its frames as PNG files."};
  std::string model_dir, size, out = "vidgen-out", dtype = "bf16", device = "cpu";
  // Fields left unset take the LoRAs', the checkpoint's and then the family's defaults, as a job would.
  vidgen::spec::JobRequest job;
  int threads = 0;
  int nproc = 1;
  vidgen::parallel::MeshOptions mesh;
  bool cfg_parallel = false;
  std::string cache_distance = "step", cache_factor_dtype = "fp32";
  double cache_budget_gib = 0;
  bool cache_fallback = false, cache_calibrated = false;
  app.add_option("--model-dir", model_dir, "Wan2.1 or HunyuanVideo checkpoint folder (released or diffusers layout)")
      ->required();
  std::string family_name;
  app.add_option("--family", family_name, "wan2.1 or hunyuanvideo (default: told by the folder)");
  app.add_option("--prompt", job.prompt, "what the video shows")->required();
  app.add_option("--negative-prompt", job.negative_prompt, "what to avoid (default: the checkpoint's or reference's)");
  app.add_option("--size", size,
                 "WIDTHxHEIGHT, multiples of 16 (default: the checkpoint's, else the family's: 832x480 or 1280x720)");
  app.add_option("--frames", job.frames, "4k+1 frames (default: the checkpoint's, else Wan 81, HunyuanVideo 129)");
  app.add_option("--steps", job.steps, "denoising steps (default: a LoRA's schedule, else 50)");
  app.add_option("--guidance", job.guidance, "guidance scale: classifier-free (Wan, 5) or embedded (HunyuanVideo, 6)");
  app.add_option("--shift", job.shift, "flow-matching timestep shift (Wan 5, HunyuanVideo 7)");
  app.add_option("--seed", job.seed, "noise seed")->capture_default_str()->check(CLI::NonNegativeNumber);
  std::string image_file, last_image_file;
  app.add_option("--image", image_file, "I2V/FLF2V models: the first frame (PNG); --size is then the video's area");
  app.add_option("--last-image", last_image_file, "FLF2V models: the last frame (PNG)");
  std::vector<std::string> lora_args;
  app.add_option("--lora", lora_args, "PATH[:SCALE]: a LoRA safetensors added to the transformer (repeat to stack)");
  app.add_option("--solver", job.solver, "unipc, dpm++ or euler (Wan: unipc, HunyuanVideo: euler)");
  app.add_option("--timesteps", job.timesteps, "a given schedule, e.g. 1000,750,500,250 (distilled models)")
      ->delimiter(',');
  app.add_option("--dtype", dtype, "fp32, bf16 or fp16 matrix products")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda[:N] (ranks: plain cuda means cuda:LOCAL_RANK)")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads per rank (default: the cores shared among local ranks)");
  app.add_option("--nproc", nproc,
                 "start this many local ranks (as torchrun); ranks started by a launcher join "
                 "the group from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT");
  app.add_option("--ulysses", mesh.ulysses, "Ulysses degree (heads split)")->capture_default_str();
  app.add_option("--ring", mesh.ring, "ring-attention degree (K/V passed around)")->capture_default_str();
  app.add_flag("--cfg-parallel", cfg_parallel, "conditional and unconditional passes on separate rank groups");
  app.add_option("--out", out, "folder for frame_0000.png, ...")->capture_default_str();
  app.add_option("--cache", job.cache.preset,
                 "none, taylorseer-wan, taylorseer-hunyuan, taylorseer-flux, fora, lite, taylorseer-cfg, "
                 "taylorseer-cfg-calibrated (default: none)");
  app.add_option("--cache-interval", job.cache.interval, "one full step every N (overrides the preset)");
  app.add_option("--cache-order", job.cache.order, "Taylor order 0-4 (overrides the preset)");
  app.add_option("--cache-warmup", job.cache.warmup, "full steps at the start (overrides the preset)");
  app.add_option("--cache-tail", job.cache.tail, "full steps at the end");
  app.add_option("--cache-distance", cache_distance, "step or sigma")->capture_default_str();
  app.add_option("--cache-expansion", job.cache.expansion, "taylor (as published) or newton");
  app.add_option("--cache-factor-dtype", cache_factor_dtype, "fp32, bf16 or fp8")->capture_default_str();
  app.add_option("--cache-budget-gib", cache_budget_gib, "refuse caches larger than this (0: no limit)");
  app.add_flag("--cache-fallback", cache_fallback, "over budget, fall back to lite mode instead of refusing");
  app.add_option("--cache-guidance", job.cache.guidance,
                 "separate (forecast both guidance passes) or reuse-difference (overrides the preset)");
  app.add_flag("--cache-calibrated", cache_calibrated,
               "scale the reused guidance difference by the checkpoint's vidgen_cache_calibration.json");
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-generate", [&] {
    mesh.cfg = cfg_parallel ? 2 : 1;
    if (nproc > 1 && !vidgen::parallel::IsRank())
      return vidgen::parallel::LaunchLocalRanks(nproc, argv, "vidgen-generate");
    std::unique_ptr<vidgen::parallel::World> world;
    c10::Device compute_device(device);
    if (vidgen::parallel::IsRank() || mesh.world() > 1) {
      vidgen::FollowLauncher();
      auto rendezvous = vidgen::parallel::RendezvousFromEnv();
      compute_device = vidgen::parallel::RankDevice(compute_device, rendezvous);
      rendezvous.backend = vidgen::parallel::BackendFor(compute_device);
      world = std::make_unique<vidgen::parallel::World>(rendezvous, mesh);
    }
    const bool leader = !world || world->rank() == 0;
    const int ranks_here = world ? world->size() : 1;
    const auto family = family_name.empty() ? vidgen::DetectFamily(model_dir) : vidgen::spec::ParseFamily(family_name);
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    torch::set_num_threads(threads > 0 ? threads : std::max(1, cores / ranks_here));
    vidgen::PipelineOptions options;
    options.world = world.get();
    options.dtype = vidgen::ParseModelDType(dtype);
    options.device = compute_device;

    const auto load_start = std::chrono::steady_clock::now();
    auto pipeline = vidgen::LoadPipeline(model_dir, family, options);
    const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

    // The request as a job naming this checkpoint and these LoRAs, normalized by the service's rules.
    vidgen::spec::ModelInfo model{"local", family, vidgen::ReadCheckpointDefaults(model_dir),
                                  static_cast<int>(pipeline->side_multiple()), pipeline->task()};
    job.model = model.name;
    std::vector<vidgen::lora::Adapter> adapters;
    adapters.reserve(lora_args.size());
    for (const auto& arg : lora_args) {
      const auto flag = vidgen::tools::ParseLoraFlag(arg);
      adapters.push_back(pipeline->ReadLora(flag.name));
      const std::string name = fmt::format("lora{}", adapters.size() - 1);
      model.loras.push_back(name);
      if (auto defaults = vidgen::LoraDefaults(flag.name, adapters.back())) model.lora_defaults[name] = *defaults;
      job.loras.push_back({name, flag.scale.value_or(1.0)});
    }
    if (!size.empty()) std::tie(job.width, job.height) = vidgen::tools::ParseSizeFlag(size);
    const auto max_pixels = vidgen::spec::Limits{}.max_image_pixels;
    at::Tensor image, last_image;
    if (!image_file.empty()) {
      image = vidgen::tools::ReadPng(image_file, max_pixels);
      job.image = vidgen::ReadBoundedFile(image_file, "image", std::uintmax_t{1} << 30);
    }
    if (!last_image_file.empty()) {
      last_image = vidgen::tools::ReadPng(last_image_file, max_pixels);
      job.last_image = vidgen::ReadBoundedFile(last_image_file, "last image", std::uintmax_t{1} << 30);
    }
    if (cache_calibrated) job.cache.calibrated = true;
    vidgen::spec::Normalize(job, model, kLimits);

    auto request = vidgen::ToGenerationRequest(job);
    request.image = image;
    request.last_image = last_image;
    for (std::size_t i = 0; i < adapters.size(); ++i) request.loras.emplace_back(&adapters[i], job.loras[i].scale);
    auto& cache = request.cache;
    cache.distance = vidgen::cache::ParseDistance(cache_distance);
    cache.factor_dtype = vidgen::cache::ParseFactorDType(cache_factor_dtype);
    cache.budget_bytes = static_cast<std::int64_t>(cache_budget_gib * (1 << 30));
    cache.over_budget =
        cache_fallback ? vidgen::cache::OverBudget::kFallBackToLite : vidgen::cache::OverBudget::kRefuse;
    cache.Validate();

    vidgen::GenerationCallbacks callbacks;
    if (leader) callbacks.on_step = DrawProgress;
    const auto result = pipeline->Generate(request, callbacks);
    if (!leader) return 0;

    std::filesystem::create_directories(out);
    for (std::int64_t f = 0; f < result.frames.size(0); ++f) {
      vidgen::tools::WritePng(fmt::format("{}/frame_{:04d}.png", out, f), result.frames[f]);
    }
    fmt::print("wrote {} frames of {}x{} to {}/\n", result.frames.size(0), result.frames.size(2), result.frames.size(1),
               out);
    fmt::print("load {:.2f} s", load_seconds);
    for (const auto& [stage, seconds] : result.stats.stage_seconds) fmt::print(", {} {:.2f} s", stage, seconds);
    fmt::print(" ({} DiT passes)\n", result.stats.model_calls);
    if (request.cache.enabled()) {
      fmt::print("cache {}: {} full and {} predicted steps, {:.1f} MiB, {:.2f} s forecasting\n",
                 vidgen::cache::PolicyName(result.stats.cache_policy), result.stats.full_steps,
                 result.stats.predicted_steps, static_cast<double>(result.stats.cache_peak_bytes) / (1 << 20),
                 result.stats.forecast_seconds);
    }
    return 0;
  });
}
