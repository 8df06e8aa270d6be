// vidgen-bench load: how long a checkpoint takes to load and how much memory loading holds at its peak, against the
// weights it ends with (read once, so that weights used straight from the mapped file count). With --synthetic-gib it
// first writes a checkpoint of about that size in the family's released layout (a random-weight DiT at the released
// block width; the text encoders, tokenizers and VAE copied from a small checkpoint) and measures loading it in a fresh
// process.
#pragma once

#include <string>

namespace vidgen::tools {

struct LoadBenchOptions {
  std::string model_dir;
  std::string family;  // wan2.1 or hunyuanvideo; default: told by the folder
  std::string dtype = "bf16", device = "cpu";
  double synthetic_gib = 0;
  std::string parts_from;  // synthetic: the small checkpoint the other parts come from (default: the golden one)
  bool json = false;
};

int RunLoadBench(const LoadBenchOptions& options);

}  // namespace vidgen::tools
