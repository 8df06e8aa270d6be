#include "models/lora/merged_sets.h"

#include <algorithm>

#include <torch/torch.h>

namespace vidgen::lora {

MergedSets::MergedSets(torch::nn::Module& module, std::size_t capacity) : module_(module), capacity_(capacity) {}

void MergedSets::RestoreBase() {
  if (current_.empty()) return;
  torch::NoGradGuard no_grad;
  auto parameters = module_.named_parameters();
  for (const auto& name : changed_) parameters[name].copy_(base_.at(name));
  current_.clear();
  changed_.clear();
}

MergedSets::Merged MergedSets::Merge(const AdapterSet& set) {
  // Summed in fp32 per parameter, then one rounding to the parameter's dtype.
  const auto deltas = SummedDeltas(module_, set);
  auto parameters = module_.named_parameters();
  Merged merged{set, {}};
  try {
    for (const auto& [name, delta] : deltas) {
      auto& parameter = parameters[name];
      if (!base_.contains(name)) base_.emplace(name, parameter.detach().to(torch::kCPU, false, /*copy=*/true));
      parameter.copy_((parameter.to(torch::kFloat) + delta.to(parameter.device())).to(parameter.scalar_type()));
      changed_.push_back(name);
      if (capacity_ > 0) merged.values.emplace(name, parameter.detach().to(torch::kCPU, false, /*copy=*/true));
    }
  } catch (...) {
    for (const auto& [name, delta] : deltas) {
      if (base_.contains(name)) parameters[name].copy_(base_.at(name));
    }
    changed_.clear();
    throw;
  }
  ++merges_;
  return merged;
}

void MergedSets::Use(const AdapterSet& set) {
  if (set == current_) return;
  RestoreBase();
  if (set.empty()) return;
  torch::NoGradGuard no_grad;
  auto parameters = module_.named_parameters();
  auto kept = std::find_if(kept_.begin(), kept_.end(), [&](const Merged& merged) { return merged.set == set; });
  if (kept == kept_.end()) {
    auto merged = Merge(set);
    if (capacity_ > 0) kept_.push_front(std::move(merged));
  } else {
    kept_.splice(kept_.begin(), kept_, kept);
    for (const auto& [name, values] : kept_.front().values) {
      parameters[name].copy_(values);
      changed_.push_back(name);
    }
  }
  current_ = set;
  while (kept_.size() > capacity_ + 1) kept_.pop_back();
}

std::int64_t MergedSets::kept_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& merged : kept_) {
    for (const auto& [name, values] : merged.values) bytes += values.numel() * values.element_size();
  }
  return bytes;
}

}  // namespace vidgen::lora
