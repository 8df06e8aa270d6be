#include "models/lora/adapter.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <set>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/io/tensor_file.h"

namespace vidgen::lora {
namespace {

enum class Part { kDown, kUp, kAlpha, kDiff, kDiffBias };

// Longest first where one ends another (".lora_A.default.weight" before ".lora_A.weight", ".diff_b" before ".diff").
constexpr std::array<std::pair<std::string_view, Part>, 9> kSuffixes = {{
    {".lora_A.default.weight", Part::kDown},
    {".lora_B.default.weight", Part::kUp},
    {".lora_A.weight", Part::kDown},
    {".lora_B.weight", Part::kUp},
    {".lora_down.weight", Part::kDown},
    {".lora_up.weight", Part::kUp},
    {".alpha", Part::kAlpha},
    {".diff_b", Part::kDiffBias},
    {".diff", Part::kDiff},
}};
constexpr std::array<std::string_view, 6> kPrefixes = {
    "base_model.model.", "diffusion_model.", "transformer.", "model.", "lora_unet_", "lora_transformer_"};

std::string Underscored(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

// Every way an adapter may name one of the module's parameters (module path in its own names or the aliases',
// dotted or underscored; the leaf always dotted) -> the parameter's name. Spellings two parameters share are dropped.
std::map<std::string, std::string> ParameterSpellings(const torch::nn::Module& module, const io::KeyMap& aliases) {
  const auto to_alias = io::InverseKeyMap(aliases);
  std::map<std::string, std::string> spellings;
  std::set<std::string> shared;
  for (const auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    for (const auto& spelled : {name, io::ApplyKeyMap(to_alias, name)}) {
      const auto dot = spelled.rfind('.');
      const auto path = dot == std::string::npos ? std::string() : spelled.substr(0, dot);
      const auto leaf = spelled.substr(dot == std::string::npos ? 0 : dot);
      for (const auto& candidate : {spelled, Underscored(path) + leaf, Underscored(spelled)}) {
        const auto [it, added] = spellings.emplace(candidate, name);
        if (!added && it->second != name) shared.insert(candidate);
      }
    }
  }
  for (const auto& candidate : shared) spellings.erase(candidate);
  return spellings;
}

std::string_view StripPrefixes(std::string_view key) {
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (const auto prefix : kPrefixes) {
      if (key.starts_with(prefix)) {
        key.remove_prefix(prefix.size());
        stripped = true;
      }
    }
  }
  return key;
}

}  // namespace

at::Tensor ParameterUpdate::Delta(at::IntArrayRef shape) const {
  if (diff.defined()) return diff.to(torch::kFloat).reshape(shape);
  const auto rank = down.size(0);
  const double scale = alpha > 0 ? alpha / static_cast<double>(rank) : 1.0;
  return torch::matmul(up.to(torch::kFloat).flatten(1), down.to(torch::kFloat).flatten(1)).mul_(scale).reshape(shape);
}

Adapter ReadAdapter(const std::string& path, const torch::nn::Module& module, const io::KeyMap& aliases) {
  io::WeightStore file;
  double default_alpha = 0;
  std::string tensors = path;
  if (std::filesystem::is_directory(path)) {
    tensors = (std::filesystem::path(path) / "adapter_model.safetensors").string();
    const auto config = std::filesystem::path(path) / "adapter_config.json";
    if (std::filesystem::exists(config))
      io::JsonConfig(config.string(), "PEFT adapter config").Read("lora_alpha", default_alpha);
  }
  file.AddFile(tensors);
  const auto spellings = ParameterSpellings(module, aliases);
  const auto parameters = module.named_parameters();
  auto find = [&](const std::string& spelled) -> const std::string* {
    const auto it = spellings.find(spelled);
    return it == spellings.end() ? nullptr : &it->second;
  };

  Adapter adapter;
  adapter.source = path;
  if (tensors.ends_with(".safetensors")) adapter.metadata = io::SafetensorsFile(tensors).metadata();
  std::vector<std::string> bad;
  std::map<std::string, std::vector<std::string>> keys_of;  // parameter -> the adapter's keys for it
  for (const auto& key : file.Names()) {
    const auto stripped = StripPrefixes(key);
    const auto suffix =
        std::find_if(kSuffixes.begin(), kSuffixes.end(), [&](const auto& s) { return stripped.ends_with(s.first); });
    if (suffix == kSuffixes.end()) {
      bad.push_back(fmt::format("{} (not a LoRA or delta key)", key));
      continue;
    }
    const std::string module_path(stripped.substr(0, stripped.size() - suffix->first.size()));
    const auto part = suffix->second;
    const std::string* parameter = find(module_path + (part == Part::kDiffBias ? ".bias" : ".weight"));
    if (!parameter && part == Part::kDiff) parameter = find(module_path);  // a delta of a parameter itself
    if (!parameter) {
      bad.push_back(fmt::format("{} (names no parameter of the model)", key));
      continue;
    }
    const auto& target = *parameter;
    auto [it, added] = adapter.updates.try_emplace(target);
    auto& update = it->second;
    if (added) update.alpha = default_alpha;
    keys_of[target].push_back(key);
    const auto& tensor = file.Get(key);
    switch (part) {
      case Part::kDown: update.down = tensor; break;
      case Part::kUp: update.up = tensor; break;
      case Part::kAlpha:
        if (tensor.numel() != 1) {
          bad.push_back(fmt::format("{} (alpha has {} values)", key, tensor.numel()));
          continue;
        }
        update.alpha = tensor.to(torch::kDouble).item<double>();
        break;
      case Part::kDiff:
      case Part::kDiffBias: update.diff = tensor; break;
    }
  }

  for (const auto& [name, update] : adapter.updates) {
    const auto& parameter = parameters[name];
    const auto keys = fmt::format("{}", fmt::join(keys_of[name], ", "));
    if (update.diff.defined()) {
      if (update.down.defined() || update.up.defined() || update.diff.sizes() != parameter.sizes()) {
        bad.push_back(fmt::format("{} (a delta [{}] for {} [{}])", keys, fmt::join(update.diff.sizes(), ", "), name,
                                  fmt::join(parameter.sizes(), ", ")));
      }
      continue;
    }
    if (!update.down.defined() || !update.up.defined()) {
      bad.push_back(fmt::format("{} (no {} half)", keys, update.down.defined() ? "up / lora_B" : "down / lora_A"));
      continue;
    }
    const bool fits = parameter.dim() >= 2 && update.up.dim() >= 2 && update.down.dim() >= 2 &&
                      update.up.size(0) == parameter.size(0) && update.up.flatten(1).size(1) == update.down.size(0) &&
                      update.down.flatten(1).size(1) == parameter.numel() / parameter.size(0) && update.alpha >= 0;
    if (!fits) {
      bad.push_back(fmt::format("{} (up [{}] × down [{}] do not make {} [{}])", keys,
                                fmt::join(update.up.sizes(), ", "), fmt::join(update.down.sizes(), ", "), name,
                                fmt::join(parameter.sizes(), ", ")));
    }
  }
  if (!bad.empty()) {
    std::sort(bad.begin(), bad.end());
    Fail(ErrorCode::kInvalidArgument, "LoRA '{}' does not fit this model, {} problem(s): {}", path, bad.size(),
         fmt::join(bad, "; "));
  }
  return adapter;
}

std::map<std::string, at::Tensor> SummedDeltas(const torch::nn::Module& module,
                                               std::span<const std::pair<const Adapter*, double>> adapters) {
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> deltas;
  const auto parameters = module.named_parameters();
  for (const auto& [adapter, scale] : adapters) {
    for (const auto& [name, update] : adapter->updates) {
      auto delta = update.Delta(parameters[name].sizes()).mul_(scale);
      auto [it, added] = deltas.emplace(name, delta);
      if (!added) it->second.add_(delta);
    }
  }
  return deltas;
}

AppliedAdapters::AppliedAdapters(torch::nn::Module& module,
                                 std::span<const std::pair<const Adapter*, double>> adapters) {
  torch::NoGradGuard no_grad;
  // Summed in fp32 per parameter, then one rounding to the parameter's dtype.
  const auto deltas = SummedDeltas(module, adapters);
  auto parameters = module.named_parameters();
  try {
    for (const auto& [name, delta] : deltas) {
      auto& parameter = parameters[name];
      saved_.emplace_back(parameter, parameter.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
      parameter.copy_((parameter.to(torch::kFloat) + delta.to(parameter.device())).to(parameter.scalar_type()));
    }
  } catch (...) {
    Restore();  // no destructor runs for a constructor that throws: leave the base weights as they were
    throw;
  }
}

void AppliedAdapters::Restore() {
  torch::NoGradGuard no_grad;
  for (auto& [parameter, original] : saved_) parameter.copy_(original);
  saved_.clear();
}

}  // namespace vidgen::lora
