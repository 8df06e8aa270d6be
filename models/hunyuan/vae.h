// HunyuanVideo's causal 3D VAE "884-16c-hy" (models.md E.1): causal convolutions with replicate padding (all of
// T's padding in front), ResNet blocks with GroupNorm, a mid block whose attention is frame-causal, 8× spatial and
// 4× temporal compression to 16 channels, scaling factor 0.476986. Module names are the keys of the released
// `vae/pytorch_model.pt` (identical in diffusers). Runs in fp32.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

namespace vidgen::hunyuan {

struct HunyuanVaeConfig {
  std::int64_t in_channels = 3;
  std::int64_t out_channels = 3;
  std::int64_t latent_channels = 16;
  std::vector<std::int64_t> block_out_channels = {128, 256, 512, 512};
  std::int64_t layers_per_block = 2;  // the decoder has one more
  std::int64_t norm_num_groups = 32;
  std::int64_t time_compression = 4;
  double scaling_factor = 0.476986;

  std::int64_t spatial_compression() const { return std::int64_t{1} << (block_out_channels.size() - 1); }
  void Validate() const;  // throws Error(INVALID_ARGUMENT) naming the field
};

// Reads the VAE's config.json (block_out_channels, layers_per_block, latent_channels, norm_num_groups,
// scaling_factor, time_compression_ratio, in/out_channels); absent keys keep the released values.
HunyuanVaeConfig ReadHunyuanVaeConfig(const std::string& path);

// "<name>.conv": a Conv3d after replicate padding — W and H by k/2 on both sides, T by k−1 in front.
struct CausalConvImpl : torch::nn::Module {
  CausalConvImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::array<std::int64_t, 3> stride = {1, 1, 1});
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv3d conv{nullptr};
  std::int64_t kernel;
};
TORCH_MODULE(CausalConv);

struct ResnetBlockImpl : torch::nn::Module {
  ResnetBlockImpl(std::int64_t in, std::int64_t out, std::int64_t groups);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  CausalConv conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
};
TORCH_MODULE(ResnetBlock);

// One-head attention over all (t, h, w) tokens in which a token sees the tokens of its own and earlier frames.
struct MidAttentionImpl : torch::nn::Module {
  MidAttentionImpl(std::int64_t channels, std::int64_t groups);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::GroupNorm group_norm{nullptr};
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};  // to_out as "to_out.0"
};
TORCH_MODULE(MidAttention);

struct MidBlockImpl : torch::nn::Module {
  MidBlockImpl(std::int64_t channels, std::int64_t groups);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::ModuleList resnets, attentions;
};
TORCH_MODULE(MidBlock);

struct HunyuanVaeEncoderImpl : torch::nn::Module {
  explicit HunyuanVaeEncoderImpl(const HunyuanVaeConfig& config);
  at::Tensor forward(const at::Tensor& video);  // [B, 3, T, H, W] -> moments [B, 2·latent, t, h, w]
  CausalConv conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks;
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(HunyuanVaeEncoder);

struct HunyuanVaeDecoderImpl : torch::nn::Module {
  explicit HunyuanVaeDecoderImpl(const HunyuanVaeConfig& config);
  at::Tensor forward(const at::Tensor& z);  // [B, latent, t, h, w] -> [B, 3, 1+4(t−1), 8h, 8w]
  CausalConv conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks;
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
  std::vector<std::array<std::int64_t, 3>> upsample;  // per up block: (t, h, w) factors, or 0s for none
};
TORCH_MODULE(HunyuanVaeDecoder);

// Tiled decoding as the reference's `enable_tiling` (E.1), which changes the output: latents longer than
// `latent_frames` are decoded in tiles of latent_frames + 1 frames at stride latent_frames·(1 − overlap), and wider
// or taller than `latent_size` in latent_size² tiles at stride latent_size·(1 − overlap); neighbouring tiles are
// blended linearly over the overlap (16 frames and 64 pixels with the defaults).
struct HunyuanVaeTiling {
  bool enabled = false;
  std::int64_t latent_frames = 16;
  std::int64_t latent_size = 32;
  double overlap = 0.25;
};

class HunyuanVaeImpl : public torch::nn::Module {
 public:
  explicit HunyuanVaeImpl(const HunyuanVaeConfig& config);

  // video [B, 3, 1+4k, 8h, 8w] in [−1, 1] -> latents [B, 16, 1+k, h, w], the posterior mean × scaling factor.
  at::Tensor Encode(const at::Tensor& video);
  // latents -> video in [−1, 1]; with tiling, decoded tile by tile and blended as the reference does.
  at::Tensor Decode(const at::Tensor& latents, const HunyuanVaeTiling& tiling = {});

  const HunyuanVaeConfig& config() const { return config_; }
  HunyuanVaeEncoder encoder{nullptr};
  HunyuanVaeDecoder decoder{nullptr};
  torch::nn::Conv3d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  at::Tensor DecodeSpatialTiles(const at::Tensor& z, const HunyuanVaeTiling& tiling);
  at::Tensor DecodeOne(const at::Tensor& z, const HunyuanVaeTiling& tiling);
  HunyuanVaeConfig config_;
};
TORCH_MODULE(HunyuanVae);

}  // namespace vidgen::hunyuan
