// Exact softmax attention, the one local attention call of every model (sequence parallelism wraps it).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vidgen::layers {

struct AttentionOptions {
  // Per sample, how many leading keys of the whole sequence are real; later keys are masked out. Empty: every key
  // is real.
  std::vector<std::int64_t> key_lengths;
  // The position in the whole sequence of k's first key, when k is one block of it (ring attention).
  std::int64_t key_offset = 0;
  // Query i sees keys 0..i only (a decoder; queries and keys are the same positions).
  bool causal = false;
  // Softmax scale; 0 means 1/sqrt(head_dim).
  double scale = 0;
};

// q: [B, Lq, H, D], k and v: [B, Lk, H, D] -> [B, Lq, H, D] in q's dtype. Products in the inputs' dtype, the
// softmax in fp32; a query whose keys are all masked gets 0. With `lse`, also the log-sum-exp of each query's
// scores [B, H, Lq] fp32 (−inf where every key was masked), for merging results over key blocks; the output is
// then fp32. With LibTorch ≥ 2.3 it runs LibTorch's fused kernels (on CUDA flash or memory-efficient attention,
// on the CPU the flash kernel), the log-sum-exp included; with older ones exact attention over blocks of queries,
// so the score matrix never exceeds a fixed budget however long the sequence.
at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const AttentionOptions& options = {}, at::Tensor* lse = nullptr);

// The most bytes one call's attention scores take at once however long the sequences, for memory estimates: a few
// budget-sized buffers of the blocked kernel; 0 (no bound) with the fused kernels, whose scratch grows with the
// rows, not with rows × keys.
std::int64_t ScoreBytesBound();

// The lengths of masks [B, L] that are a prefix of ones (text masks): key_lengths for Attention. Throws
// Error(INVALID_ARGUMENT) naming the row whose mask is not a prefix.
std::vector<std::int64_t> PrefixLengths(const at::Tensor& mask);

}  // namespace vidgen::layers
