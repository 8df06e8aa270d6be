#include "tools/bench_quality.h"

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cache/config.h"
#include "common/error.h"
#include "common/json.h"
#include "models/demo/train.h"
#include "models/demo/world.h"
#include "models/io/json_config.h"
#include "models/wan/pipeline.h"
#include "tools/frame_metrics.h"
#include "tools/lora_flag.h"

namespace vidgen::tools {
namespace {

// "none", a preset name, or policy:interval[:order][:distance][:expansion][:w<warmup>][:t<tail>] with policy reuse,
// taylorseer, lite or a preset (taylorseer:5:2:sigma, taylorseer-cfg-calibrated:9:2:w2).
cache::CacheConfig ParseCacheSetting(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ':');) parts.push_back(part);
  if (parts.size() == 1) return cache::Preset(text);
  const auto& policy = parts[0];
  auto config = policy == "reuse"        ? cache::Preset("fora")
                : policy == "taylorseer" ? cache::Preset("taylorseer-wan")
                                         : cache::Preset(policy, fmt::format("cache setting '{}'", text));
  try {
    config.interval = std::stoi(parts[1]);
    std::size_t next = 2;
    if (config.order != 0 && parts.size() > next && std::isdigit(static_cast<unsigned char>(parts[next][0]))) {
      config.order = std::stoi(parts[next++]);
    }
    // Then, in any order: a distance ("sigma", "step"), an expansion ("newton", "taylor"), "w<N>" full steps at the
    // start and "t<N>" at the end.
    for (; next < parts.size(); ++next) {
      const auto& part = parts[next];
      if (part.size() > 1 && (part[0] == 'w' || part[0] == 't') && std::isdigit(static_cast<unsigned char>(part[1]))) {
        (part[0] == 'w' ? config.warmup : config.tail) = std::stoi(part.substr(1));
      } else if (part == "newton" || part == "taylor") {
        config.expansion = cache::ParseExpansion(part);
      } else {
        config.distance = cache::ParseDistance(part);
      }
    }
  } catch (const std::logic_error&) {
    Fail(ErrorCode::kInvalidArgument, "cache setting '{}': the interval and order must be numbers", text);
  }
  config.Validate();
  return config;
}

// The line a setting belongs to in the plot: its policy, order and distance, across intervals.
std::string SeriesName(const cache::CacheConfig& config) {
  if (!config.enabled()) return "none";
  if (config.policy == cache::Policy::kLite) return "lite";
  const bool reuse_difference = config.guidance == cache::GuidanceCache::kReuseDifference;
  if (config.order == 0) return reuse_difference ? "reuse, guidance reused" : "reuse";
  return fmt::format("taylorseer O{}{}{}{}", config.order, config.distance == cache::Distance::kSigma ? " sigma" : "",
                     config.expansion == cache::Expansion::kNewton ? " newton" : "",
                     !reuse_difference   ? ""
                     : config.calibrated ? ", guidance reused, calibrated"
                                         : ", guidance reused");
}

// How many of the videos the analysis reads as their prompts say.
struct Adherence {
  int found = 0, colour = 0, direction = 0, shape = 0, both = 0;  // both: colour and direction
  // Diagonal prompts: each part of the motion alone, and a diagonal path (whatever its signs).
  int diagonal_prompts = 0, vertical = 0, horizontal = 0, diagonal = 0;

  void Add(const at::Tensor& frames, const demo::ClipSpec& spec) {
    const auto analysis = demo::Analyze(frames);
    found += analysis.found;
    colour += analysis.found && analysis.colour == spec.colour;
    direction += analysis.found && demo::MovesAsPrompted(analysis, spec);
    shape += analysis.found && analysis.shape == spec.shape;
    both += analysis.found && analysis.colour == spec.colour && demo::MovesAsPrompted(analysis, spec);
    if (spec.horizontal) {
      ++diagonal_prompts;
      vertical += analysis.found && analysis.vertical == spec.direction;
      horizontal += analysis.found && analysis.horizontal == *spec.horizontal;
      diagonal += analysis.found && analysis.diagonal;
    }
  }
  void Report(nlohmann::json& row, double n) const {
    row["found"] = found / n;
    row["colour_accuracy"] = colour / n;
    row["direction_accuracy"] = direction / n;
    row["shape_accuracy"] = shape / n;
    row["adherence"] = both / n;
    if (diagonal_prompts > 0) {
      row["vertical_accuracy"] = vertical / n;
      row["horizontal_accuracy"] = horizontal / n;
      row["diagonal_paths"] = diagonal / n;
    }
  }
  // "  (vertical 99%  horizontal 70%  diagonal path 66%)" for diagonal prompts, else nothing.
  std::string DiagonalParts(double n) const {
    if (diagonal_prompts == 0) return "";
    return fmt::format("  (vertical {:.0f}%  horizontal {:.0f}%  diagonal path {:.0f}%)", 100 * vertical / n,
                       100 * horizontal / n, 100 * diagonal / n);
  }
};

