// vidgen-bench quality: prompt adherence of a model trained on the demo world — videos for the held-out prompts,
// read back by the world's analysis (colour, shape, direction) — with and without feature caching, and the cached
// videos' fidelity to the uncached ones (PSNR, SSIM).
#pragma once

#include <string>
#include <vector>

namespace vidgen::tools {

struct QualityBenchOptions {
  std::string model_dir = "models/demo/wan-demo";
  int steps = 50;
  int size = 0, frames = 0;  // 0: the size the model was trained at (its config's demo_clip, else 64 and 17)
  int prompts = 0;           // held-out prompts to use, 0: all
  int threads = 0;
  std::vector<std::string> caches = {"none"};  // presets, or policy:interval:order (e.g. taylorseer:5:2)
  bool json = false;
};

int RunQualityBench(const QualityBenchOptions& options);

}  // namespace vidgen::tools
