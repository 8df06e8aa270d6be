// The Wan2.1 diffusion transformer (models.md A): T2V, and the image cross-attention of I2V/FLF2V checkpoints.
// Module and parameter names are the released checkpoint's keys.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cache/feature_cache.h"
#include "models/layers/layers.h"
#include "models/wan/config.h"

namespace vidgen::parallel {
class World;
}

namespace vidgen::wan {

// Where the tokens of each sample sit: how many are real, their rotary angles, and which chunk of the sequence this
// process holds (all of it without sequence parallelism).
struct WanTokenLayout {
  std::vector<std::int64_t> lengths;    // t·h·w per sample; later positions are padding
  std::vector<at::Tensor> rope_angles;  // per sample [length, head_dim/2] float64
  std::int64_t offset = 0;              // global position of this process's first token
  parallel::World* world = nullptr;     // splits self-attention over its sequence group when set
};

// Linear → activation → Linear, registered as "0" and "2" like the reference's nn.Sequential.
struct WanMlpImpl : torch::nn::Module {
  enum class Activation { kSilu, kGeluTanh };
  WanMlpImpl(std::int64_t in, std::int64_t hidden, std::int64_t out, Activation activation);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Activation activation;
};
TORCH_MODULE(WanMlp);

struct WanSelfAttentionImpl : torch::nn::Module {
  explicit WanSelfAttentionImpl(const WanDitConfig& config);
  at::Tensor forward(const at::Tensor& x, const WanTokenLayout& layout);  // [B, L, dim] -> [B, L, dim]
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  layers::RmsNorm norm_q{nullptr}, norm_k{nullptr};
  std::int64_t num_heads;
};
TORCH_MODULE(WanSelfAttention);

// Text cross-attention (the self-attention's projections and q/k norms over another sequence); with image input
// also the attention to the CLIP tokens that lead the context.
struct WanCrossAttentionImpl : WanSelfAttentionImpl {
  explicit WanCrossAttentionImpl(const WanDitConfig& config);
  // x: [B, L, dim], context: [B, image_tokens + text_len, dim] -> [B, L, dim]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context, std::int64_t image_tokens);
  torch::nn::Linear k_img{nullptr}, v_img{nullptr};
  layers::RmsNorm norm_k_img{nullptr};
};
TORCH_MODULE(WanCrossAttention);

struct WanBlockImpl : torch::nn::Module {
  explicit WanBlockImpl(const WanDitConfig& config);
  // x: [B, L, dim] fp32, e0: [B, 6, dim] fp32, context: [B, Lc, dim] -> [B, L, dim] fp32. With a cache, the
  // self-attention, cross-attention and FFN outputs (before their gates) go through it as branches
  // 3·layer + {0, 1, 2}; gates, modulation and residual adds always run.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& e0, const WanTokenLayout& layout, const at::Tensor& context,
                     std::int64_t image_tokens, cache::FeatureCache::Forward* cache = nullptr, std::int64_t layer = 0);
  WanSelfAttention self_attn{nullptr};
  layers::AffineLayerNorm norm3{nullptr};
  WanCrossAttention cross_attn{nullptr};
  WanMlp ffn{nullptr};
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
  WanImageEmbeddingImpl(const WanDitConfig& config, std::int64_t clip_dim);
  at::Tensor forward(const at::Tensor& clip_features);  // [B, N, clip_dim] -> [B, N', dim]
  torch::nn::Sequential proj{nullptr};
  at::Tensor emb_pos;  // FLF2V only: [1, 2·257, clip_dim]
};
TORCH_MODULE(WanImageEmbedding);

struct WanDitInput {
  std::vector<at::Tensor> x;         // per sample [in_dim, F, H, W] latents (I2V: with the conditioning channels)
  at::Tensor timesteps;              // [B]
  std::vector<at::Tensor> context;   // per sample [L_text <= text_len, text_dim]
  at::Tensor text_states;            // or, instead of `context`, its EmbedText() (constant over the steps)
  at::Tensor time, time_projection;  // optional: EmbedTime(timesteps), shared by the CFG passes of a step
  std::int64_t seq_len = 0;          // pad tokens to this length (0: the longest sample)
  at::Tensor clip_features;          // I2V/FLF2V: [B, 257 or 514, 1280]
};

// The DiT's input in token space, as the sampler keeps it when the sequence is split over processes.
struct WanTokenInput {
  at::Tensor tokens;  // [B, chunk, in_dim·Πpatch]: patchified latents (Patchify's layout) of this process's chunk
  std::vector<std::array<std::int64_t, 3>> grids;  // per sample, the whole (t, h, w) token grid
  std::int64_t offset = 0;                         // global position of the chunk's first token
  at::Tensor timesteps, time, time_projection;     // as WanDitInput
  at::Tensor text_states;                          // EmbedText() of the contexts [B, text_len, dim]
  at::Tensor clip_features;                        // I2V/FLF2V
  parallel::World* world = nullptr;
};

class WanDitImpl : public torch::nn::Module {
 public:
  explicit WanDitImpl(const WanDitConfig& config);

  // Latents [C, F, H, W] <-> tokens [f·h·w, C·Πpatch] in (t, h, w) order, each token's values in (c, pt, ph, pw)
  // order: the patch embedding is then a matrix product per token, and the sampler's element-wise updates can run
  // on any chunk of tokens.
  at::Tensor Patchify(const at::Tensor& latents) const;
  at::Tensor Unpatchify(const at::Tensor& tokens, const std::array<std::int64_t, 3>& grid) const;
  std::array<std::int64_t, 3> TokenGrid(const at::Tensor& latents) const;

  // The velocity of this process's chunk of tokens, in Patchify's layout: [B, chunk, out_dim·Πpatch].
  at::Tensor ForwardTokens(const WanTokenInput& input, cache::FeatureCache::Forward* cache = nullptr);

  // Per sample [out_dim, F, H, W] fp32. With a cache, its branches are computed or forecast per its plan; in lite
  // mode the whole block stack and head are one branch, skipped on predicted steps.
  std::vector<at::Tensor> forward(const WanDitInput& input, cache::FeatureCache::Forward* cache = nullptr);

  // The time embedding e [B, dim] and its projection e0 [B, 6, dim] (fp32, from a float64 sinusoid).
  std::pair<at::Tensor, at::Tensor> EmbedTime(const at::Tensor& timesteps);

  // The text embedding of per-sample contexts [L <= text_len, text_dim], zero-padded: [B, text_len, dim].
  at::Tensor EmbedText(const std::vector<at::Tensor>& context);

  // What a cache for a batch of `batch` samples of `tokens` (padded) tokens holds per stream.
  cache::CacheFootprint Footprint(std::int64_t batch, std::int64_t tokens, int streams) const;

  // Casts the matrix-product weights (attention, FFN, embeddings) to `dtype`; norms, modulation, the time
  // embedding and the head stay fp32, as the reference runs them.
  void SetComputeDType(c10::ScalarType dtype);

  // Called with ("block<N>", hidden states [B, L, dim]) after every block, for parity dumps.
  std::function<void(const std::string&, const at::Tensor&)> trace;

  const WanDitConfig& config() const { return config_; }

  torch::nn::Conv3d patch_embedding{nullptr};
  WanMlp text_embedding{nullptr}, time_embedding{nullptr};
  torch::nn::Sequential time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  WanHead head{nullptr};
  WanImageEmbedding img_emb{nullptr};

 private:
  WanDitConfig config_;
};
TORCH_MODULE(WanDit);

}  // namespace vidgen::wan
