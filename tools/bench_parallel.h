// vidgen-bench parallel: sequence and CFG parallelism on local ranks against one process, cached and uncached.
#pragma once

#include <cstdint>
#include <string>

#include "tools/bench_model.h"

namespace vidgen::tools {

struct ParallelBenchOptions {
  BenchModel model = BenchModel::WithLayers(2);
  std::int64_t latent_frames = 5, latent_height = 48, latent_width = 48;  // 2880 tokens
  int steps = 10;
  bool json = false;
};

// True in a rank that the parallel benchmark started; it then measures one run.
bool IsParallelBenchRank();
int RunParallelBenchRank(const ParallelBenchOptions& options);
// Measures every layout (each in fresh local ranks of this executable, started with `argv`) and prints the JSON.
int RunParallelBench(const ParallelBenchOptions& options, char** argv);

}  // namespace vidgen::tools
