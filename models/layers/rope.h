// Rotary position embedding over a (t, h, w) token grid, with interleaved pairs (2i, 2i+1) as in Wan and
// HunyuanVideo.
#pragma once

#include <array>
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace vidgen::layers {

// Rotation angles for the tokens of a grid in row-major (t, h, w) order: [t·h·w, Σ pairs] float64. The first
// pairs[0] pairs rotate with the frame index, the next pairs[1] with the row, the last pairs[2] with the column;
// pair j of an axis with n pairs turns at position p by p·theta^(-j/n).
at::Tensor GridRopeAngles(const std::array<std::int64_t, 3>& grid, const std::array<std::int64_t, 3>& pairs,
                          double theta);

// Rotates the interleaved pairs of x: [L, H, D] by angles [L, D/2] (the same for every head), computing in float64
// and returning fp32.
at::Tensor ApplyRopeFp64(const at::Tensor& x, const at::Tensor& angles);

}  // namespace vidgen::layers
