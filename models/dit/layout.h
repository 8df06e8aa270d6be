// Where the tokens of each sample sit in one forward: this process's shard, how many of each sample's tokens are
// real, and their rotary tables for the shard's rows. Built once per generation, not per step or per block.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "models/dit/rope.h"
#include "models/dit/token_space.h"

namespace vidgen::dit {

struct RopeOptions {
  std::array<std::int64_t, 3> pairs{};  // of a head's pairs, how many turn with the frame, the row, the column
  double theta = 10000.0;
  c10::ScalarType dtype = c10::kDouble;  // of the tables and the rotation
};

struct TokenLayout {
  Shard shard;
  std::vector<std::int64_t> lengths;  // real tokens per sample; rows past them are padding
  at::Tensor rope_cos, rope_sin;      // [B, chunk, head_dim]: rows past a sample's tokens turn by nothing
  at::Tensor real;                    // [B, chunk, 1] fp32: 1 on a sample's tokens, 0 on the padding past them

  // The sequence group that attention splits over, when there is one of more than one rank.
  parallel::World* split_world() const;

  static TokenLayout Make(const Shard& shard, std::span<const Grid> grids, const RopeOptions& rope,
                          const c10::Device& device);
};

}  // namespace vidgen::dit
