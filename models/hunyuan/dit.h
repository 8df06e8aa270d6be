// HunyuanVideo's diffusion transformer (models.md D): token refiner, time / CLIP / guidance embeddings, dual-stream
// then single-stream blocks with joint image-text attention, final layer, unpatchify. Module and parameter names
// are the released checkpoint's (after its "module." prefix).
//
// It runs on this process's chunk of image tokens (the whole sequence in one process); the text tokens are the same
// on every rank. A cache handle, when given, routes each cacheable branch through TaylorSeer: four per double block
// (image and text attention, image and text MLP), one per single block (its linear2 output).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "cache/feature_cache.h"
#include "models/hunyuan/config.h"
#include "models/layers/layers.h"

namespace vidgen::parallel {
class World;
}

namespace vidgen::hunyuan {

// Linear(in, D) → SiLU → Linear(D, D), as "mlp.0" / "mlp.2": the timestep and guidance embedders.
struct TimestepEmbedderImpl : torch::nn::Module {
  TimestepEmbedderImpl(std::int64_t hidden, std::int64_t frequency_dim = 256);
  at::Tensor forward(const at::Tensor& t);  // [B] float -> [B, D]
  torch::nn::Sequential mlp;
  std::int64_t frequency_dim;
};
TORCH_MODULE(TimestepEmbedder);

// fc1 → activation → fc2.
struct MlpImpl : torch::nn::Module {
  MlpImpl(std::int64_t dim, std::int64_t hidden, bool gelu);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  bool gelu;
};
TORCH_MODULE(Mlp);

// A Linear behind SiLU whose output is split into `count` modulation vectors: "<name>.linear" or "...adaLN_modulation.1".
struct ModulationImpl : torch::nn::Module {
  ModulationImpl(std::int64_t dim, std::int64_t count);
  std::vector<at::Tensor> forward(const at::Tensor& vec);  // [B, D] -> count × [B, 1, D]
  torch::nn::Linear linear{nullptr};
  std::int64_t count;
};
TORCH_MODULE(Modulation);

struct RefinerBlockImpl : torch::nn::Module {
  RefinerBlockImpl(const HunyuanDitConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, const at::Tensor& valid);
  layers::AffineLayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear self_attn_qkv{nullptr}, self_attn_proj{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Sequential adaLN_modulation;
  std::int64_t heads;
};
TORCH_MODULE(RefinerBlock);

// Linear → SiLU → Linear with the given child names ("in_layer"/"out_layer" for vector_in, "linear_1"/"linear_2"
// for the refiner's c_embedder).
struct TwoLayerEmbedderImpl : torch::nn::Module {
  TwoLayerEmbedderImpl(std::int64_t in, std::int64_t out, const std::string& first, const std::string& second);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear first{nullptr}, second{nullptr};
};
TORCH_MODULE(TwoLayerEmbedder);

// A module that only names its children ("img_in" holding "proj", "individual_token_refiner" holding "blocks").
struct NamespaceImpl : torch::nn::Module {};
TORCH_MODULE(Namespace);

// txt_in: the LLM states [B, Lt, Dt] refined into [B, Lt, D] under the timestep and their masked mean.
struct TokenRefinerImpl : torch::nn::Module {
  explicit TokenRefinerImpl(const HunyuanDitConfig& config);
  at::Tensor forward(const at::Tensor& text_states, const at::Tensor& t, const at::Tensor& valid);
  torch::nn::Linear input_embedder{nullptr};
  TimestepEmbedder t_embedder{nullptr};
  TwoLayerEmbedder c_embedder{nullptr};
  torch::nn::ModuleList blocks;  // "individual_token_refiner.blocks.i"
};
TORCH_MODULE(TokenRefiner);

// Where this process's image tokens sit and how the text is masked; the same for every block of one forward.
struct HunyuanLayout {
  std::array<std::int64_t, 3> grid{};  // the whole (t, h, w) token grid
  std::int64_t offset = 0;             // global position of the chunk's first image token
  std::int64_t image_length = 0;       // real image tokens (the sequence may be padded past them)
  at::Tensor rope_cos, rope_sin;       // [chunk, head_dim] fp32, for this chunk
  std::vector<std::int64_t> text_valid;  // per sample: real text tokens (a prefix of the text)
  parallel::World* world = nullptr;
};

struct DoubleBlockImpl : torch::nn::Module {
  DoubleBlockImpl(const HunyuanDitConfig& config);
  // img [B, chunk, D], txt [B, Lt, D] -> both updated.
  void forward(at::Tensor& img, at::Tensor& txt, const at::Tensor& vec, const HunyuanLayout& layout,
               cache::FeatureCache::Forward* cache, std::int64_t first_branch);
  Modulation img_mod{nullptr}, txt_mod{nullptr};
  torch::nn::Linear img_attn_qkv{nullptr}, img_attn_proj{nullptr}, txt_attn_qkv{nullptr}, txt_attn_proj{nullptr};
  layers::RmsNorm img_attn_q_norm{nullptr}, img_attn_k_norm{nullptr}, txt_attn_q_norm{nullptr},
      txt_attn_k_norm{nullptr};
  Mlp img_mlp{nullptr}, txt_mlp{nullptr};
  std::int64_t heads;
};
TORCH_MODULE(DoubleBlock);

struct SingleBlockImpl : torch::nn::Module {
  SingleBlockImpl(const HunyuanDitConfig& config);
  // img [B, chunk, D], txt [B, Lt, D] -> both updated (one stream in the reference: [img; txt]).
  void forward(at::Tensor& img, at::Tensor& txt, const at::Tensor& vec, const HunyuanLayout& layout,
               cache::FeatureCache::Forward* cache, std::int64_t branch);
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  layers::RmsNorm q_norm{nullptr}, k_norm{nullptr};
  Modulation modulation{nullptr};
  std::int64_t heads, mlp_hidden;
};
TORCH_MODULE(SingleBlock);

struct HunyuanTokenInput {
  at::Tensor tokens;                   // [B, chunk, C·Πpatch]: this process's patchified latents (Patchify's layout)
  std::array<std::int64_t, 3> grid{};  // the whole token grid, the same for every sample
  std::int64_t offset = 0;
  at::Tensor timesteps;                // [B] float, σ·1000
  at::Tensor text_states;              // [B, Lt, text_states_dim]
  at::Tensor text_mask;                // [B, Lt] 1 for real tokens (a prefix), 0 for padding
  at::Tensor text_states_2;            // [B, text_states_dim_2]
  at::Tensor guidance;                 // [B] float, already ×1000 (the embedded guidance)
  parallel::World* world = nullptr;
};

class HunyuanDitImpl : public torch::nn::Module {
 public:
  explicit HunyuanDitImpl(const HunyuanDitConfig& config);