// Quality against speed-up, one line per policy: PSNR to the uncached videos, and adherence with the uncached
// level as a dashed line; the policies that reuse the guidance difference solid, the others dashed. Drawn by gnuplot
// (Debian's gnuplot-nox) from a script on its standard input, from the rows of a report.
void WritePlot(const nlohmann::json& rows, const std::string& path) {
  std::map<std::string, std::vector<const nlohmann::json*>> series;
  double uncached_adherence = -1, guidance = 0;
  int steps = 0;
  for (const auto& row : rows) {
    if (!row.contains("policy")) continue;  // the VAE ceiling
    steps = row.value("steps", 0);
    guidance = row.value("guidance", 0.0);
    if (row["policy"] == "none") {
      uncached_adherence = 100 * row["adherence"].get<double>();
    } else {
      series[row["series"].get<std::string>()].push_back(&row);
    }
  }
  static constexpr std::array kColours = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#f0c000"};
  std::string script = fmt::format(
      "set terminal pngcairo size 1280,760 font 'sans,11'\nset output '{}'\nset grid\n"
      "set key outside below horizontal maxcols 3 font ',10'\n"
      "set offsets graph 0.04, graph 0.04, graph 0.04, graph 0.04\n"
      "set multiplot layout 1,2 title 'demo model, held-out prompts, {} steps, guidance {}'\n",
      path, steps, guidance);
  std::string plot_psnr = "plot ", plot_adherence = "plot ";
  std::size_t index = 0;
  for (const auto& [name, points] : series) {
    script += fmt::format("$s{} << EOD\n", index);
    for (const auto* row : points) {
      script += fmt::format("{} {} {}\n", (*row)["ideal_speedup"].get<double>(), (*row)["psnr_db"].get<double>(),
                            100 * (*row)["adherence"].get<double>());
    }
    script += "EOD\n";
    const auto style =
        fmt::format("with linespoints lw 2 pt 7 lc rgb '{}' dt {} title '{}'", kColours[index % kColours.size()],
                    name.find("guidance reused") == std::string::npos ? 2 : 1, name);
    plot_psnr += fmt::format("$s{} using 1:2 {}, ", index, style);
    plot_adherence += fmt::format("$s{} using 1:3 {}, ", index, style);
    ++index;
  }
  script += "set xlabel 'speed-up in DiT passes (steps / full steps)'\nset ylabel 'PSNR vs uncached (dB)'\n" +
            plot_psnr.substr(0, plot_psnr.size() - 2) + "\n";
  script += "set ylabel 'colour and direction right (%)'\nset yrange [0:105]\n" + plot_adherence +
            fmt::format("{} with lines dt 3 lc 'black' title 'uncached'\n", uncached_adherence);
  script += "unset multiplot\n";
  FILE* gnuplot = ::popen("gnuplot 2>&1", "w");
  if (gnuplot == nullptr) Fail(ErrorCode::kInternal, "cannot start gnuplot to draw '{}'", path);
  std::fwrite(script.data(), 1, script.size(), gnuplot);
  const int status = ::pclose(gnuplot);
  if (status != 0) {
    Fail(ErrorCode::kFailedPrecondition, "gnuplot could not draw '{}' (exit status {}); is gnuplot-nox installed?",
         path, status);
  }
}

}  // namespace

std::vector<std::string> DemoCacheGrid() {
  std::vector<std::string> grid = {"none"};
  for (const char* policy :
       {"reuse:{}", "taylorseer:{}:1", "taylorseer:{}:2", "lite:{}", "taylorseer:{}:1:sigma", "taylorseer:{}:2:sigma",
        "taylorseer-cfg:{}:1", "taylorseer-cfg:{}:2", "taylorseer-cfg-calibrated:{}:1",
        "taylorseer-cfg-calibrated:{}:2", "taylorseer-cfg-calibrated:{}:2:newton"}) {
    for (const int interval : {3, 5, 8}) grid.push_back(fmt::format(fmt::runtime(policy), interval));
  }
  return grid;
}

