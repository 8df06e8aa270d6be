#include "parallel/attention.h"

#include <optional>

#include <torch/torch.h>

#include "common/error.h"
#include "models/layers/attention.h"
#include "parallel/world.h"

namespace vidgen::parallel {
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
  auto merge = [&](const at::Tensor& keys, const at::Tensor& values, const layers::AttentionOptions& options) {
    at::Tensor block_lse;
    const auto block_out = layers::Attention(queries, keys, values, options, &block_lse);
    if (!out.defined()) {
      out = block_out;
      lse = block_lse;
    } else {
      MergeAttention(out, lse, block_out, block_lse);
    }
  };
  if (text) {
    layers::AttentionOptions options;
    options.key_lengths = text->valid_lengths;
    merge(head_slice(text->k).to(q.scalar_type()), head_slice(text->v).to(q.scalar_type()), options);
  }
  for (int step = 0; step < ring.size(); ++step) {
    const int owner = (ring.rank() - step + ring.size()) % ring.size();
    // The next block travels while this one is attended to.
    std::optional<Group::Shift> next;
    if (step + 1 < ring.size()) next.emplace(ring.StartRingShift(kv));
    layers::AttentionOptions options;
    options.key_lengths = valid_lengths;
    options.key_offset = owner * block_len;
    merge(kv[0], kv[1], options);
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
