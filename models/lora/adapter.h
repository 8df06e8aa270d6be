// LoRA adapters and full-weight deltas for a transformer, in the formats people publish, added to its weights for a
// job and taken off again exactly:
//   PEFT / diffusers  <module>.lora_A.weight [r, in], <module>.lora_B.weight [out, r], optional <module>.alpha
//   kohya / ComfyUI   <module>.lora_down.weight, <module>.lora_up.weight, <module>.alpha; modules often spelled
//                     with '_' for '.' after a lora_unet_ / lora_transformer_ prefix
//   deltas            <module>.diff (the weight's shape), <module>.diff_b (the bias's)
// with or without the prefixes trainers add (base_model.model., diffusion_model., transformer., model.), the module
// named as the model names it or as another layout does (the diffusers names, through a key map).
#pragma once

#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "models/io/weight_store.h"

namespace vidgen::lora {

// What an adapter changes in one parameter: ΔW = (alpha / rank) · up @ down for a low-rank pair (alpha 0: the
// rank, so a scale of 1), or `diff`.
struct ParameterUpdate {
  at::Tensor down, up;
  double alpha = 0;
  at::Tensor diff;
  // ΔW in fp32, shaped as the parameter.
  at::Tensor Delta(at::IntArrayRef shape) const;
};

struct Adapter {
  std::string source;
  std::map<std::string, ParameterUpdate> updates;  // by the module's parameter name ("blocks.0.self_attn.q.weight")
  std::map<std::string, std::string> metadata;     // the safetensors header's (trainers' notes, "vidgen_defaults")
};

// Reads an adapter for `module`, whose other layout's names `aliases` maps onto the module's (released names:
// empty): a safetensors file, or a PEFT folder (adapter_model.safetensors, and adapter_config.json whose
// lora_alpha applies to the pairs without an alpha of their own). Throws Error(INVALID_ARGUMENT) naming every key
// that names no parameter, has no partner (down without up), or whose shapes do not fit the parameter.
Adapter ReadAdapter(const std::string& path, const torch::nn::Module& module, const io::KeyMap& aliases);

// Adapters (not owned) and their scales, stacked in order.
using AdapterSet = std::vector<std::pair<const Adapter*, double>>;

// Σ scale·ΔW over the adapters, per parameter they change: fp32, shaped as the parameter.
std::map<std::string, at::Tensor> SummedDeltas(const torch::nn::Module& module,
                                               std::span<const std::pair<const Adapter*, double>> adapters);

// Adds scale·ΔW of each adapter to `module`'s parameters, in their dtype and on their device, stacked in order;
// Restore() (or the destructor) puts the exact previous values back.
class AppliedAdapters {
 public:
  AppliedAdapters(torch::nn::Module& module, std::span<const std::pair<const Adapter*, double>> adapters);
  ~AppliedAdapters() { Restore(); }
  AppliedAdapters(const AppliedAdapters&) = delete;
  AppliedAdapters& operator=(const AppliedAdapters&) = delete;
  void Restore();

 private:
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // a parameter and its values before, on the host
};

}  // namespace vidgen::lora
