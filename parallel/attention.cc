#include "parallel/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "common/error.h"
#include "parallel/world.h"

namespace vidgen::parallel {
namespace {

// Scores held at once: 2^24 fp32 values (64 MiB), as the local kernel.
constexpr std::int64_t kScoreBudget = std::int64_t{1} << 24;

}  // namespace

std::pair<at::Tensor, at::Tensor> AttentionWithLse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   std::int64_t key_offset,
                                                   const std::vector<std::int64_t>& valid_lengths, double scale) {
  const std::int64_t batch = q.size(0), lq = q.size(1), heads = q.size(2), lk = k.size(1);
  const auto qh = q.transpose(1, 2);        // [B, H, Lq, D]
  const auto kt = k.permute({0, 2, 3, 1});  // [B, H, D, Lk]
  const auto vh = v.transpose(1, 2);
  const auto positions = torch::arange(key_offset, key_offset + lk, torch::TensorOptions().device(q.device()));
  const auto lengths = torch::tensor(valid_lengths, torch::kLong).to(q.device()).view({-1, 1});
  const auto mask = (positions.view({1, -1}) >= lengths).view({batch, 1, 1, lk});
  // Blocks whose keys are all real (the common case) skip the masking passes.
  const bool all_valid = key_offset + lk <= *std::min_element(valid_lengths.begin(), valid_lengths.end());

  auto out = torch::empty({batch, heads, lq, v.size(3)}, q.options().dtype(torch::kFloat));
  auto lse = torch::empty({batch, heads, lq}, q.options().dtype(torch::kFloat));
  const std::int64_t block = std::max<std::int64_t>(1, kScoreBudget / std::max<std::int64_t>(1, batch * heads * lk));
  for (std::int64_t start = 0; start < lq; start += block) {
    const std::int64_t end = std::min(lq, start + block);
    auto scores = torch::matmul(qh.slice(2, start, end), kt).to(torch::kFloat).mul_(scale);
    at::Tensor block_lse, weights;
    if (all_valid) {
      block_lse = torch::logsumexp(scores, -1);
      weights = torch::softmax(scores, -1);
    } else {
      scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
      block_lse = torch::logsumexp(scores, -1);  // −inf where every key is masked
      const auto finite = torch::isfinite(block_lse).unsqueeze(-1);
      weights = torch::where(finite, torch::exp(scores - block_lse.unsqueeze(-1)), torch::zeros_like(scores));
    }
    // Products in the inputs' dtype (bf16 in production), softmax and merge in fp32.
    out.slice(2, start, end).copy_(torch::matmul(weights.to(vh.scalar_type()), vh));
    lse.slice(2, start, end).copy_(block_lse);
  }
  return {out.transpose(1, 2), lse};
}

void MergeAttention(at::Tensor& out, at::Tensor& lse, const at::Tensor& block_out, const at::Tensor& block_lse) {
  const auto merged = torch::logaddexp(lse, block_lse);
  const auto finite = torch::isfinite(merged);
  // Weights of the two parts, 0 where both are empty; [B, H, L] -> [B, L, H, 1] to scale out.
  auto weight = [&](const at::Tensor& part) {
    return torch::where(finite, torch::exp(part - merged), torch::zeros_like(merged)).transpose(1, 2).unsqueeze(-1);
  };
  out = out * weight(lse) + block_out * weight(block_lse);
  lse = torch::where(finite, merged, lse);
}

