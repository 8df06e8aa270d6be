// LoRA training: a frozen module's Linears each take a trainable low-rank pair, W + (alpha / rank)·B·A, with A drawn
// small and B zero (so training starts at the base model), and the pairs are written as a PEFT adapter that
// models/lora reads back like any published one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "models/io/tensor_file.h"

namespace vidgen::demo {

struct LowRankOptions {
  std::int64_t rank = 8;
  double alpha = 8;
  std::uint64_t seed = 0;
  // Which Linears (by module path, "blocks.0.self_attn.q") take a pair; all when empty.
  std::function<bool(const std::string&)> select{};
};

class LowRankAdapters {
 public:
  // Freezes `module` (no gradient to its parameters) and attaches a pair to each selected Linear.
  LowRankAdapters(torch::nn::Module& module, const LowRankOptions& options);
  ~LowRankAdapters() { Detach(); }
  LowRankAdapters(const LowRankAdapters&) = delete;
  LowRankAdapters& operator=(const LowRankAdapters&) = delete;

  // The trainable A and B of every pair.
  std::vector<at::Tensor> parameters() const;
  // Before each forward: every Linear computes with W + (alpha / rank)·B·A, in the autograd graph of A and B.
  void Attach();
  // Every Linear back on its own weight.
  void Detach();
  // The adapter in PEFT's names: <path>.lora_A.weight [rank, in], <path>.lora_B.weight [out, rank], <path>.alpha.
  io::NamedTensors Export() const;

 private:
  struct Pair {
    torch::nn::Linear linear{nullptr};
    at::Tensor base, down, up;  // base: the Linear's own weight parameter
  };
  std::map<std::string, Pair> pairs_;
  double scale_;
  double alpha_;
};

}  // namespace vidgen::demo
