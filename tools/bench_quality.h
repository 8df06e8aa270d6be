// vidgen-bench quality, and `vidgen-bench cache --model demo`: a model trained on the demo world generates videos
// for the held-out prompts under each cache setting; the world's analysis reads them back (colour, shape,
// direction) and the cached videos are compared with the uncached ones (PSNR and SSIM of the frames, relative L2 of
// the latents), next to the compute each setting saves.
#pragma once

#include <string>
#include <vector>

namespace vidgen::tools {

struct QualityBenchOptions {
  std::string model_dir = "assets/wan2.1-demo";
  int steps = 50;
  double guidance = 5.0;
  int size = 0, frames = 0;  // 0: what the model was trained at (its config's "vidgen_defaults"), else 32 and 17
  int prompts = 0;           // held-out prompts to use, 0: all
  // "held-out": the base world's held-out combinations; "diagonal": the held-out diagonal ones (the motion the demo
  // LoRA teaches).
  std::string prompt_set = "held-out";
  bool seen = false;               // the set's training combinations instead: how well a model fits what it saw
  std::vector<std::string> loras;  // PATH[:SCALE], applied to the DiT for every setting
  // The sampler: a solver, and a given schedule (then `steps` is its length) as a step-distilled model samples.
  std::string solver = "unipc";
  std::vector<double> timesteps;
  double shift = 5.0;
  int threads = 0;
  // "none", a preset, or policy:interval[:order][:distance][:expansion][:w<warmup>][:t<tail>] with policy reuse,
  // taylorseer, lite or a preset (taylorseer:5:2, reuse:8, taylorseer-cfg-calibrated:8:2:newton). The first setting
  // is the reference of the fidelity columns.
  std::vector<std::string> caches = {"none"};
  bool json = false;
  std::string plot;    // a PNG of quality vs speed-up, one line per policy (drawn by gnuplot)
  std::string replot;  // draw `plot` from this report (the JSON a run printed) instead of measuring
};

// The settings `cache --model demo` compares, each at intervals 3, 5 and 8: reuse, TaylorSeer orders 1 and 2 (step
// and sigma distance), lite; the guidance difference reused (orders 1 and 2), uncalibrated and calibrated, and
// calibrated with Newton's expansion; and none.
std::vector<std::string> DemoCacheGrid();

int RunQualityBench(const QualityBenchOptions& options);

}  // namespace vidgen::tools
