#include "models/demo/low_rank.h"

#include <cmath>

#include <torch/torch.h>

namespace vidgen::demo {

LowRankAdapters::LowRankAdapters(torch::nn::Module& module, const LowRankOptions& options)
    : scale_(options.alpha / static_cast<double>(options.rank)), alpha_(options.alpha) {
  for (auto& parameter : module.parameters()) parameter.set_requires_grad(false);
  auto generator = at::detail::createCPUGenerator(options.seed);
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto* linear = item.value()->as<torch::nn::Linear>();
    if (linear == nullptr || (options.select && !options.select(item.key()))) continue;
    const auto& weight = linear->weight;
    const auto in = weight.size(1), out = weight.size(0);
    Pair pair{torch::nn::Linear(std::dynamic_pointer_cast<torch::nn::LinearImpl>(item.value())), weight, {}, {}};
    // A as nn.Linear initialises its weights (Kaiming-uniform, bound 1/sqrt(in)); B zero: ΔW = 0 at the start.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    pair.down =
        (torch::rand({options.rank, in}, generator, weight.options()) * 2 - 1).mul_(bound).set_requires_grad(true);
    pair.up = torch::zeros({out, options.rank}, weight.options()).set_requires_grad(true);
    pairs_.emplace(item.key(), std::move(pair));
  }
}

std::vector<at::Tensor> LowRankAdapters::parameters() const {
  std::vector<at::Tensor> tensors;
  for (const auto& [path, pair] : pairs_) {
    tensors.push_back(pair.down);
    tensors.push_back(pair.up);
  }
  return tensors;
}

void LowRankAdapters::Attach() {
  // The Linear computes with its `weight` member; its registered parameter stays the base, untouched.
  for (auto& [path, pair] : pairs_) pair.linear->weight = pair.base + scale_ * torch::mm(pair.up, pair.down);
}

void LowRankAdapters::Detach() {
  for (auto& [path, pair] : pairs_) pair.linear->weight = pair.base;
}

io::NamedTensors LowRankAdapters::Export() const {
  io::NamedTensors tensors;
  for (const auto& [path, pair] : pairs_) {
    tensors.emplace_back(path + ".lora_A.weight", pair.down.detach().clone());
    tensors.emplace_back(path + ".lora_B.weight", pair.up.detach().clone());
    tensors.emplace_back(path + ".alpha", torch::tensor(alpha_, torch::kFloat));
  }
  return tensors;
}

}  // namespace vidgen::demo
