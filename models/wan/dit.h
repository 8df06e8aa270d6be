// The Wan2.1 diffusion transformer (models.md A): T2V, and the image cross-attention of I2V/FLF2V checkpoints,
// over the shared token space and layers (models/dit). Module and parameter names are the released checkpoint's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cache/feature_cache.h"
#include "models/dit/denoise.h"
#include "models/dit/layers.h"
#include "models/dit/layout.h"
#include "models/dit/token_space.h"
#include "models/layers/layers.h"
#include "models/wan/config.h"

namespace vidgen::wan {

struct WanSelfAttentionImpl : torch::nn::Module {
  explicit WanSelfAttentionImpl(const WanDitConfig& config);
  at::Tensor forward(const at::Tensor& x, const dit::TokenLayout& layout);  // [B, chunk, dim] -> [B, chunk, dim]
  // q, k and v's weights and biases become views into one [3·dim, dim] matrix and [3·dim] bias on `device`, so
  // that one product gives the three at inference (training runs the three: autograd needs the parameters). Their
  // values are kept, and placeholders stay to be loaded: WeightStore::LoadInto writes into the views. Loading, LoRA
  // and restoring address them by name, in place; anything that gives one of them new storage (a cast, a move)
  // ends the fusion, and the three products run again.
  void FuseProjections(c10::Device device);
  bool fused() const;  // q, k and v view qkv_weight and qkv_bias
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  layers::RmsNorm norm_q{nullptr}, norm_k{nullptr};
  std::int64_t num_heads;
  at::Tensor qkv_weight, qkv_bias;  // what q, k and v view once fused
};
TORCH_MODULE(WanSelfAttention);

// What a block's cross-attention attends to: keys and values [B, tokens, heads, head_dim] of the text and, with
// image input, of the CLIP tokens. They depend only on the context, so a generation projects them once.
struct WanCrossKeysValues {
  at::Tensor keys, values, image_keys, image_values;
  // The rows of several, one after the other (the batched guidance passes).
  static WanCrossKeysValues Cat(const std::vector<const WanCrossKeysValues*>& rows);
};

// Text cross-attention (the self-attention's projections and q/k norms over another sequence); with image input
// also the attention to the CLIP tokens that lead the context.
struct WanCrossAttentionImpl : WanSelfAttentionImpl {
  explicit WanCrossAttentionImpl(const WanDitConfig& config);
  // context: [B, image_tokens + text_len, dim]
  WanCrossKeysValues KeysValues(const at::Tensor& context, std::int64_t image_tokens);
  // x: [B, L, dim] -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const WanCrossKeysValues& context);
  torch::nn::Linear k_img{nullptr}, v_img{nullptr};
  layers::RmsNorm norm_k_img{nullptr};
};
TORCH_MODULE(WanCrossAttention);

struct WanBlockImpl : torch::nn::Module {
  explicit WanBlockImpl(const WanDitConfig& config);
  // x: [B, L, dim] fp32, e0: [B, 6, dim] fp32 -> [B, L, dim] fp32. With a cache (a full step of a folded stack),
  // the self-attention's and the FFN's outputs go through it as gated branches: their gates are the modulation's
  // chunk plus e0's chunk 2 (kAttentionGate) or 5 (kFfnGate); the cross-attention's is 1.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& e0, const dit::TokenLayout& layout,
                     const WanCrossKeysValues& context, cache::FeatureCache::Forward* cache = nullptr);
  static constexpr int kAttentionGate = 0, kFfnGate = 1, kSharedGates = 2;
  WanSelfAttention self_attn{nullptr};
  layers::AffineLayerNorm norm3{nullptr};
  WanCrossAttention cross_attn{nullptr};
  dit::Mlp ffn{nullptr};
  at::Tensor modulation;  // [1, 6, dim]: shift, scale, gate of attention, then of the FFN
  double eps;
};
TORCH_MODULE(WanBlock);

struct WanHeadImpl : torch::nn::Module {
  explicit WanHeadImpl(const WanDitConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& e);  // x [B, L, dim], e [B, dim] -> [B, L, out·Πpatch]
  torch::nn::Linear head{nullptr};
  at::Tensor modulation;  // [1, 2, dim]: shift, scale
  double eps;
};
TORCH_MODULE(WanHead);

// CLIP image features -> context tokens (I2V/FLF2V `img_emb`): LayerNorm, Linear, GELU, Linear, LayerNorm.
struct WanImageEmbeddingImpl : torch::nn::Module {
  explicit WanImageEmbeddingImpl(const WanDitConfig& config);
  // [B, N, image_dim] -> [B, N, dim]; FLF2V: [2B, N, image_dim] (each sample's first image, then its last) ->
  // [B, 2N, dim]
  at::Tensor forward(const at::Tensor& clip_features);
  torch::nn::Sequential proj{nullptr};
  at::Tensor emb_pos;  // FLF2V only: [1, image_tokens, image_dim]
};
TORCH_MODULE(WanImageEmbedding);

