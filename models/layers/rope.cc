#include "models/layers/rope.h"

#include <torch/torch.h>

namespace vidgen::layers {

at::Tensor GridRopeAngles(const std::array<std::int64_t, 3>& grid, const std::array<std::int64_t, 3>& pairs,
                          double theta) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  std::vector<torch::Tensor> axes;
  for (int axis = 0; axis < 3; ++axis) {
    const auto inverse = 1.0 / torch::pow(theta, torch::arange(pairs[axis], f64).mul(2).div(2 * pairs[axis]));
    const auto angles = torch::outer(torch::arange(grid[axis], f64), inverse);  // [grid[axis], pairs[axis]]
    std::vector<std::int64_t> view = {1, 1, 1, pairs[axis]};
    view[axis] = grid[axis];
    axes.push_back(angles.view(view).expand({grid[0], grid[1], grid[2], pairs[axis]}));
  }
  return torch::cat(axes, -1).reshape({grid[0] * grid[1] * grid[2], -1});
}

at::Tensor ApplyRopeFp64(const at::Tensor& x, const at::Tensor& angles) {
  TORCH_CHECK(x.dim() == 3 && angles.dim() == 2 && x.size(0) == angles.size(0) && x.size(2) == 2 * angles.size(1),
              "ApplyRopeFp64 expects x [L, H, D] and angles [L, D/2], got ", x.sizes(), " and ", angles.sizes());
  const auto pairs = x.to(torch::kFloat64).unflatten(-1, {-1, 2});  // [L, H, D/2, 2]
  const auto re = pairs.select(-1, 0);
  const auto im = pairs.select(-1, 1);
  const auto cos = torch::cos(angles).unsqueeze(1);
  const auto sin = torch::sin(angles).unsqueeze(1);
  return torch::stack({re * cos - im * sin, re * sin + im * cos}, -1).flatten(-2).to(torch::kFloat);
}

}  // namespace vidgen::layers
