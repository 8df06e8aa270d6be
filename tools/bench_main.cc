// vidgen-bench: speed and memory measurements of either family on any device: `dit` (one denoising step), `cache`
// (feature caching against none), `parallel` (local ranks), `load` (checkpoint loading), `quality` (the demo model).
#include <algorithm>
#include <cmath>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "cache/config.h"
#include "common/cpu_allocator.h"
#include "common/error.h"
#include "common/tool_main.h"
#include "tools/bench_calibrate.h"
#include "tools/bench_load.h"
#include "tools/bench_memory.h"
#include "tools/bench_model.h"
#include "tools/bench_parallel.h"
#include "tools/bench_quality.h"
#include "tools/bench_service.h"
#include "tools/frame_metrics.h"

namespace {

struct DitBenchOptions {
  vidgen::tools::BenchModel model = vidgen::tools::BenchModel::WithLayers(2);
  std::int64_t latent_frames = 5, latent_height = 32, latent_width = 52;
  std::vector<int> threads = {1, 2};
  int repeats = 3;
  bool json = false;
};

// Seconds of each denoising step of one generation (one DiT forward per step: no classifier-free guidance pass).
std::vector<double> StepSeconds(vidgen::VideoPipeline& pipeline, const vidgen::GenerationRequest& request) {
  std::vector<double> seconds;
  double last = 0;
  vidgen::GenerationCallbacks callbacks;
  callbacks.on_step = [&](const vidgen::StepProgress& progress) {
    seconds.push_back(progress.seconds - last);
    last = progress.seconds;
  };
  pipeline.Generate(request, callbacks);
  return seconds;
}

// The median of `values` (0 when there are none); reorders them.
double Median(std::vector<double>& values) {
  if (values.empty()) return 0.0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// DiT forward latency and throughput: the family's pipeline on a synthetic checkpoint, timed per denoising step
// after a first, warm-up step.
int RunDitBench(const DitBenchOptions& options) {
  torch::NoGradGuard no_grad;
  const auto& model = options.model;
  const auto checkpoint = vidgen::tools::WriteBenchCheckpoint(model);
  const auto pipeline = vidgen::tools::LoadBenchPipeline(model, checkpoint->dir());
  auto request = vidgen::tools::BenchRequest(model, options.latent_frames, options.latent_height, options.latent_width);
  request.steps = options.repeats + 1;
  if (model.parsed_family() == vidgen::spec::Family::kWan) request.guidance_scale = 1.0;  // one pass per step
  const std::int64_t tokens = options.latent_frames * (options.latent_height / 2) * (options.latent_width / 2);
  const double flops = vidgen::tools::DitFlops(model, tokens);
  const auto sizes = vidgen::tools::Resolved(model.parsed_family(), model.dit);

  nlohmann::json results = nlohmann::json::array();
  for (const int threads : options.threads) {
    torch::set_num_threads(threads);
    auto seconds = StepSeconds(*pipeline, request);
    seconds.erase(seconds.begin());  // warm-up: allocator, kernels
    std::sort(seconds.begin(), seconds.end());
    const double fastest = seconds.front(), median = seconds[seconds.size() / 2];
    results.push_back({{"threads", threads},
                       {"seconds_per_step", median},
                       {"seconds_per_step_min", fastest},
                       {"tokens_per_second", static_cast<double>(tokens) / median},
                       {"gflops_per_second", flops / median / 1e9}});
    if (!options.json) {
      fmt::print(
          "dit {} dim {} heads {} ffn {} layers {} tokens {} {} {} threads {}: {:.3f} s/step, {:.0f} tokens/s, "
          "{:.1f} GFLOP/s\n",
          model.family, sizes.dim, sizes.heads, sizes.ffn_dim, sizes.layers, tokens, model.dtype, model.device, threads,
          median, static_cast<double>(tokens) / median, flops / median / 1e9);
    }
  }
  if (options.json) {
    nlohmann::json report = {{"benchmark", "dit"},
                             {"family", model.family},
                             {"dim", sizes.dim},
                             {"heads", sizes.heads},
                             {"ffn_dim", sizes.ffn_dim},
                             {"layers", sizes.layers},
                             {"tokens", tokens},
                             {"dtype", model.dtype},
                             {"device", model.device},
                             {"gflop_per_step", flops / 1e9},
                             {"torch_version", TORCH_VERSION},
                             {"results", results}};
    fmt::print("{}\n", report.dump(2));
  }
  return 0;
}

struct CacheBenchOptions {
  vidgen::tools::BenchModel model;
  std::int64_t frames = 9, height = 256, width = 320;
  int steps = 30;
  int threads = 2;
  int repeats = 1;  // rounds over the rows; each row's fastest run counts (a shared machine's noise only slows a run)
  bool json = false;
};

struct CacheBenchRow {
  std::string name;
  vidgen::cache::CacheConfig config;
};

// The median duration of a run's full and of its predicted steps (0 where it has none), from the times at which
// each step ended.
struct StepTimes {
  double full = 0, predicted = 0;
};
StepTimes MedianStepTimes(const std::vector<double>& done, const std::vector<bool>& plan) {
  std::vector<double> full, predicted;
  for (std::size_t step = 0; step < done.size() && step < plan.size(); ++step) {
    (plan[step] ? full : predicted).push_back(done[step] - (step == 0 ? 0.0 : done[step - 1]));
  }
  return {Median(full), Median(predicted)};
}

// Whole generations with each cache configuration against the uncached one, of the family's pipeline on a
// synthetic checkpoint; the denoising stage is timed.
int RunCacheBench(const CacheBenchOptions& options) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads);
  const auto& model = options.model;
  const auto checkpoint = vidgen::tools::WriteBenchCheckpoint(model);
  const auto pipeline = vidgen::tools::LoadBenchPipeline(model, checkpoint->dir());
  auto request =
      vidgen::tools::BenchRequest(model, (options.frames - 1) / 4 + 1, options.height / 8, options.width / 8);
  request.steps = options.steps;
  const bool wan = model.parsed_family() == vidgen::spec::Family::kWan;
  const std::string taylorseer = wan ? "taylorseer-wan" : "taylorseer-hunyuan";
  std::vector<CacheBenchRow> rows = {{"none", vidgen::cache::Preset("none")},
                                     {"reuse", vidgen::cache::Preset("fora")},
                                     {"taylorseer", vidgen::cache::Preset(taylorseer)},
                                     {"taylorseer", vidgen::cache::Preset(taylorseer)},
                                     {"lite", vidgen::cache::Preset("lite")}};
  rows[2].config.order = 1;
  rows[3].config.order = 2;

