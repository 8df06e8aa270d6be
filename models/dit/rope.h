// Rotary position embedding over a (t, h, w) token grid, interleaved pairs (2i, 2i+1) as both families use it: the
// tables are built once per generation for this process's rows and applied in the precision each reference uses
// (Wan: float64, HunyuanVideo: fp32).
#pragma once

#include <array>
#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "models/dit/token_space.h"

namespace vidgen::dit {

struct RopeTable {
  at::Tensor cos, sin;  // [rows, head_dim], each angle repeated for its pair

  // The tables of a whole grid in row-major (t, h, w) order: the first pairs[0] pairs of a head turn with the frame,
  // the next pairs[1] with the row, the last pairs[2] with the column; pair j of an axis with n pairs turns at
  // position p by p·theta^(-j/n). Angles in float64, then cos and sin in `dtype`.
  static RopeTable ForGrid(const Grid& grid, const std::array<std::int64_t, 3>& pairs, double theta,
                           c10::ScalarType dtype);
  // This shard's rows of a sample of `real` tokens: the rows past them (padding) turn by nothing.
  RopeTable Rows(const Shard& shard, std::int64_t real, const c10::Device& device) const;
};

// x·cos + pair_rotate(x)·sin, pair_rotate turning (a, b) into (−b, a), computed in the table's dtype:
// x [B, L, H, D] with tables [L, D] or [B, L, D] -> x's dtype.
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace vidgen::dit
