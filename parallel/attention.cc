#include "parallel/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <torch/torch.h>

#include "common/error.h"
#include "models/layers/attention.h"
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
    if (!all_valid) scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
    // The unnormalised weights exp(s − max) go into the product and the row sums divide its much smaller result;
    // lse = max + log(sum). A row whose keys are all masked gets max 0, sum 0: out 0, lse −inf.
    auto row_max = std::get<0>(scores.max(-1, /*keepdim=*/true));
    if (!all_valid) row_max.masked_fill_(row_max.isinf(), 0.0);
    scores.sub_(row_max).exp_();
    const auto row_sum = scores.sum(-1, /*keepdim=*/true);
    // Products in the inputs' dtype (bf16 in production), weights and merge in fp32.
    out.slice(2, start, end)
        .copy_(torch::matmul(scores.to(vh.scalar_type()), vh))
        .div_(row_sum.clamp_min(std::numeric_limits<float>::min()));
    lse.slice(2, start, end).copy_(row_sum.log_().add_(row_max).squeeze(-1));
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

// Ulysses back: scatter the sequence [B, U·chunk, H/U, D] to its owners, gather heads: [B, chunk, H, D].
at::Tensor UlyssesBack(Group& ulysses, const at::Tensor& out, std::int64_t batch, std::int64_t chunk) {
  const int u = ulysses.size();
  if (u == 1) return out;
  const std::int64_t heads = out.size(2) * u, head_dim = out.size(3);
  auto exchanged = ulysses.AllToAll(out.reshape({batch, u, chunk, heads / u, head_dim}).permute({1, 0, 2, 3, 4}));
  // [U, B, chunk, H/U, D]: member j's heads of this chunk
  return exchanged.permute({1, 2, 0, 3, 4}).reshape({batch, chunk, heads, head_dim});
}

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
  // q, k and v are written straight into the exchange layout [U, 3, B, chunk, H/U, D], one copy each.
  auto qkv = torch::empty({u, 3, batch, chunk, heads / u, head_dim}, q.options());
  for (const auto& [index, part] : {std::pair{0, q}, std::pair{1, k}, std::pair{2, v}}) {
    qkv.select(1, index).copy_(part.view({batch, chunk, u, heads / u, head_dim}).permute({2, 0, 1, 3, 4}));
  }
  if (u > 1) qkv = ulysses.AllToAll(qkv);  // [U, 3, B, chunk, H/U, D] from each member
  qkv = qkv.permute({1, 2, 0, 3, 4, 5}).reshape({3, batch, u * chunk, heads / u, head_dim});
  const std::int64_t block_len = u * chunk;

  // Ulysses alone sees the whole sequence: plain attention, no log-sum-exp to carry.
  if (ring.size() == 1 && !text) {
    layers::AttentionOptions options;
    options.key_lengths = valid_lengths;
    return {UlyssesBack(ulysses, layers::Attention(qkv[0], qkv[1], qkv[2], options), batch, chunk), {}};
  }

  auto queries = qkv[0];
  if (text) queries = torch::cat({queries, head_slice(text->q).to(q.scalar_type())}, 1);
  auto kv = qkv.slice(0, 1, 3);  // [2, B, U·chunk, H/U, D]: this rank's key block, passed around the ring

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
    // The next block travels while this one is attended to.
    std::optional<Group::Shift> next;
    if (step + 1 < ring.size()) next.emplace(ring.StartRingShift(kv));
    merge(AttentionWithLse(queries, kv[0], kv[1], owner * block_len, valid_lengths, scale));
    if (next) kv = next->Wait();
  }

  out = out.to(q.scalar_type());
  JointOutput result;
  result.image = UlyssesBack(ulysses, out.slice(1, 0, block_len), batch, chunk);
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
