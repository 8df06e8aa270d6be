// The token space both families' transformers work in. Latents [C, T, H, W] become tokens [t·h·w, C·Πpatch] in
// (t, h, w) order, each token's values in (c, pt, ph, pw) order: the patch embedding is then one matrix product
// per token, and every sampler update, being element-wise, can run on any chunk of tokens. Under sequence
// parallelism each process keeps one chunk of the (padded) sequence from the first step to the last.
#pragma once

#include <array>
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace vidgen::parallel {
class World;
}

namespace vidgen::dit {

using Grid = std::array<std::int64_t, 3>;  // tokens along (t, h, w)

class TokenSpace {
 public:
  TokenSpace(std::int64_t channels, std::array<std::int64_t, 3> patch) : channels_(channels), patch_(patch) {}

  // Throws Error(INVALID_ARGUMENT) unless latents are [channels, T, H, W] divisible by the patch.
  Grid GridOf(const at::Tensor& latents) const;
  at::Tensor Patchify(const at::Tensor& latents) const;  // -> [t·h·w, channels·Πpatch]
  // tokens [≥ t·h·w, W·Πpatch] (padding rows past the grid ignored) -> [W, T, H, W]
  at::Tensor Unpatchify(const at::Tensor& tokens, const Grid& grid) const;
  std::int64_t patch_volume() const { return patch_[0] * patch_[1] * patch_[2]; }

 private:
  std::int64_t channels_;
  std::array<std::int64_t, 3> patch_;
};

// This process's share of a sequence of `length` tokens: padded to a multiple of the sequence group's size and cut
// into equal chunks, the group's rank r holding [r·chunk, (r+1)·chunk).
struct Shard {
  std::int64_t length = 0, chunk = 0, offset = 0;
  parallel::World* world = nullptr;

  static Shard Of(std::int64_t length, parallel::World* world);
  at::Tensor Take(const at::Tensor& tokens) const;    // [length, W] -> this chunk [chunk, W]
  at::Tensor Gather(const at::Tensor& chunk) const;   // this chunk [chunk, W] -> every chunk [parts·chunk, W]
  // How many of this chunk's rows are real tokens of a sample of `real` tokens.
  std::int64_t RealRows(std::int64_t real) const;
};

}  // namespace vidgen::dit
