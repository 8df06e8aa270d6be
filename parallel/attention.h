// Attention over a sequence split across the sequence group: Ulysses (all-to-all from sequence to head shards and
// back), ring (K/V blocks passed around the ring, partial results merged by log-sum-exp), or both (USP).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vidgen::parallel {

class World;

// Merges the partial results of two disjoint key blocks, in place into (out, lse), stably.
void MergeAttention(at::Tensor& out, at::Tensor& lse, const at::Tensor& block_out, const at::Tensor& block_lse);

// q, k, v: this rank's chunk [B, L/P, H, D] of a sequence of L tokens split in rank order over the sequence group
// (P = ring × Ulysses ranks; the caller pads L to a multiple of P). Keys at or past `valid_lengths[b]` (global
// positions) are never attended to. Returns this rank's chunk of the output, in q's dtype. Throws
// Error(INVALID_ARGUMENT) when the heads do not divide by the Ulysses degree.
at::Tensor SequenceParallelAttention(World& world, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const std::vector<std::int64_t>& valid_lengths);

// Joint attention as in HunyuanVideo's blocks ("text replica", models.md D.7 and xDiT's USP): the text tokens are
// the same on every rank; image and text queries attend to all real image and text keys.
struct JointText {
  at::Tensor q, k, v;                       // [B, Lt, H, D], replicated on every rank
  std::vector<std::int64_t> valid_lengths;  // text keys at or past these positions are masked
};
struct JointOutput {
  at::Tensor image;  // this rank's chunk [B, L/P, H, D]
  at::Tensor text;   // [B, Lt, H, D], the same on every rank
};
// Each rank takes its Ulysses head slice of the text locally (no exchange), appends the text queries to its image
// queries, and merges the text keys exactly once into the ring's log-sum-exp; the text output is gathered over the
// Ulysses group. Padded text queries attend to the real keys like any other (HunyuanVideo lets them attend only
// among themselves; their outputs are discarded either way).
JointOutput SequenceParallelJointAttention(World& world, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const std::vector<std::int64_t>& valid_lengths, const JointText& text);

}  // namespace vidgen::parallel
