// Attention inside a transformer block: the one place where a split sequence talks. Without a sequence group of
// more than one rank it is a local call; with one, Ulysses, ring or both (USP) over the layout's world.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/dit/layout.h"

namespace vidgen::dit {

// Self-attention of the shard's tokens q, k, v [B, chunk, H, d]: keys past each sample's real tokens are masked.
at::Tensor SelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const TokenLayout& layout);

// Joint image-text attention (models.md D.7, HunyuanVideo's varlen segments): the shard's image tokens and each
// sample's first text_valid[b] text tokens attend to each other; the padded text tokens only among themselves.
// image and text: {q, k, v}, each [B, L, H, d]; the text is the same on every rank. -> the image's and the text's
// outputs.
std::pair<at::Tensor, at::Tensor> JointAttention(const std::array<at::Tensor, 3>& image,
                                                 const std::array<at::Tensor, 3>& text, const TokenLayout& layout,
                                                 const std::vector<std::int64_t>& text_valid);

}  // namespace vidgen::dit
