// The model the benchmarks run: a Wan DiT of a chosen size with random weights (the same on every rank: seeded),
// with the tokenizer, text encoder and VAE of a checkpoint folder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "models/wan/pipeline.h"

namespace vidgen::tools {

struct BenchModel {
  std::string model_dir = "tests/data/golden/wan2.1-t2v-tiny";
  std::int64_t dim = 1536, heads = 12, ffn_dim = 8960, layers = 1;
  std::string dtype = "bf16";
};

std::unique_ptr<wan::WanPipeline> MakeBenchPipeline(const BenchModel& model, parallel::World* world = nullptr);

}  // namespace vidgen::tools