namespace {

// The shared body: image chunk (and optionally replicated text) through Ulysses, ring and the merge.
JointOutput Run(World& world, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const std::vector<std::int64_t>& valid_lengths, const JointText* text) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes(),
              "SequenceParallelAttention expects q, k, v [B, L/P, H, D] of one shape, got ", q.sizes(), ", ", k.sizes(),
              ", ", v.sizes());
  auto& ulysses = world.ulysses();
  auto& ring = world.ring();
  const std::int64_t batch = q.size(0), chunk = q.size(1), heads = q.size(2), head_dim = q.size(3);
  const int u = ulysses.size();
  if (heads % u != 0) {
    Fail(ErrorCode::kInvalidArgument, "{} attention heads do not divide by the Ulysses degree {}", heads, u);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  // This rank's head slice of a replicated [B, L, H, D] tensor.
  auto head_slice = [&](const at::Tensor& t) {
    return t.view({t.size(0), t.size(1), u, heads / u, head_dim}).select(2, ulysses.rank());
  };

  // Ulysses: scatter heads, gather the group's chunks (in member order) along the sequence: [B, U·chunk, H/U, D].
  auto qkv = torch::stack({q, k, v.to(q.scalar_type())});  // [3, B, chunk, H, D]
  if (u > 1) {
    qkv = qkv.view({3, batch, chunk, u, heads / u, head_dim}).permute({3, 0, 1, 2, 4, 5}).contiguous();
    qkv = ulysses.AllToAll(qkv);  // [U, 3, B, chunk, H/U, D] from each member
    qkv = qkv.permute({1, 2, 0, 3, 4, 5}).reshape({3, batch, u * chunk, heads / u, head_dim});
  }
  const std::int64_t block_len = u * chunk;
  auto queries = qkv[0];
  if (text) queries = torch::cat({queries, head_slice(text->q).to(q.scalar_type())}, 1);
  auto kv = torch::stack({qkv[1], qkv[2]});  // [2, B, U·chunk, H/U, D]: this rank's key block, passed around the ring

  // Ring: attend to every ring member's key block (and the text keys once), merging by log-sum-exp.
  at::Tensor out, lse;
  auto merge = [&](std::pair<at::Tensor, at::Tensor> part) {
    if (!out.defined()) {
      out = part.first;
      lse = part.second;
    } else {
      MergeAttention(out, lse, part.first, part.second);
    }
  };
  if (text) {
    merge(AttentionWithLse(queries, head_slice(text->k).to(q.scalar_type()), head_slice(text->v).to(q.scalar_type()), 0,
                           text->valid_lengths, scale));
  }
  for (int step = 0; step < ring.size(); ++step) {
    const int owner = (ring.rank() - step + ring.size()) % ring.size();
    merge(AttentionWithLse(queries, kv[0], kv[1], owner * block_len, valid_lengths, scale));
    if (step + 1 < ring.size()) kv = ring.RingShift(kv);
  }

  // Ulysses back: scatter the sequence to its owners, gather heads: [B, chunk, H, D].
  out = out.to(q.scalar_type());
  JointOutput result;
  result.image = out.slice(1, 0, block_len);
  if (u > 1) {
    result.image = result.image.reshape({batch, u, chunk, heads / u, head_dim}).permute({1, 0, 2, 3, 4}).contiguous();
    result.image = ulysses.AllToAll(result.image);  // [U, B, chunk, H/U, D]: member j's heads of this chunk
    result.image = result.image.permute({1, 2, 0, 3, 4}).reshape({batch, chunk, heads, head_dim});
  }
  if (text) {
    // Every rank computed the text rows of its own head slice: gather the heads.
    const auto text_out = out.slice(1, block_len).contiguous();
    result.text =
        u > 1 ? ulysses.AllGather(text_out).permute({1, 2, 0, 3, 4}).reshape({batch, -1, heads, head_dim}) : text_out;
  }
  return result;
}

}  // namespace

at::Tensor SequenceParallelAttention(World& world, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const std::vector<std::int64_t>& valid_lengths) {
  return Run(world, q, k, v, valid_lengths, nullptr).image;
}

JointOutput SequenceParallelJointAttention(World& world, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const std::vector<std::int64_t>& valid_lengths, const JointText& text) {
  return Run(world, q, k, v, valid_lengths, &text);
}

}  // namespace vidgen::parallel