  auto warm = request;  // allocator and kernels
  warm.steps = 2;
  pipeline->Generate(warm, {});
  // Rows take turns within each repeat, so that a slow spell of a shared machine does not fall on one row alone.
  std::vector<vidgen::GenerationResult> results(rows.size());
  std::vector<double> fastest(rows.size(), INFINITY);
  std::vector<StepTimes> step_times(rows.size());  // of each row's fastest run
  for (int r = 0; r < options.repeats; ++r) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      request.cache = rows[i].config;
      std::vector<double> done;  // seconds since denoising began, after each step
      vidgen::GenerationCallbacks callbacks;
      callbacks.on_step = [&](const vidgen::StepProgress& progress) { done.push_back(progress.seconds); };
      results[i] = pipeline->Generate(request, callbacks);
      const double seconds = results[i].stats.stage_seconds.at("denoise");
      if (seconds < fastest[i]) {
        fastest[i] = seconds;
        step_times[i] = MedianStepTimes(done, vidgen::cache::Plan(request.cache, options.steps));
      }
    }
  }
  torch::Tensor reference_frames;
  double reference_seconds = 0;
  nlohmann::json report = nlohmann::json::array();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const auto& result = results[i];
    const double seconds = fastest[i];
    const auto& stats = result.stats;
    const auto frames = result.frames.to(torch::kFloat);
    if (!reference_frames.defined()) {
      reference_frames = frames;
      reference_seconds = seconds;
    }
    const double rel_l2 = ((frames - reference_frames).norm() / reference_frames.norm()).item<double>();
    const double psnr = vidgen::tools::Psnr(result.frames, reference_frames.to(torch::kUInt8));
    nlohmann::json entry = {{"policy", row.name},
                            {"interval", row.config.enabled() ? row.config.interval : 1},
                            {"order", row.config.enabled() ? row.config.order : 0},
                            {"warmup", row.config.enabled() ? row.config.warmup : 0},
                            {"steps", options.steps},
                            {"full_steps", stats.full_steps},
                            {"ideal_speedup", static_cast<double>(options.steps) / stats.full_steps},
                            {"speedup", reference_seconds / seconds},
                            {"seconds", seconds},
                            {"rel_l2", rel_l2},
                            {"psnr_db", std::isfinite(psnr) ? nlohmann::json(psnr) : nlohmann::json("inf")},
                            {"cache_bytes", stats.cache_peak_bytes},
                            {"forecast_seconds", stats.forecast_seconds},
                            {"full_step_seconds", step_times[i].full},
                            {"predicted_step_seconds", step_times[i].predicted}};
    report.push_back(entry);
    if (!options.json) {
      fmt::print(
          "{:<11} N={} O={} full {:>2}/{} ideal {:.2f}x speedup {:.2f}x ({:.1f}% of ideal) {:.2f} s (steps: full "
          "{:.3f} s, predicted {:.3f} s)  rel_l2 {:.4f} psnr {:.1f} dB cache {:.1f} MiB\n",
          row.name, entry["interval"].get<int>(), entry["order"].get<int>(), stats.full_steps, options.steps,
          entry["ideal_speedup"].get<double>(), reference_seconds / seconds,
          100 * (reference_seconds / seconds) / entry["ideal_speedup"].get<double>(), seconds, step_times[i].full,
          step_times[i].predicted, rel_l2, psnr, static_cast<double>(stats.cache_peak_bytes) / (1 << 20));
    }
  }
  if (options.json) fmt::print("{}\n", report.dump(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries the tool's results (JSON for --json).
  spdlog::set_default_logger(spdlog::stderr_color_mt("vidgen"));
  vidgen::TuneCpuAllocator();
  CLI::App app{"vidgen benchmarks"};
  app.require_subcommand(1);
  DitBenchOptions dit;
  auto* dit_command = app.add_subcommand("dit", "DiT forward latency and throughput (random weights, released layout)");
  vidgen::tools::AddBenchModelOptions(*dit_command, dit.model);
  dit_command->add_option("--latent-frames", dit.latent_frames)->capture_default_str();
  dit_command->add_option("--latent-height", dit.latent_height)->capture_default_str();
  dit_command->add_option("--latent-width", dit.latent_width)->capture_default_str();
  dit_command->add_option("--threads", dit.threads, "thread counts to measure")->capture_default_str();
  dit_command->add_option("--repeats", dit.repeats, "timed steps after the warm-up step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  dit_command->add_flag("--json", dit.json, "print one JSON report");

  CacheBenchOptions cache;
  auto* cache_command = app.add_subcommand(
      "cache", "denoising with each cache policy vs uncached (--model random: speed; demo: quality)");
  vidgen::tools::AddBenchModelOptions(*cache_command, cache.model);
  std::string demo_dir;
  cache_command->add_option("--model-dir", demo_dir, "demo: the trained demo checkpoint");
  cache_command->add_option("--frames", cache.frames)->capture_default_str();
  cache_command->add_option("--height", cache.height)->capture_default_str();
  cache_command->add_option("--width", cache.width)->capture_default_str();
  cache_command->add_option("--steps", cache.steps)->capture_default_str();
  cache_command->add_option("--threads", cache.threads)->capture_default_str();
  cache_command->add_option("--repeats", cache.repeats, "runs of each row; the fastest counts")->capture_default_str();
  cache_command->add_flag("--json", cache.json, "print a JSON array, one object per configuration");
  std::string cache_model = "random";
  cache_command
      ->add_option("--model", cache_model,
                   "random: a random DiT of the 1.3B width (speed); demo: the trained demo model on held-out "
                   "prompts (quality, adherence)")
      ->check(CLI::IsMember({"random", "demo"}))
      ->capture_default_str();
  vidgen::tools::QualityBenchOptions demo_cache;
  demo_cache.caches = vidgen::tools::DemoCacheGrid();
  cache_command->add_option("--prompts", demo_cache.prompts, "demo: held-out prompts to use (0: all)");
  cache_command->add_option("--plot", demo_cache.plot, "demo: write a PNG of quality vs speed-up (needs gnuplot)");
  cache_command->add_option("--guidance", demo_cache.guidance, "demo: the guidance scale")->capture_default_str();
  cache_command->add_option("--replot", demo_cache.replot,
                            "demo: draw --plot from this report (a --json run's output) instead of measuring");
  vidgen::tools::CalibrateOptions calibrate;
  auto* calibrate_command = app.add_subcommand(
      "calibrate",
      "uncached runs of a Wan checkpoint measure its guidance difference per step and write the cache "
      "calibration beside it (for --cache taylorseer-cfg-calibrated)");
  calibrate_command->add_option("--model-dir", calibrate.model_dir, "the Wan checkpoint")->required();
  calibrate_command->add_option("--out", calibrate.out, "default: the checkpoint's vidgen_cache_calibration.json");
  calibrate_command->add_option("--prompts-file", calibrate.prompts_file,
                                "one prompt per line (default: the demo world's training prompts)");
  calibrate_command->add_option("--prompts", calibrate.prompts, "how many prompts to run")->capture_default_str();
  calibrate_command->add_option("--steps", calibrate.steps)->capture_default_str();
  calibrate_command->add_option("--guidance", calibrate.guidance)->capture_default_str();
  calibrate_command->add_option("--shift", calibrate.shift)->capture_default_str();
  calibrate_command->add_option("--solver", calibrate.solver)->capture_default_str();
  calibrate_command->add_option("--width", calibrate.width, "default: the checkpoint's defaults for jobs");
  calibrate_command->add_option("--height", calibrate.height);
  calibrate_command->add_option("--frames", calibrate.frames);
  calibrate_command->add_option("--threads", calibrate.threads);
  vidgen::tools::ParallelBenchOptions parallel;
  auto* parallel_command =
      app.add_subcommand("parallel", "sequence / CFG parallelism on 2 local ranks vs one process (random DiT)");
  vidgen::tools::AddBenchModelOptions(*parallel_command, parallel.model);
  parallel_command->add_option("--steps", parallel.steps)->capture_default_str();
  parallel_command->add_option("--latent-frames", parallel.latent_frames)->capture_default_str();
  parallel_command->add_option("--latent-height", parallel.latent_height)->capture_default_str();
  parallel_command->add_option("--latent-width", parallel.latent_width)->capture_default_str();
  parallel_command->add_flag("--json", parallel.json, "print only the JSON array");
  vidgen::tools::QualityBenchOptions quality;
  auto* quality_command =
      app.add_subcommand("quality", "prompt adherence of a demo-world model on held-out prompts, with caching");
  quality_command->add_option("--model-dir", quality.model_dir)->capture_default_str();
  quality_command->add_option("--steps", quality.steps)->capture_default_str();
  quality_command->add_option("--guidance", quality.guidance)->capture_default_str();
  quality_command->add_option("--size", quality.size, "frame side (default: as trained)");
  quality_command->add_option("--frames", quality.frames, "4k+1 (default: as trained)");
  quality_command->add_option("--prompts", quality.prompts, "held-out prompts to use (0: all)");
  quality_command->add_option("--threads", quality.threads);
  quality_command
      ->add_option("--prompt-set", quality.prompt_set, "held-out, or diagonal (the motion the demo LoRA teaches)")
      ->capture_default_str();
  quality_command->add_flag("--seen", quality.seen,
                            "the set's training combinations instead of its held-out ones (fitting, not generalising)");
  quality_command->add_option("--lora", quality.loras, "PATH[:SCALE] on the DiT (repeat to stack)");
  quality_command->add_option("--solver", quality.solver)->capture_default_str();
  quality_command->add_option("--timesteps", quality.timesteps, "a given schedule (step-distilled models)")
      ->delimiter(',');
  quality_command->add_option("--shift", quality.shift)->capture_default_str();
  quality_command
      ->add_option("--cache", quality.caches,
                   "none, presets, or policy:interval[:order][:sigma|newton|w<N>|t<N>]... with policy reuse, "
                   "taylorseer, lite or a "
                   "preset (reuse:5, taylorseer:5:2, lite:8, taylorseer-cfg-calibrated:8)")
      ->capture_default_str();
  quality_command->add_flag("--json", quality.json, "print a JSON array");
  quality_command->add_option("--plot", quality.plot, "write a PNG of quality vs speed-up (needs gnuplot)");
  vidgen::tools::LoadBenchOptions load;
  auto* load_command = app.add_subcommand("load", "checkpoint load time and peak memory against the weights");
  load_command->add_option("--model-dir", load.model_dir, "the checkpoint to load");
  load_command->add_option("--family", load.family, "wan2.1 or hunyuanvideo (default: told by the folder)");
  load_command->add_option("--dtype", load.dtype, "fp32, bf16 or fp16")->capture_default_str();
  load_command->add_option("--device", load.device, "cpu or cuda[:N]")->capture_default_str();
  load_command->add_option("--synthetic-gib", load.synthetic_gib,
                           "write a random-weight checkpoint of about this size in the released layout and load it");
  load_command->add_option("--parts-from", load.parts_from,
                           "synthetic: the small checkpoint its encoders, tokenizers and VAE come from");
  load_command->add_flag("--json", load.json, "print one JSON report");
  vidgen::tools::MemoryBenchOptions memory;
  auto* memory_command = app.add_subcommand("memory", "a job's peak resident memory by stage, on CPU");
  memory_command->add_option("--model-dir", memory.model_dir, "the checkpoint")->required();
  memory_command->add_option("--size", memory.size, "WIDTHxHEIGHT (default: the checkpoint's, else the family's)");
  memory_command->add_option("--frames", memory.frames, "4k+1 (default: the checkpoint's, else the family's)");
  memory_command->add_option("--steps", memory.steps)->capture_default_str();
  memory_command->add_option("--cache", memory.cache, "a cache preset")->capture_default_str();
  memory_command->add_option("--dtype", memory.dtype, "fp32, bf16 or fp16")->capture_default_str();
  memory_command->add_option("--threads", memory.threads, "intra-op threads (default: all cores)");
  memory_command->add_flag("--json", memory.json, "print one JSON report");
  memory_command->add_flag("--estimate", memory.estimate,
                           "probe first as vidgen-worker does and report the server's estimate beside the measurement");
#ifdef VIDGEN_BENCH_SERVICE
  vidgen::tools::ServiceBenchOptions service;
  auto* service_command = app.add_subcommand("service", "vidgen-server under bursts of concurrent submits");
  service_command->add_option("--server-bin", service.server_bin, "vidgen-server (default: the build tree's)");
  service_command->add_option("--concurrency", service.concurrency, "submits in flight at once")->capture_default_str();
  service_command->add_option("--rounds", service.rounds, "bursts")->capture_default_str();
  service_command->add_option("--channels", service.channels, "connections the clients share")->capture_default_str();
  service_command->add_flag("--json", service.json, "print one JSON report");
#endif
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-bench", [&] {
    if (parallel_command->parsed() && vidgen::tools::IsParallelBenchRank()) {
      return vidgen::tools::RunParallelBenchRank(parallel);
    }
    if (parallel_command->parsed()) return vidgen::tools::RunParallelBench(parallel, argv);
    if (dit_command->parsed()) return RunDitBench(dit);
    if (load_command->parsed()) return vidgen::tools::RunLoadBench(load);
    if (memory_command->parsed()) return vidgen::tools::RunMemoryBench(memory);
#ifdef VIDGEN_BENCH_SERVICE
    if (service_command->parsed()) return vidgen::tools::RunServiceBench(service);
#endif
    if (calibrate_command->parsed()) return vidgen::tools::RunCalibrate(calibrate);
    if (cache_command->parsed() && cache_model == "demo") {
      if (!demo_dir.empty()) demo_cache.model_dir = demo_dir;
      if (cache_command->count("--steps") == 0) cache.steps = 50;
      demo_cache.steps = cache.steps;
      demo_cache.threads = cache.threads;
      demo_cache.json = cache.json;
      return vidgen::tools::RunQualityBench(demo_cache);
    }
    if (cache_command->parsed()) return RunCacheBench(cache);
    if (quality_command->parsed()) return vidgen::tools::RunQualityBench(quality);
    return 0;
  });
}
