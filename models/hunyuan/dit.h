// HunyuanVideo's diffusion transformer (models.md D): token refiner, time / CLIP / guidance embeddings, dual-stream
// then single-stream blocks with joint image-text attention, final layer, over the shared token space and layers
// (models/dit). Module and parameter names are the released checkpoint's (after its "module." prefix).
//
// It runs on this process's shard of image tokens (the whole sequence in one process); the text tokens are the same
// on every rank. A cache handle, when given, routes each cacheable branch through TaylorSeer: four per double block
// (image and text attention, image and text MLP), one per single block (its linear2 output).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cache/feature_cache.h"
#include "models/dit/denoise.h"
#include "models/dit/layers.h"
#include "models/dit/layout.h"
#include "models/dit/token_space.h"
#include "models/hunyuan/config.h"
#include "models/layers/layers.h"

namespace vidgen::hunyuan {

// "mlp" = Linear(256, D) → SiLU → Linear(D, D) over the fp32 sinusoid: the timestep and guidance embedders.
struct TimestepEmbedderImpl : torch::nn::Module {
  explicit TimestepEmbedderImpl(std::int64_t hidden);
  at::Tensor forward(const at::Tensor& t);  // [B] float -> [B, D]
  dit::Mlp mlp{nullptr};
};
TORCH_MODULE(TimestepEmbedder);

// A module that only names its children ("img_in" holding "proj", "individual_token_refiner" holding "blocks").
struct NamespaceImpl : torch::nn::Module {};
TORCH_MODULE(Namespace);

struct RefinerBlockImpl : torch::nn::Module {
  explicit RefinerBlockImpl(const HunyuanDitConfig& config);
  // `valid`: real tokens per sample (a prefix of the text).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, const std::vector<std::int64_t>& valid);
  layers::AffineLayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear self_attn_qkv{nullptr}, self_attn_proj{nullptr};
  dit::Mlp mlp{nullptr};
  dit::SiluLinear adaLN_modulation{nullptr};
  std::int64_t heads;
};
TORCH_MODULE(RefinerBlock);

// txt_in: the LLM states [B, Lt, Dt] refined into [B, Lt, D] under the timestep and their masked mean.
struct TokenRefinerImpl : torch::nn::Module {
  explicit TokenRefinerImpl(const HunyuanDitConfig& config);
  at::Tensor forward(const at::Tensor& text_states, const at::Tensor& t, const at::Tensor& mask,
                     const std::vector<std::int64_t>& valid);
  torch::nn::Linear input_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  dit::Mlp c_embedder{nullptr};
  torch::nn::ModuleList blocks;  // "individual_token_refiner.blocks.i"
};
TORCH_MODULE(TokenRefiner);

// Where the image tokens sit (the shared layout: one grid for every sample) and how much of each text is real.
struct HunyuanLayout {
  dit::TokenLayout image;
  std::vector<std::int64_t> text_valid;  // per sample: real text tokens (a prefix of the text)
};

// One stream of a double block: "<prefix>_mod", "_attn_qkv", "_attn_q_norm", "_attn_k_norm", "_attn_proj", "_mlp".
struct StreamModules {
  dit::SiluLinear mod{nullptr};
  torch::nn::Linear attn_qkv{nullptr}, attn_proj{nullptr};
  layers::RmsNorm attn_q_norm{nullptr}, attn_k_norm{nullptr};
  dit::Mlp mlp{nullptr};
};

struct DoubleBlockImpl : torch::nn::Module {
  explicit DoubleBlockImpl(const HunyuanDitConfig& config);
  // img [B, chunk, D], txt [B, Lt, D] -> both updated.
  void forward(at::Tensor& img, at::Tensor& txt, const at::Tensor& vec, const HunyuanLayout& layout,
               cache::FeatureCache::Forward* cache, std::int64_t first_branch);
  StreamModules img, txt;
  std::int64_t heads;
};
TORCH_MODULE(DoubleBlock);

struct SingleBlockImpl : torch::nn::Module {
  explicit SingleBlockImpl(const HunyuanDitConfig& config);
  // One stream, as in the reference: x = [img; txt] [B, chunk + Lt, D] -> x updated.
  void forward(at::Tensor& x, const at::Tensor& vec, const HunyuanLayout& layout, cache::FeatureCache::Forward* cache,
               std::int64_t branch);
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  layers::RmsNorm q_norm{nullptr}, k_norm{nullptr};
  dit::SiluLinear modulation{nullptr};
  std::int64_t heads, mlp_hidden;
};
TORCH_MODULE(SingleBlock);

struct HunyuanTokenInput {
  at::Tensor tokens;         // [B, chunk, C·Πpatch]: this process's shard, dit::TokenSpace's layout
  at::Tensor timesteps;      // [B] float, σ·1000
  at::Tensor text_states;    // [B, Lt, text_states_dim]
  at::Tensor text_mask;      // [B, Lt] 1 for real tokens (a prefix), 0 for padding
  at::Tensor text_states_2;  // [B, text_states_dim_2]
  at::Tensor guidance;       // [B] float, already ×1000 (the embedded guidance)
};

class HunyuanDitImpl : public torch::nn::Module {
 public:
  explicit HunyuanDitImpl(const HunyuanDitConfig& config);

