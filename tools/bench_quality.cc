#include "tools/bench_quality.h"

#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cache/config.h"
#include "common/error.h"
#include "models/demo/world.h"
#include "models/wan/pipeline.h"

namespace vidgen::tools {
namespace {

// "none", a preset name, or policy:interval:order.
cache::CacheConfig ParseCache(const std::string& text) {
  const auto first = text.find(':');
  if (first == std::string::npos) return cache::Preset(text);
  const auto second = text.find(':', first + 1);
  cache::CacheConfig config = cache::Preset(text.substr(0, first) == "lite" ? "lite" : "taylorseer-wan");
  config.interval = std::stoi(text.substr(first + 1, second - first - 1));
  if (second != std::string::npos) config.order = std::stoi(text.substr(second + 1));
  config.Validate();
  return config;
}

double Psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(torch::kFloat) - b.to(torch::kFloat)).pow(2).mean().item<double>();
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

// Mean SSIM over frames of grey images, 8×8 windows at stride 4 (enough to rank caches against each other).
double Ssim(const at::Tensor& a, const at::Tensor& b) {
  namespace F = torch::nn::functional;
  auto grey = [](const at::Tensor& v) { return v.to(torch::kFloat).mean(-1).unsqueeze(1); };  // [F, 1, H, W]
  const auto x = grey(a), y = grey(b);
  const auto pool = [](const at::Tensor& t) { return F::avg_pool2d(t, F::AvgPool2dFuncOptions(8).stride(4)); };
  const auto mx = pool(x), my = pool(y);
  const auto sx = pool(x * x) - mx * mx, sy = pool(y * y) - my * my, sxy = pool(x * y) - mx * my;
  constexpr double c1 = 6.5025, c2 = 58.5225;  // (0.01·255)², (0.03·255)²
  return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sx + sy + c2))).mean().item<double>();
}

}  // namespace

int RunQualityBench(const QualityBenchOptions& options) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads > 0 ? options.threads
                                             : static_cast<int>(std::thread::hardware_concurrency()));
  wan::WanLoadOptions load;
  load.dtype = torch::kFloat;
  auto pipeline = wan::WanPipeline::Load(options.model_dir, load);
  std::vector<demo::ClipSpec> held_out;
  for (const auto& spec : demo::AllClips()) {
    if (demo::HeldOut(spec)) held_out.push_back(spec);
  }
  if (options.prompts > 0 && static_cast<std::size_t>(options.prompts) < held_out.size()) {
    held_out.resize(static_cast<std::size_t>(options.prompts));
  }
  const int size = options.size > 0 ? options.size : 64, frames = options.frames > 0 ? options.frames : 17;

  nlohmann::json report = nlohmann::json::array();
  // The ceiling: the held-out clips themselves through the VAE, and how much of them the analysis still reads.
  {
    demo::RenderOptions clip;
    clip.frames = frames;
    clip.size = size;
    int colour = 0, direction = 0, shape = 0;
    for (std::size_t i = 0; i < held_out.size(); ++i) {
      const auto video = demo::Render(held_out[i], 1000 + i, clip).permute({3, 0, 1, 2}).to(torch::kFloat).div(127.5).sub(1);
      const auto decoded = pipeline->vae()->Decode(pipeline->vae()->Encode(video.unsqueeze(0)))[0];
      const auto analysis = demo::Analyze(ToVideoFrames(decoded));
      colour += analysis.found && analysis.colour == held_out[i].colour;
      direction += analysis.found && analysis.direction == held_out[i].direction;
      shape += analysis.found && analysis.shape == held_out[i].shape;
    }
    const double n = static_cast<double>(held_out.size());
    report.push_back({{"cache", "vae reconstruction"}, {"prompts", held_out.size()}, {"colour_accuracy", colour / n},
                      {"direction_accuracy", direction / n}, {"shape_accuracy", shape / n}});
    if (!options.json) {
      fmt::print("{:<16} colour {:.0f}%  direction {:.0f}%  shape {:.0f}%  (rendered clips through the VAE)\n",
                 "vae", 100 * colour / n, 100 * direction / n, 100 * shape / n);
    }
  }
  std::vector<at::Tensor> reference;  // the uncached videos, for fidelity
  for (const auto& cache_name : options.caches) {
    const auto cache = ParseCache(cache_name);
    int colour = 0, direction = 0, shape = 0, found = 0, full = 0, predicted = 0;
    double psnr = 0, ssim = 0, seconds = 0;
    for (std::size_t i = 0; i < held_out.size(); ++i) {
      GenerationRequest request;
      request.prompt = demo::Prompt(held_out[i]);
      request.negative_prompt = " ";
      request.width = request.height = size;
      request.frames = frames;
      request.steps = options.steps;
      request.seed = i;
      request.cache = cache;
      const auto start = std::chrono::steady_clock::now();
      const auto result = pipeline->Generate(request, {});
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      full += result.stats.full_steps;
      predicted += result.stats.predicted_steps;
      const auto analysis = demo::Analyze(result.frames);
      found += analysis.found;
      colour += analysis.found && analysis.colour == held_out[i].colour;
      direction += analysis.found && analysis.direction == held_out[i].direction;
      shape += analysis.found && analysis.shape == held_out[i].shape;
      if (!cache.enabled() && reference.size() < held_out.size()) reference.push_back(result.frames);
      if (i < reference.size()) {
        psnr += Psnr(result.frames, reference[i]);
        ssim += Ssim(result.frames, reference[i]);
      }
    }
    const double n = static_cast<double>(held_out.size());
    report.push_back({{"cache", cache_name},
                      {"policy", cache::PolicyName(cache.policy)},
                      {"interval", cache.enabled() ? cache.interval : 1},
                      {"order", cache.order},
                      {"prompts", held_out.size()},
                      {"full_steps", full / n},
                      {"predicted_steps", predicted / n},
                      {"seconds_per_video", seconds / n},
                      {"found", found / n},
                      {"colour_accuracy", colour / n},
                      {"direction_accuracy", direction / n},
                      {"shape_accuracy", shape / n},
                      {"psnr_db", reference.empty() ? 0.0 : psnr / n},
                      {"ssim", reference.empty() ? 0.0 : ssim / n}});
    if (!options.json) {
      const auto& row = report.back();
      fmt::print("{:<16} full {:5.1f}  {:5.2f} s/video  colour {:.0f}%  direction {:.0f}%  shape {:.0f}%  "
                 "PSNR {:.1f} dB  SSIM {:.3f}\n",
                 cache_name, row["full_steps"].get<double>(), row["seconds_per_video"].get<double>(),
                 100 * row["colour_accuracy"].get<double>(), 100 * row["direction_accuracy"].get<double>(),
                 100 * row["shape_accuracy"].get<double>(), row["psnr_db"].get<double>(), row["ssim"].get<double>());
    }
  }
  if (options.json) fmt::print("{}\n", report.dump(2));
  return 0;
}

}  // namespace vidgen::tools
