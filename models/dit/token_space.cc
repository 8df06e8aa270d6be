#include "models/dit/token_space.h"

#include <algorithm>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/error.h"
#include "parallel/world.h"

namespace vidgen::dit {

Grid TokenSpace::GridOf(const at::Tensor& latents) const {
  const auto& p = patch_;
  if (latents.dim() != 4 || latents.size(0) != channels_ || latents.size(1) % p[0] || latents.size(2) % p[1] ||
      latents.size(3) % p[2]) {
    Fail(ErrorCode::kInvalidArgument, "the transformer expects latents [{}, T, H, W] divisible by the patch {}, got [{}]",
         channels_, fmt::join(p, "×"), fmt::join(latents.sizes(), ", "));
  }
  return {latents.size(1) / p[0], latents.size(2) / p[1], latents.size(3) / p[2]};
}

at::Tensor TokenSpace::Patchify(const at::Tensor& latents) const {
  const auto [t, h, w] = GridOf(latents);
  const auto& p = patch_;
  return latents.reshape({latents.size(0), t, p[0], h, p[1], w, p[2]})
      .permute({1, 3, 5, 0, 2, 4, 6})
      .reshape({t * h * w, -1});
}

at::Tensor TokenSpace::Unpatchify(const at::Tensor& tokens, const Grid& grid) const {
  const auto [t, h, w] = grid;
  const auto& p = patch_;
  return tokens.slice(0, 0, t * h * w)
      .reshape({t, h, w, -1, p[0], p[1], p[2]})
      .permute({3, 0, 4, 1, 5, 2, 6})
      .reshape({-1, t * p[0], h * p[1], w * p[2]});
}

Shard Shard::Of(std::int64_t length, parallel::World* world) {
  const int parts = world ? world->sequence().size() : 1;
  Shard shard;
  shard.length = length;
  shard.chunk = (length + parts - 1) / parts;
  shard.offset = (world ? world->sequence().rank() : 0) * shard.chunk;
  shard.world = world;
  return shard;
}

at::Tensor Shard::Take(const at::Tensor& tokens) const {
  const int parts = world ? world->sequence().size() : 1;
  const auto padded = torch::constant_pad_nd(tokens, {0, 0, 0, chunk * parts - tokens.size(0)});
  return padded.slice(0, offset, offset + chunk).contiguous();
}

at::Tensor Shard::Gather(const at::Tensor& rows) const {
  return world ? world->sequence().AllGather(rows).flatten(0, 1) : rows;
}

std::int64_t Shard::RealRows(std::int64_t real) const {
  return std::clamp<std::int64_t>(real - offset, 0, chunk);
}

}  // namespace vidgen::dit
