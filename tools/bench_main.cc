// vidgen-bench: speed measurements. `dit` times Wan DiT forward passes at a chosen width, depth and token count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

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
#include "models/wan/config.h"
#include "models/wan/dit.h"
#include "models/wan/pipeline.h"
#include "tools/bench_load.h"
#include "tools/bench_model.h"
#include "tools/bench_parallel.h"
#include "tools/bench_quality.h"
#include "tools/frame_metrics.h"

namespace {

struct DitBenchOptions {
  std::int64_t dim = 1536, heads = 12, ffn_dim = 8960, layers = 2;
  std::int64_t latent_frames = 5, latent_height = 32, latent_width = 52;
  std::int64_t text_tokens = 512;
  std::string dtype = "bf16", device = "cpu";
  std::vector<int> threads = {1, 2};
  int repeats = 3;
  bool json = false;
};

// Forward FLOPs of the DiT blocks (matrix products and attention), per models.md G's accounting.
double DitFlops(const vidgen::wan::WanDitConfig& c, std::int64_t tokens, std::int64_t text_tokens) {
  const double L = static_cast<double>(tokens), T = static_cast<double>(text_tokens);
  const double D = static_cast<double>(c.dim), F = static_cast<double>(c.ffn_dim);
  const double self_attention = 2 * L * 4 * D * D + 4 * L * L * D;
  const double cross_attention = 2 * L * 2 * D * D + 2 * T * 2 * D * D + 4 * L * T * D;
  const double ffn = 2 * L * 2 * D * F;
  return static_cast<double>(c.num_layers) * (self_attention + cross_attention + ffn);
}

int RunDitBench(const DitBenchOptions& options) {
  torch::NoGradGuard no_grad;
  vidgen::wan::WanDitConfig config;
  config.dim = options.dim;
  config.num_heads = options.heads;
  config.ffn_dim = options.ffn_dim;
  config.num_layers = options.layers;
  const auto device = c10::Device(options.device);
  const auto dtype = vidgen::ParseModelDType(options.dtype);
  torch::manual_seed(0);
  vidgen::wan::WanDit dit(config);
  // Weights of a trained model's scale keep activations finite; the values do not matter for speed.
  for (auto& p : dit->parameters()) p.normal_(0, 0.02);
  dit->SetComputeDType(dtype);
  dit->to(device);
  dit->eval();

  vidgen::wan::WanDitInput input;
  input.x = {torch::randn({config.in_dim, options.latent_frames, options.latent_height, options.latent_width},
                          torch::TensorOptions().device(device))};
  input.timesteps = torch::tensor({500.0}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  input.context = {torch::randn({options.text_tokens, config.text_dim}, torch::TensorOptions().device(device))};
  const std::int64_t tokens = options.latent_frames * (options.latent_height / 2) * (options.latent_width / 2);
  const double flops = DitFlops(config, tokens, config.text_len);

  nlohmann::json results = nlohmann::json::array();
  for (const int threads : options.threads) {
    torch::set_num_threads(threads);
    dit->forward(input);  // warm-up: allocator, oneDNN kernels
    std::vector<double> seconds;
    for (int r = 0; r < options.repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      const auto out = dit->forward(input);
      if (device.is_cuda()) torch::cuda::synchronize();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      TORCH_CHECK(torch::isfinite(out[0]).all().item<bool>(), "the benchmark DiT produced non-finite values");
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    results.push_back({{"threads", threads},
                       {"seconds_per_step", median},
                       {"seconds_per_step_min", seconds.front()},
                       {"tokens_per_second", static_cast<double>(tokens) / median},
                       {"gflops_per_second", flops / median / 1e9}});
    if (!options.json) {
      fmt::print(
          "dit dim {} heads {} ffn {} layers {} tokens {} {} {} threads {}: {:.3f} s/step, {:.0f} tokens/s, "
          "{:.1f} GFLOP/s\n",
          config.dim, config.num_heads, config.ffn_dim, config.num_layers, tokens, options.dtype, options.device,
          threads, median, static_cast<double>(tokens) / median, flops / median / 1e9);
    }
  }
  if (options.json) {
    nlohmann::json report = {{"benchmark", "dit"},
                             {"dim", config.dim},
                             {"heads", config.num_heads},
                             {"ffn_dim", config.ffn_dim},
                             {"layers", config.num_layers},
                             {"tokens", tokens},
                             {"text_tokens", config.text_len},
                             {"dtype", options.dtype},
                             {"device", options.device},
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
  int repeats = 1;  // runs of each row; the fastest counts (a shared machine's noise only ever slows a run)
  bool json = false;
};

struct CacheBenchRow {
  std::string name;
  vidgen::cache::CacheConfig config;
};

// End-to-end denoising with each cache configuration against the uncached run of the same pipeline: a Wan DiT of
// the 1.3B block width with random weights, and the text encoder, tokenizer and VAE of `model_dir`.
int RunCacheBench(const CacheBenchOptions& options) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads);
  auto pipeline = vidgen::tools::MakeBenchPipeline(options.model);
  const auto& config = pipeline->dit()->config();

  const auto tokens = pipeline->tokenizer().Encode({"a red ball bouncing on a wooden floor", "blurry, static"});
  const auto contexts = pipeline->EncodeText(tokens);
  const auto noise = torch::randn({config.in_dim, (options.frames - 1) / 4 + 1, options.height / 8, options.width / 8},
                                  torch::TensorOptions().dtype(torch::kFloat));
  vidgen::dit::SamplerOptions denoise;
  denoise.schedule = {vidgen::schedulers::Solver::kUniPC, options.steps, 5.0, true};
  denoise.guidance_scale = 5.0;

  std::vector<CacheBenchRow> rows = {{"none", vidgen::cache::Preset("none")},
                                     {"reuse", vidgen::cache::Preset("fora")},
                                     {"taylorseer", vidgen::cache::Preset("taylorseer-wan")},
                                     {"taylorseer", vidgen::cache::Preset("taylorseer-wan")},
                                     {"lite", vidgen::cache::Preset("lite")}};
  rows[3].config.order = 2;

  pipeline->Denoise(noise, contexts[0], contexts[1], [&] {  // warm-up: allocator and kernels
    auto warm = denoise;
    warm.schedule.steps = 2;
    return warm;
  }());
  torch::Tensor reference_latents, reference_frames;
  double reference_seconds = 0;
  nlohmann::json report = nlohmann::json::array();
  for (const auto& row : rows) {
    denoise.cache = row.config;
    vidgen::GenerationStats stats;
    torch::Tensor latents;
    double seconds = INFINITY;
    for (int r = 0; r < options.repeats; ++r) {
      stats = {};
      const auto start = std::chrono::steady_clock::now();
      latents = pipeline->Denoise(noise, contexts[0], contexts[1], denoise, {}, nullptr, &stats);
      seconds = std::min(seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const auto frames = vidgen::ToVideoFrames(pipeline->Decode(latents));
    if (!reference_latents.defined()) {
      reference_latents = latents;
      reference_frames = frames;
      reference_seconds = seconds;
    }
    const double rel_l2 = ((latents - reference_latents).norm() / reference_latents.norm()).item<double>();
    const double psnr = vidgen::tools::Psnr(frames, reference_frames);
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
                            {"forecast_seconds", stats.forecast_seconds}};
    report.push_back(entry);
    if (!options.json) {
      fmt::print(
          "{:<11} N={} O={} full {:>2}/{} ideal {:.2f}x speedup {:.2f}x ({:.1f}% of ideal) {:.2f} s  rel_l2 "
          "{:.4f} psnr {:.1f} dB cache {:.1f} MiB\n",
          row.name, entry["interval"].get<int>(), entry["order"].get<int>(), stats.full_steps, options.steps,
          entry["ideal_speedup"].get<double>(), reference_seconds / seconds,
          100 * (reference_seconds / seconds) / entry["ideal_speedup"].get<double>(), seconds, rel_l2, psnr,
          static_cast<double>(stats.cache_peak_bytes) / (1 << 20));
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
  auto* dit_command = app.add_subcommand("dit", "Wan DiT forward latency and throughput (random weights)");
  dit_command->add_option("--dim", dit.dim, "block width")->capture_default_str();
  dit_command->add_option("--heads", dit.heads)->capture_default_str();
  dit_command->add_option("--ffn-dim", dit.ffn_dim)->capture_default_str();
  dit_command->add_option("--layers", dit.layers)->capture_default_str();
  dit_command->add_option("--latent-frames", dit.latent_frames)->capture_default_str();
  dit_command->add_option("--latent-height", dit.latent_height)->capture_default_str();
  dit_command->add_option("--latent-width", dit.latent_width)->capture_default_str();
  dit_command->add_option("--dtype", dit.dtype, "fp32, bf16 or fp16")->capture_default_str();
  dit_command->add_option("--device", dit.device, "cpu or cuda[:N]")->capture_default_str();
  dit_command->add_option("--threads", dit.threads, "thread counts to measure")->capture_default_str();
  dit_command->add_option("--repeats", dit.repeats)->capture_default_str();
  dit_command->add_flag("--json", dit.json, "print one JSON report");

  CacheBenchOptions cache;
  auto* cache_command = app.add_subcommand(
      "cache", "denoising with each cache policy vs uncached (--model random: speed; demo: quality)");
  cache_command->add_option("--model-dir", cache.model.model_dir, "checkpoint for tokenizer, T5 and VAE")
      ->capture_default_str();
  cache_command->add_option("--dim", cache.model.dim)->capture_default_str();
  cache_command->add_option("--heads", cache.model.heads)->capture_default_str();
  cache_command->add_option("--ffn-dim", cache.model.ffn_dim)->capture_default_str();
  cache_command->add_option("--layers", cache.model.layers)->capture_default_str();
  cache_command->add_option("--frames", cache.frames)->capture_default_str();
  cache_command->add_option("--height", cache.height)->capture_default_str();
  cache_command->add_option("--width", cache.width)->capture_default_str();
  cache_command->add_option("--steps", cache.steps)->capture_default_str();
  cache_command->add_option("--threads", cache.threads)->capture_default_str();
  cache_command->add_option("--repeats", cache.repeats, "runs of each row; the fastest counts")->capture_default_str();
  cache_command->add_option("--dtype", cache.model.dtype)->capture_default_str();
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
  vidgen::tools::ParallelBenchOptions parallel;
  auto* parallel_command =
      app.add_subcommand("parallel", "sequence / CFG parallelism on 2 local ranks vs one process (random DiT)");
  parallel_command->add_option("--model-dir", parallel.model.model_dir)->capture_default_str();
  parallel_command->add_option("--layers", parallel.model.layers)->capture_default_str();
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
      ->add_option("--cache", quality.caches,
                   "none, presets, or policy:interval[:order][:sigma] (reuse:5, taylorseer:5:2, lite:8)")
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
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-bench", [&] {
    if (parallel_command->parsed() && vidgen::tools::IsParallelBenchRank()) {
      return vidgen::tools::RunParallelBenchRank(parallel);
    }
    if (parallel_command->parsed()) return vidgen::tools::RunParallelBench(parallel, argv);
    if (dit_command->parsed()) return RunDitBench(dit);
    if (load_command->parsed()) return vidgen::tools::RunLoadBench(load);
    if (cache_command->parsed() && cache_model == "demo") {
      if (cache_command->count("--model-dir") > 0) demo_cache.model_dir = cache.model.model_dir;
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