  // Latents [C, T, H, W] <-> tokens [t·h·w, C·Πpatch] in (t, h, w) order, each token's values in (c, pt, ph, pw)
  // order, which is also the head's output layout (D.5).
  at::Tensor Patchify(const at::Tensor& latents) const;
  at::Tensor Unpatchify(const at::Tensor& tokens, const std::array<std::int64_t, 3>& grid) const;
  std::array<std::int64_t, 3> TokenGrid(const at::Tensor& latents) const;

  // The velocity of this process's chunk: [B, chunk, C·Πpatch] fp32.
  at::Tensor ForwardTokens(const HunyuanTokenInput& input, cache::FeatureCache::Forward* cache = nullptr);
  // The whole model on latents x [B, C, T, H, W] in one process: [B, C, T, H, W] fp32.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text_states,
                     const at::Tensor& text_mask, const at::Tensor& text_states_2, const at::Tensor& guidance,
                     cache::FeatureCache::Forward* cache = nullptr);

  // RoPE tables for a token grid (D.6): cos and sin [t·h·w, head_dim] fp32.
  std::pair<at::Tensor, at::Tensor> RopeTables(const std::array<std::int64_t, 3>& grid) const;
  // What TaylorSeer keeps per stream, for `batch` samples of `tokens` image tokens and `text` text tokens.
  cache::CacheFootprint Footprint(std::int64_t batch, std::int64_t tokens, std::int64_t text, int streams) const;
  // Products in `dtype` (the weights are cast; norms and RoPE stay fp32).
  void SetComputeDType(c10::ScalarType dtype);

  const HunyuanDitConfig& config() const { return config_; }
  // Sees hidden states by name ("txt_in", "double<i>.img", "single<i>" = [img; txt]) when set: for parity tests.
  std::function<void(const std::string&, const at::Tensor&)> trace;

  torch::nn::Conv3d patch{nullptr};  // "img_in.proj", applied as a product per token
  TimestepEmbedder time_in{nullptr}, guidance_in{nullptr};
  TwoLayerEmbedder vector_in{nullptr};
  TokenRefiner txt_in{nullptr};
  torch::nn::ModuleList double_blocks, single_blocks;
  torch::nn::Linear final_linear{nullptr};      // "final_layer.linear"
  torch::nn::Sequential final_modulation{nullptr};  // "final_layer.adaLN_modulation": [shift; scale]

 private:
  HunyuanDitConfig config_;
};
TORCH_MODULE(HunyuanDit);

}  // namespace vidgen::hunyuan
