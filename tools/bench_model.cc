#include "tools/bench_model.h"

#include <torch/torch.h>

namespace vidgen::tools {

std::unique_ptr<wan::WanPipeline> MakeBenchPipeline(const BenchModel& model, parallel::World* world) {
  torch::NoGradGuard no_grad;
  auto parts = wan::LoadWanCheckpoint(model.model_dir, torch::kFloat);
  auto config = parts.dit->config();
  config.dim = model.dim;
  config.num_heads = model.heads;
  config.ffn_dim = model.ffn_dim;
  config.num_layers = model.layers;
  torch::manual_seed(0);
  parts.dit = wan::WanDit(config);
  // Weights of a trained model's scale keep activations finite; their values do not matter for speed.
  for (auto& p : parts.dit->parameters()) p.normal_(0, 0.02);
  parts.dit->SetComputeDType(ParseModelDType(model.dtype));
  parts.dit->eval();
  wan::WanLoadOptions options;
  options.world = world;
  return wan::WanPipeline::FromParts(std::move(parts), options);
}

}  // namespace vidgen::tools