// One forward's input in token space, as the sampler keeps it: the tokens of this process's shard.
struct WanTokenInput {
  at::Tensor tokens;                            // [B, chunk, in_dim·Πpatch]: dit::TokenSpace's layout
  at::Tensor timesteps, time, time_projection;  // [B]; or EmbedTime(timesteps), shared by the CFG passes of a step
  at::Tensor text_states;                       // EmbedText() of the contexts [B, text_len, dim]
  at::Tensor clip_features;                     // I2V/FLF2V: as WanImageEmbedding takes them
  // CrossKeysValues(text_states, clip_features) when a generation has them already (then those two go unread).
  std::vector<WanCrossKeysValues> cross;
};

// The whole model in one process, as the reference's forward takes it.
struct WanDitInput {
  std::vector<at::Tensor> x;        // per sample [in_dim, F, H, W] latents (I2V: with the conditioning channels)
  at::Tensor timesteps;             // [B]
  std::vector<at::Tensor> context;  // per sample [L_text <= text_len, text_dim]
  std::int64_t seq_len = 0;         // pad tokens to this length (0: the longest sample)
  at::Tensor clip_features;         // I2V/FLF2V: as WanImageEmbedding takes them
};

class WanDitImpl : public torch::nn::Module {
 public:
  explicit WanDitImpl(const WanDitConfig& config);

  // The token space of the latents the sampler denoises (out_dim channels); an I2V model's conditioning channels
  // join them per forward (in_dim = out_dim + the conditioning's).
  const dit::TokenSpace& space() const { return space_; }
  // Where the tokens of samples of these grids sit in `shard`, with their rotary tables (float64, as the reference).
  dit::TokenLayout Layout(const dit::Shard& shard, std::span<const dit::Grid> grids) const;

  // The velocity of the shard's tokens, in dit::TokenSpace's layout: [B, chunk, out_dim·Πpatch] fp32.
  at::Tensor ForwardTokens(const WanTokenInput& input, const dit::TokenLayout& layout,
                           cache::FeatureCache::Forward* cache = nullptr);
  // Per sample [out_dim, F, H, W] fp32. With a cache, its branches are computed or forecast per its plan; in lite
  // mode the whole block stack and head are one branch, skipped on predicted steps.
  std::vector<at::Tensor> forward(const WanDitInput& input, cache::FeatureCache::Forward* cache = nullptr);

  // The time embedding e [B, dim] and its projection e0 [B, 6, dim] (fp32, from a float64 sinusoid).
  std::pair<at::Tensor, at::Tensor> EmbedTime(const at::Tensor& timesteps);
  // The text embedding of per-sample contexts [L <= text_len, text_dim], zero-padded: [B, text_len, dim].
  at::Tensor EmbedText(const std::vector<at::Tensor>& context);
  // Every block's cross-attention keys and values of EmbedText() states (and, with image input, of the CLIP
  // features).
  std::vector<WanCrossKeysValues> CrossKeysValues(const at::Tensor& text_states, const at::Tensor& clip_features);

  // What a cache for a batch of `batch` samples of `tokens` (padded) tokens holds per stream.
  cache::CacheFootprint Footprint(std::int64_t batch, std::int64_t tokens, int streams) const;

  // Casts the matrix-product weights (attention, FFN, embeddings) to `dtype`; norms, modulation, the time
  // embedding and the head stay fp32, as the reference runs them.
  void SetComputeDType(c10::ScalarType dtype);
  // Every block's self-attention projections as one product (WanSelfAttentionImpl::FuseProjections), after
  // SetComputeDType: before a load, so that it writes into the fused matrices.
  void FuseProjections(c10::Device device);

  // Called with ("block<N>", hidden states [B, L, dim]) after every block, for parity dumps.
  std::function<void(const std::string&, const at::Tensor&)> trace;

  const WanDitConfig& config() const { return config_; }

  torch::nn::Conv3d patch_embedding{nullptr};
  dit::Mlp text_embedding{nullptr}, time_embedding{nullptr};
  dit::SiluLinear time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  WanHead head{nullptr};
  WanImageEmbedding img_emb{nullptr};

 private:
  WanDitConfig config_;
  dit::TokenSpace space_;
};
TORCH_MODULE(WanDit);

// What an I2V/FLF2V model sees of its images, the same for both guidance passes.
struct WanImageInput {
  at::Tensor clip_features;  // as WanImageEmbedding takes them, for one sample
  at::Tensor y;              // the conditioning latents [in_dim − out_dim, T, h, w]: the frame mask, then the VAE's
};

// What a generation is conditioned on: the prompt's and the negative prompt's encoder states ([len, text_dim]
// each) and an I2V/FLF2V model's images.
struct WanCondition {
  at::Tensor context, context_null;
  WanImageInput image{};  // none for T2V
};

// The transformer under a condition, for the shared denoising loop (dit::Denoise): the text and the image tokens
// are embedded and projected once, the conditioning latents joined to the sampler's tokens at every forward.
std::unique_ptr<dit::Denoiser> MakeDenoiser(WanDit& dit, const WanCondition& condition);

}  // namespace vidgen::wan
