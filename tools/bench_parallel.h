// vidgen-bench parallel: sequence and CFG parallelism on local ranks against one process, cached and uncached.
#pragma once

#include <cstdint>
#include <string>

namespace vidgen::tools {

struct ParallelBenchOptions {
  std::string model_dir = "tests/data/golden/wan2.1-t2v-tiny";  // tokenizer, text encoder and VAE
  std::int64_t dim = 1536, heads = 12, ffn_dim = 8960, layers = 2;
  std::int64_t latent_frames = 5, latent_height = 32, latent_width = 40;  // 1600 tokens
  int steps = 10;
  std::string dtype = "bf16";
  bool json = false;
};

// True in a rank that the parallel benchmark started; it then measures one run.
bool IsParallelBenchRank();
int RunParallelBenchRank(const ParallelBenchOptions& options);
// Measures every layout (each in fresh local ranks of this executable, started with `argv`) and prints the JSON.
int RunParallelBench(const ParallelBenchOptions& options, char** argv);

}  // namespace vidgen::tools