int RunQualityBench(const QualityBenchOptions& options) {
  if (!options.replot.empty()) {
    if (options.plot.empty()) Fail(ErrorCode::kInvalidArgument, "--replot needs --plot, the PNG to draw");
    const auto report = ReadJsonFile(options.replot, "report", std::uintmax_t{64} << 20);
    if (!report.is_array()) Fail(ErrorCode::kInvalidArgument, "report '{}' is not a JSON array", options.replot);
    WritePlot(report, options.plot);
    return 0;
  }
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<cache::CacheConfig> settings;
  for (const auto& name : options.caches) settings.push_back(ParseCacheSetting(name));
  wan::WanLoadOptions load;
  load.dtype = torch::kFloat;
  auto pipeline = wan::WanPipeline::Load(options.model_dir, load);
  std::vector<lora::Adapter> adapters;
  std::vector<std::pair<const lora::Adapter*, double>> loras;
  adapters.reserve(options.loras.size());
  for (const auto& text : options.loras) {
    const auto flag = ParseLoraFlag(text);
    adapters.push_back(pipeline->ReadLora(flag.name));
    loras.emplace_back(&adapters.back(), flag.scale.value_or(1.0));
  }
  const lora::AppliedAdapters applied(*pipeline->dit(), loras);
  if (options.prompt_set != "held-out" && options.prompt_set != "diagonal") {
    Fail(ErrorCode::kInvalidArgument, "--prompt-set '{}': held-out or diagonal", options.prompt_set);
  }
  std::vector<demo::ClipSpec> specs;
  for (const auto& spec : options.prompt_set == "diagonal" ? demo::DiagonalClips() : demo::AllClips()) {
    if (demo::HeldOut(spec) != options.seen) specs.push_back(spec);
  }
  if (options.prompts > 0 && static_cast<std::size_t>(options.prompts) < specs.size()) {
    specs.resize(static_cast<std::size_t>(options.prompts));
  }
  auto clip = demo::TrainedClip(options.model_dir);
  if (options.size > 0) clip.size = options.size;
  if (options.frames > 0) clip.frames = options.frames;
  const double n = static_cast<double>(specs.size());

  nlohmann::json report = nlohmann::json::array();
  // The ceiling: the held-out clips themselves through the VAE, and how much of them the analysis still reads.
  {
    Adherence adherence;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const auto video =
          demo::Render(specs[i], 1000 + i, clip).permute({3, 0, 1, 2}).to(torch::kFloat).div(127.5).sub(1);
      adherence.Add(ToVideoFrames(pipeline->Decode(pipeline->vae()->Encode(video.unsqueeze(0))[0])), specs[i]);
    }
    nlohmann::json row = {{"cache", "vae reconstruction"}, {"prompts", specs.size()}};
    adherence.Report(row, n);
    report.push_back(row);
    if (!options.json) {
      fmt::print("{:<22} colour {:.0f}%  direction {:.0f}%  shape {:.0f}%{}  (rendered clips through the VAE)\n", "vae",
                 100 * row["colour_accuracy"].get<double>(), 100 * row["direction_accuracy"].get<double>(),
                 100 * row["shape_accuracy"].get<double>(), adherence.DiagonalParts(n));
    }
  }

  // Per prompt, the text states (with the empty negative prompt the demo model learned) and the noise, shared by
  // every setting.
  std::vector<std::vector<at::Tensor>> contexts;
  std::vector<at::Tensor> noises;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    contexts.push_back(pipeline->EncodeText(pipeline->tokenizer().Encode({demo::Prompt(specs[i]), ""})));
    GenerationRequest request;
    request.width = request.height = clip.size;
    request.frames = clip.frames;
    request.seed = i;
    noises.push_back(
        SeededNoise(request, pipeline->dit()->config().in_dim, /*space_stride=*/8, c10::Device(torch::kCPU)));
  }
  dit::SamplerOptions denoise;
  denoise.schedule = {schedulers::ParseSolver(options.solver),
                      options.timesteps.empty() ? options.steps : static_cast<int>(options.timesteps.size()),
                      options.shift, /*integer_timesteps=*/true, options.timesteps};
  denoise.guidance_scale = options.guidance;

  {  // warm-up: allocator and kernels, so that the first setting's time is not the slowest for nothing
    auto warm = denoise;
    warm.schedule.steps = 3;
    warm.schedule.timesteps.clear();
    pipeline->Denoise(noises[0], {contexts[0][0], contexts[0][1]}, warm);
  }
  std::vector<at::Tensor> reference_latents, reference_frames;  // the first setting's
  double reference_seconds = 0;
  for (std::size_t s = 0; s < settings.size(); ++s) {
    denoise.cache = settings[s];
    Adherence adherence;
    int full = 0;
    double seconds = 0, psnr = 0, ssim = 0, rel_l2 = 0, forecast_seconds = 0;
    std::int64_t cache_bytes = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      GenerationStats video_stats;
      const auto start = std::chrono::steady_clock::now();
      const auto latents =
          pipeline->Denoise(noises[i], {contexts[i][0], contexts[i][1]}, denoise, {}, nullptr, &video_stats);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const auto frames = ToVideoFrames(pipeline->Decode(latents));
      adherence.Add(frames, specs[i]);
      full += video_stats.full_steps;
      forecast_seconds += video_stats.forecast_seconds;
      cache_bytes = std::max(cache_bytes, video_stats.cache_peak_bytes);
      if (s == 0) {
        reference_latents.push_back(latents);
        reference_frames.push_back(frames);
      }
      psnr += Psnr(frames, reference_frames[i]);
      ssim += Ssim(frames, reference_frames[i]);
      rel_l2 += ((latents - reference_latents[i]).norm() / reference_latents[i].norm()).item<double>();
    }
    if (s == 0) reference_seconds = seconds;
    const auto& config = settings[s];
    const double full_steps = full / n;
    nlohmann::json row = {
        {"cache", options.caches[s]},
        {"policy", config.enabled() && config.order == 0 && config.policy == cache::Policy::kTaylorSeer
                       ? "reuse"
                       : cache::PolicyName(config.policy)},
        {"series", SeriesName(config)},
        {"interval", config.enabled() ? config.interval : 1},
        {"order", config.enabled() ? config.order : 0},
        {"warmup", config.enabled() ? config.warmup : 0},
        {"distance", config.distance == cache::Distance::kSigma ? "sigma" : "step"},
        {"expansion", config.expansion == cache::Expansion::kNewton ? "newton" : "taylor"},
        {"guidance_cache", cache::GuidanceCacheName(config.guidance)},
        {"calibrated", config.calibrated},
        {"guidance", options.guidance},
        {"steps", denoise.schedule.steps},
        {"solver", options.solver},
        {"loras", options.loras},
        {"prompt_set", options.prompt_set},
        {"seen", options.seen},
        {"dit_passes", full_steps * (options.guidance == 1.0 ? 1 : 2)},
        {"prompts", specs.size()},
        {"full_steps", full_steps},
        {"ideal_speedup", denoise.schedule.steps / full_steps},
        {"speedup", reference_seconds / seconds},
        {"seconds", seconds / n},
        {"rel_l2", rel_l2 / n},
        {"psnr_db", std::isfinite(psnr) ? nlohmann::json(psnr / n) : nlohmann::json("inf")},
        {"ssim", ssim / n},
        {"cache_bytes", cache_bytes},
        {"forecast_seconds", forecast_seconds / n}};
    adherence.Report(row, n);
    report.push_back(row);
    if (!options.json) {
      fmt::print(
          "{:<22} full {:4.1f}  {:4.2f}x ({:4.2f}x measured)  colour {:3.0f}%  direction {:3.0f}%  "
          "shape {:3.0f}%  both {:3.0f}%  PSNR {:4.1f} dB  SSIM {:.3f}  rel_l2 {:.4f}{}\n",
          options.caches[s], full_steps, denoise.schedule.steps / full_steps, reference_seconds / seconds,
          100 * row["colour_accuracy"].get<double>(), 100 * row["direction_accuracy"].get<double>(),
          100 * row["shape_accuracy"].get<double>(), 100 * row["adherence"].get<double>(), psnr / n,
          row["ssim"].get<double>(), row["rel_l2"].get<double>(), adherence.DiagonalParts(n));
    }
  }
  if (options.json) fmt::print("{}\n", report.dump(2));
  if (!options.plot.empty()) WritePlot(report, options.plot);
  return 0;
}

}  // namespace vidgen::tools
