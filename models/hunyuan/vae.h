// HunyuanVideo's causal 3D VAE "884-16c-hy" (models.md E.1): causal convolutions with replicate padding (all of
// T's padding in front), ResNet blocks with GroupNorm, a mid block whose attention is frame-causal, 8× spatial and
// 4× temporal compression to 16 channels, scaling factor 0.476986. Module names are the keys of the released
// `vae/pytorch_model.pt` (identical in diffusers). Runs in fp32.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
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
  std::int64_t spatial_compression = 8;
  double scaling_factor = 0.476986;
  // Tile sizes of tiled decoding, in pixels and frames ("sample_size", "sample_tsize").
  std::int64_t sample_size = 256;
  std::int64_t sample_tsize = 64;

  // Block i halves H and W when i < log2(spatial_compression), and T when it is one of the log2(time_compression)
  // blocks before the last, as the reference builds its encoder (the decoder mirrors it).
  bool SpatialResample(std::int64_t block) const;
  bool TimeResample(std::int64_t block) const;
  void Validate() const;  // throws Error(INVALID_ARGUMENT) naming the field
};

// Reads the VAE's config.json (block_out_channels, layers_per_block, latent_channels, norm_num_groups,
// scaling_factor, time_compression_ratio, spatial_compression_ratio, sample_size, sample_tsize, in/out_channels);
// absent keys keep the released values.
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

// Tiled decoding as the reference's `enable_tiling` (E.1), which changes the output. With the config's tile sizes
// (sample_tsize frames, sample_size pixels; the latent tiles are sample_tsize / time_compression frames and
// sample_size / 2^(blocks − 1) wide, as the reference computes them), latents longer than a latent tile are decoded
// in tiles of one frame more at stride latent_frames·(1 − overlap), and wider or taller ones in square tiles at
// stride latent_size·(1 − overlap); neighbouring tiles are blended linearly over overlap × the tile's pixels or
// frames (16 frames and 64 pixels with the released config).
struct HunyuanVaeTiling {
  bool enabled = true;  // the reference pipeline's default (--vae-tiling)
  double overlap = 0.25;
};

class HunyuanVaeImpl : public torch::nn::Module {
 public:
  explicit HunyuanVaeImpl(const HunyuanVaeConfig& config);

  // video [B, 3, 1+4k, 8h, 8w] in [−1, 1] -> the posterior's mean and log-variance (clamped to [−30, 20] as the
  // reference), each [B, 16, 1+k, h, w].
  std::pair<at::Tensor, at::Tensor> Posterior(const at::Tensor& video);
  // The latents a pipeline holds: the posterior mean × scaling factor.
  at::Tensor Encode(const at::Tensor& video);
  // latents -> video (about [−1, 1], not clamped); with tiling, decoded tile by tile and blended as the reference does.
  at::Tensor Decode(const at::Tensor& latents, const HunyuanVaeTiling& tiling = {.enabled = false, .overlap = 0.25});

  const HunyuanVaeConfig& config() const { return config_; }
  HunyuanVaeEncoder encoder{nullptr};
  HunyuanVaeDecoder decoder{nullptr};
  torch::nn::Conv3d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  std::int64_t LatentTileFrames() const { return config_.sample_tsize / config_.time_compression; }
  std::int64_t LatentTileSize() const;
  at::Tensor DecodeSpatialTiles(const at::Tensor& z, const HunyuanVaeTiling& tiling);
  at::Tensor DecodeOne(const at::Tensor& z, const HunyuanVaeTiling& tiling);
  HunyuanVaeConfig config_;
};
TORCH_MODULE(HunyuanVae);

// Reads a VAE folder: config.json (the released sizes when absent) and its weights (.pt, .pth or .safetensors),
// as a plain state dict or as the reference's load_vae also accepts, `{"state_dict": {"vae.<name>": ...}}`. Throws
// Error naming the folder or the tensors that do not fit.
HunyuanVae LoadHunyuanVae(const std::string& dir, c10::Device device = c10::Device(c10::DeviceType::CPU));

}  // namespace vidgen::hunyuan
