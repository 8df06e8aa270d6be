#include "models/dit/rope.h"

#include <torch/torch.h>

namespace vidgen::dit {

RopeTable RopeTable::ForGrid(const Grid& grid, const std::array<std::int64_t, 3>& pairs, double theta,
                             c10::ScalarType dtype) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  std::vector<torch::Tensor> axes;
  for (int axis = 0; axis < 3; ++axis) {
    const auto inverse = 1.0 / torch::pow(theta, torch::arange(pairs[axis], f64).mul(2).div(2 * pairs[axis]));
    const auto angles = torch::outer(torch::arange(grid[axis], f64), inverse);  // [grid[axis], pairs[axis]]
    std::vector<std::int64_t> view = {1, 1, 1, pairs[axis]};
    view[axis] = grid[axis];
    axes.push_back(angles.view(view).expand({grid[0], grid[1], grid[2], pairs[axis]}));
  }
  const auto angles = torch::cat(axes, -1).reshape({grid[0] * grid[1] * grid[2], -1}).to(dtype).repeat_interleave(2, 1);
  return {angles.cos(), angles.sin()};
}

RopeTable RopeTable::Rows(const Shard& shard, std::int64_t real, const c10::Device& device) const {
  const std::int64_t rows = shard.RealRows(real);
  auto pad = [&](const at::Tensor& table, double fill) {
    return torch::cat({table.slice(0, shard.offset, shard.offset + rows),
                       torch::full({shard.chunk - rows, table.size(1)}, fill, table.options())})
        .to(device);
  };
  return {pad(cos, 1.0), pad(sin, 0.0)};
}

at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.size(-1) == x.size(3) && cos.size(-2) == x.size(1),
              "ApplyRope expects x [B, L, H, D] and tables [(B,) L, D], got ", x.sizes(), " and ", cos.sizes());
  const auto xs = x.to(cos.scalar_type());
  const auto pairs = xs.unflatten(-1, {-1, 2}).unbind(-1);
  const auto rotated = torch::stack({-pairs[1], pairs[0]}, -1).flatten(-2);
  // Tables [L, D] or [B, L, D] broadcast over the heads.
  const auto c = cos.dim() == 2 ? cos.view({1, cos.size(0), 1, -1}) : cos.unsqueeze(2);
  const auto s = sin.dim() == 2 ? sin.view({1, sin.size(0), 1, -1}) : sin.unsqueeze(2);
  return (xs * c + rotated * s).to(x.scalar_type());
}

}  // namespace vidgen::dit
