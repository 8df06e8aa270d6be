// The Wan-VAE (models.md B): causal 3D convolutions with zero front padding, chunked streaming encode (1, 4, 4, …
// frames) and per-latent-frame decode through a cache of the last input frames of every causal convolution.
// Module names are the keys of Wan2.1_VAE.pth. Runs in fp32, as the reference.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

namespace vidgen::io {
class WeightStore;
}

namespace vidgen::wan {

struct WanVaeConfig {
  std::int64_t dim = 96;
  std::int64_t z_dim = 16;
  std::vector<std::int64_t> dim_mult = {1, 2, 4, 4};
  std::int64_t num_res_blocks = 2;
  std::vector<bool> temporal_downsample = {false, true, true};
};

// The released architecture with the base width and latent channels read off the weights' shapes.
WanVaeConfig InferWanVaeConfig(const io::WeightStore& weights);

// What a causal convolution remembers between chunks: nothing yet, the upsampler's "replicate" mark, or the last
// frames of its input.
struct CausalSlot {
  enum class Kind { kEmpty, kRep, kFrames };
  Kind kind = Kind::kEmpty;
  at::Tensor frames;
};

// The slots of one encode or decode stream, used in the same order by every chunk.
class CausalCache {
 public:
  void BeginChunk() { next_ = 0; }
  CausalSlot& Next();

 private:
  std::vector<CausalSlot> slots_;
  std::size_t next_ = 0;
};

struct CausalConv3dOptions {
  std::int64_t in = 0;
  std::int64_t out = 0;
  std::array<std::int64_t, 3> kernel = {1, 1, 1};
  std::array<std::int64_t, 3> stride = {1, 1, 1};
  std::array<std::int64_t, 3> padding = {0, 0, 0};  // (T, H, W); T is padded 2·pad in front only
};

struct CausalConv3dImpl : torch::nn::Module {
  explicit CausalConv3dImpl(const CausalConv3dOptions& options);
  // Pads H and W on both sides and T with 2·pad frames in front, of which `history` (frames of the previous chunk,
  // [B, C, t, H, W]) replaces as many as it has.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& history = {});
  at::Tensor weight, bias;
  std::array<std::int64_t, 3> stride, padding;
};
TORCH_MODULE(CausalConv3d);

// Applies `conv` to x through its cache slot: the slot's frames are its history and it keeps the last two input
// frames for the next chunk. Without a cache, plain zero padding.
at::Tensor CachedCausalConv(CausalConv3dImpl& conv, const at::Tensor& x, CausalCache* cache);

// L2 normalisation over channels times √C and a learned gamma.
struct VaeRmsNormImpl : torch::nn::Module {
  VaeRmsNormImpl(std::int64_t dim, bool images);
  at::Tensor forward(const at::Tensor& x);  // [B, C, ...]
  at::Tensor gamma;
};
TORCH_MODULE(VaeRmsNorm);

struct VaeResidualBlockImpl : torch::nn::Module {
  VaeResidualBlockImpl(std::int64_t in, std::int64_t out);
  at::Tensor forward(const at::Tensor& x, CausalCache* cache);  // [B, in, T, H, W] -> [B, out, T, H, W]
  torch::nn::Sequential residual{nullptr};  // 0 norm, 1 SiLU, 2 conv, 3 norm, 4 SiLU, 5 dropout, 6 conv
  CausalConv3d shortcut{nullptr};
};
TORCH_MODULE(VaeResidualBlock);

// Single-head self-attention over the pixels of each frame.
struct VaeAttentionBlockImpl : torch::nn::Module {
  explicit VaeAttentionBlockImpl(std::int64_t dim);
  at::Tensor forward(const at::Tensor& x);  // [B, C, T, H, W]
  VaeRmsNorm norm{nullptr};
  torch::nn::Conv2d to_qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(VaeAttentionBlock);

struct VaeResampleImpl : torch::nn::Module {
  enum class Mode { kUpsample2d, kUpsample3d, kDownsample2d, kDownsample3d };
  VaeResampleImpl(std::int64_t dim, Mode mode);
  at::Tensor forward(const at::Tensor& x, CausalCache* cache);
  torch::nn::Sequential resample{nullptr};  // spatial: [upsample | zero pad, conv2d] at index 1
  CausalConv3d time_conv{nullptr};
  Mode mode;
};
TORCH_MODULE(VaeResample);

struct VaeEncoderImpl : torch::nn::Module {
  explicit VaeEncoderImpl(const WanVaeConfig& config);
  at::Tensor forward(const at::Tensor& x, CausalCache* cache);  // [B, 3, t, H, W] -> [B, 2·z, t', H/8, W/8]
  CausalConv3d conv1{nullptr};
  torch::nn::ModuleList downsamples{nullptr}, middle{nullptr}, head{nullptr};
};
TORCH_MODULE(VaeEncoder);

struct VaeDecoderImpl : torch::nn::Module {
  explicit VaeDecoderImpl(const WanVaeConfig& config);
  at::Tensor forward(const at::Tensor& z, CausalCache* cache);  // [B, z, 1, h, w] -> [B, 3, 1 or 4, 8h, 8w]
  CausalConv3d conv1{nullptr};
  torch::nn::ModuleList middle{nullptr}, upsamples{nullptr}, head{nullptr};
};
TORCH_MODULE(VaeDecoder);

class WanVaeImpl : public torch::nn::Module {
 public:
  explicit WanVaeImpl(const WanVaeConfig& config);

  // video: [B, 3, 1+4k, H, W] in [-1, 1] -> normalised latent mean [B, z, 1+k, H/8, W/8].
  at::Tensor Encode(const at::Tensor& video);
  // The posterior's normalised mean and log-variance, each [B, z, 1+k, H/8, W/8] (what training needs).
  std::pair<at::Tensor, at::Tensor> EncodeMoments(const at::Tensor& video);
  // latent: [B, z, T, h, w] normalised -> video [B, 3, 1+4(T-1), 8h, 8w], clamped to [-1, 1] unless `clamp` is off
  // (training: the loss sees the raw output).
  at::Tensor Decode(const at::Tensor& latent, bool clamp = true);

  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  CausalConv3d conv1{nullptr}, conv2{nullptr};

 private:
  WanVaeConfig config_;
  at::Tensor mean_, inverse_std_;  // [z] the latent normalisation (WanVAE.scale)
};
TORCH_MODULE(WanVae);

}  // namespace vidgen::wan