  const dit::TokenSpace& space() const { return space_; }
  // Where `batch` samples of one grid sit in `shard`, and their texts' real lengths (from `text_mask` [B, Lt]).
  HunyuanLayout Layout(const dit::Shard& shard, const dit::Grid& grid, const at::Tensor& text_mask) const;

  // The velocity of this process's shard: [B, chunk, C·Πpatch] fp32.
  at::Tensor ForwardTokens(const HunyuanTokenInput& input, const HunyuanLayout& layout,
                           cache::FeatureCache::Forward* cache = nullptr);
  // The whole model on latents x [B, C, T, H, W] in one process: [B, C, T, H, W] fp32.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text_states,
                     const at::Tensor& text_mask, const at::Tensor& text_states_2, const at::Tensor& guidance,
                     cache::FeatureCache::Forward* cache = nullptr);

  // RoPE tables for a token grid (D.6): cos and sin [t·h·w, head_dim] fp32.
  std::pair<at::Tensor, at::Tensor> RopeTables(const dit::Grid& grid) const;
  // What TaylorSeer keeps per stream, for `batch` samples of `tokens` image tokens and `text` text tokens.
  cache::CacheFootprint Footprint(std::int64_t batch, std::int64_t tokens, std::int64_t text, int streams) const;
  // Products in `dtype` (the weights are cast; norms and RoPE stay fp32).
  void SetComputeDType(c10::ScalarType dtype);

  const HunyuanDitConfig& config() const { return config_; }
  // Sees hidden states by name ("txt_in", "double<i>.img", "single<i>" = [img; txt]) when set: for parity tests.
  std::function<void(const std::string&, const at::Tensor&)> trace;

  torch::nn::Conv3d patch{nullptr};  // "img_in.proj", applied as a product per token
  TimestepEmbedder time_in{nullptr}, guidance_in{nullptr};
  dit::Mlp vector_in{nullptr};
  TokenRefiner txt_in{nullptr};
  torch::nn::ModuleList double_blocks, single_blocks;
  torch::nn::Linear final_linear{nullptr};    // "final_layer.linear"
  dit::SiluLinear final_modulation{nullptr};  // "final_layer.adaLN_modulation": [shift; scale]

 private:
  dit::RopeOptions rope() const;

  HunyuanDitConfig config_;
  dit::TokenSpace space_;
};
TORCH_MODULE(HunyuanDit);

// The prompt as the DiT takes it: LLM states [Lt, text_states_dim], their mask [Lt] (a prefix of ones) and the CLIP
// pooled vector [text_states_dim_2].
struct HunyuanText {
  at::Tensor states, mask, pooled;
};

// The guidance value the model is given: embedded_guidance·1000 computed in `dtype`, as the reference does (in bf16
// 6.0·1000 rounds to 6016; in fp32 it stays 6000).
double EmbeddedGuidanceValue(double embedded_guidance, c10::ScalarType dtype);

// The transformer conditioned on a prompt for the shared denoising loop (dit::Denoise): one pass a step, the
// distilled guidance embedded in the model (models.md E.4).
std::unique_ptr<dit::Denoiser> MakeDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance);

}  // namespace vidgen::hunyuan
