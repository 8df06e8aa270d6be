#include "models/dit/layout.h"

#include <torch/torch.h>

#include "parallel/world.h"

namespace vidgen::dit {

parallel::World* TokenLayout::split_world() const {
  return shard.world && shard.world->sequence().size() > 1 ? shard.world : nullptr;
}

TokenLayout TokenLayout::Make(const Shard& shard, std::span<const Grid> grids, const RopeOptions& rope,
                              const c10::Device& device) {
  TokenLayout layout;
  layout.shard = shard;
  std::vector<at::Tensor> cos, sin;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    const auto& grid = grids[i];
    layout.lengths.push_back(grid[0] * grid[1] * grid[2]);
    if (i > 0 && grid == grids[0]) {  // one table for the samples of one grid
      cos.push_back(cos.front());
      sin.push_back(sin.front());
      continue;
    }
    const auto rows =
        RopeTable::ForGrid(grid, rope.pairs, rope.theta, rope.dtype).Rows(shard, layout.lengths.back(), device);
    cos.push_back(rows.cos);
    sin.push_back(rows.sin);
  }
  layout.rope_cos = torch::stack(cos);
  layout.rope_sin = torch::stack(sin);
  const auto positions = torch::arange(shard.offset, shard.offset + shard.chunk).view({1, -1});
  layout.real = (positions < torch::tensor(layout.lengths).view({-1, 1})).unsqueeze(-1).to(torch::kFloat).to(device);
  return layout;
}

}  // namespace vidgen::dit
