#include "models/wan/vae.h"

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/weight_store.h"
#include "models/layers/deferred.h"

namespace vidgen::wan {
namespace {

// Frames of its input that a causal convolution keeps for the next chunk.
constexpr std::int64_t kCacheFrames = 2;

constexpr std::array<float, 16> kLatentMean = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,  -0.1517, 1.5508,
                                               0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
constexpr std::array<float, 16> kLatentStd = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};

// Runs a 2D module on every frame: [B, C, T, H, W] -> [B·T, C, H, W] -> back.
template <typename Fn>
at::Tensor PerFrame(const at::Tensor& x, Fn&& fn) {
  const auto b = x.size(0), t = x.size(2);
  const auto frames = x.permute({0, 2, 1, 3, 4}).reshape({b * t, x.size(1), x.size(3), x.size(4)});
  const auto out = fn(frames);
  return out.reshape({b, t, out.size(1), out.size(2), out.size(3)}).permute({0, 2, 1, 3, 4});
}

// Applies a ModuleList entry that is either a residual block, an attention block, a resampler or a plain module.
at::Tensor ApplyStage(const std::shared_ptr<torch::nn::Module>& stage, const at::Tensor& x, CausalCache* cache) {
  if (auto* block = stage->as<VaeResidualBlock>()) return block->forward(x, cache);
  if (auto* attention = stage->as<VaeAttentionBlock>()) return attention->forward(x);
  if (auto* resample = stage->as<VaeResample>()) return resample->forward(x, cache);
  TORCH_CHECK(false, "unexpected VAE stage ", stage->name());
}

// RMS norm, SiLU, causal conv: the heads of encoder and decoder.
at::Tensor ApplyHead(torch::nn::ModuleListImpl& head, const at::Tensor& x, CausalCache* cache) {
  const auto h = torch::silu(head[0]->as<VaeRmsNorm>()->forward(x));
  return CachedCausalConv(*head[2]->as<CausalConv3d>(), h, cache);
}

}  // namespace

WanVaeConfig InferWanVaeConfig(const io::WeightStore& weights) {
  WanVaeConfig config;
  const auto& conv_in = weights.Get("encoder.conv1.weight");
  const auto& post_quant = weights.Get("conv2.weight");
  if (conv_in.dim() != 5 || post_quant.dim() != 5) {
    Fail(ErrorCode::kInvalidArgument, "Wan VAE weights: encoder.conv1 and conv2 must be 3D convolutions");
  }
  config.dim = conv_in.size(0);
  config.z_dim = post_quant.size(0);
  return config;
}

CausalSlot& CausalCache::Next() {
  if (next_ == slots_.size()) slots_.emplace_back();
  return slots_[next_++];
}

CausalConv3dImpl::CausalConv3dImpl(const CausalConv3dOptions& options)
    : stride(options.stride), padding(options.padding) {
  const auto& k = options.kernel;
  weight = register_parameter("weight", layers::NewParameter({options.out, options.in, k[0], k[1], k[2]}, 0.0));
  bias = register_parameter("bias", layers::NewParameter({options.out}, 0.0));
  if (!layers::DeferredInit::active()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

at::Tensor CausalConv3dImpl::forward(const at::Tensor& x, const at::Tensor& history) {
  auto input = x;
  std::int64_t front = 2 * padding[0];
  if (history.defined() && front > 0) {
    input = torch::cat({history.to(x.device()), x}, 2);
    front -= history.size(2);
  }
  input = torch::constant_pad_nd(input, {padding[2], padding[2], padding[1], padding[1], front, 0});
  return torch::conv3d(input, weight, bias, {stride[0], stride[1], stride[2]});
}

at::Tensor CachedCausalConv(CausalConv3dImpl& conv, const at::Tensor& x, CausalCache* cache) {
  if (!cache) return conv.forward(x);
  CausalSlot& slot = cache->Next();
  auto keep = x.slice(2, std::max<std::int64_t>(0, x.size(2) - kCacheFrames)).clone();
  const bool has_frames = slot.kind == CausalSlot::Kind::kFrames;
  if (keep.size(2) < kCacheFrames && has_frames) keep = torch::cat({slot.frames.slice(2, -1), keep}, 2);
  auto out = conv.forward(x, has_frames ? slot.frames : at::Tensor());
  slot = {CausalSlot::Kind::kFrames, keep};
  return out;
}

VaeRmsNormImpl::VaeRmsNormImpl(std::int64_t dim, bool images) {
  gamma = register_parameter("gamma", images ? layers::NewParameter({dim, 1, 1}, 1.0)
                                                : layers::NewParameter({dim, 1, 1, 1}, 1.0));
}

at::Tensor VaeRmsNormImpl::forward(const at::Tensor& x) {
  const double scale = std::sqrt(static_cast<double>(x.size(1)));
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1)) * scale * gamma;
}

VaeResidualBlockImpl::VaeResidualBlockImpl(std::int64_t in, std::int64_t out) {
  residual = register_module(
      "residual", torch::nn::Sequential(VaeRmsNorm(in, /*images=*/false), torch::nn::SiLU(),
                                        CausalConv3d(CausalConv3dOptions{in, out, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}}),
                                        VaeRmsNorm(out, /*images=*/false), torch::nn::SiLU(), torch::nn::Dropout(0.0),
                                        CausalConv3d(CausalConv3dOptions{out, out, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}})));
  if (in != out)
    shortcut = register_module("shortcut", CausalConv3d(CausalConv3dOptions{in, out, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}}));
}

at::Tensor VaeResidualBlockImpl::forward(const at::Tensor& x, CausalCache* cache) {
  const auto h = shortcut ? shortcut(x) : x;
  auto y = torch::silu(residual[0]->as<VaeRmsNorm>()->forward(x));
  y = CachedCausalConv(*residual[2]->as<CausalConv3d>(), y, cache);
  y = torch::silu(residual[3]->as<VaeRmsNorm>()->forward(y));
  y = CachedCausalConv(*residual[6]->as<CausalConv3d>(), y, cache);
  return y + h;
}

VaeAttentionBlockImpl::VaeAttentionBlockImpl(std::int64_t dim) {
  norm = register_module("norm", VaeRmsNorm(dim, /*images=*/true));
  to_qkv = register_module("to_qkv", layers::Conv2d(torch::nn::Conv2dOptions(dim, 3 * dim, 1)));
  proj = register_module("proj", layers::Conv2d(torch::nn::Conv2dOptions(dim, dim, 1)));
}

at::Tensor VaeAttentionBlockImpl::forward(const at::Tensor& x) {
  return x + PerFrame(x, [&](const at::Tensor& frames) {
           const auto n = frames.size(0), c = frames.size(1), h = frames.size(2), w = frames.size(3);
           const auto qkv = to_qkv(norm(frames)).reshape({n, 3 * c, h * w}).transpose(1, 2).chunk(3, -1);
           const auto scores = torch::matmul(qkv[0], qkv[1].transpose(1, 2)) / std::sqrt(static_cast<double>(c));
           const auto out = torch::matmul(torch::softmax(scores, -1), qkv[2]);  // [n, hw, c]
           return proj(out.transpose(1, 2).reshape({n, c, h, w}));
         });
}

VaeResampleImpl::VaeResampleImpl(std::int64_t dim, Mode mode) : mode(mode) {
  const bool up = mode == Mode::kUpsample2d || mode == Mode::kUpsample3d;
  if (up) {
    resample = register_module(
        "resample", torch::nn::Sequential(torch::nn::Identity(),
                                          layers::Conv2d(torch::nn::Conv2dOptions(dim, dim / 2, 3).padding(1))));
  } else {
    resample = register_module(
        "resample", torch::nn::Sequential(torch::nn::Identity(),
                                          layers::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).stride(2))));
  }
  if (mode == Mode::kUpsample3d) {
    time_conv =
        register_module("time_conv", CausalConv3d(CausalConv3dOptions{dim, 2 * dim, {3, 1, 1}, {1, 1, 1}, {1, 0, 0}}));
  } else if (mode == Mode::kDownsample3d) {
    time_conv =
        register_module("time_conv", CausalConv3d(CausalConv3dOptions{dim, dim, {3, 1, 1}, {2, 1, 1}, {0, 0, 0}}));
  }
}

at::Tensor VaeResampleImpl::forward(const at::Tensor& input, CausalCache* cache) {
  auto x = input;
  if (mode == Mode::kUpsample3d && cache) {
    // The first chunk only marks its slot; later chunks double their frames through time_conv.
    CausalSlot& slot = cache->Next();
    if (slot.kind == CausalSlot::Kind::kEmpty) {
      slot.kind = CausalSlot::Kind::kRep;
    } else {
      auto keep = x.slice(2, std::max<std::int64_t>(0, x.size(2) - kCacheFrames)).clone();
      if (keep.size(2) < kCacheFrames) {
        keep = torch::cat(
            {slot.kind == CausalSlot::Kind::kRep ? torch::zeros_like(keep) : slot.frames.slice(2, -1), keep}, 2);
      }
      x = time_conv(x, slot.kind == CausalSlot::Kind::kRep ? at::Tensor() : slot.frames);
      slot = {CausalSlot::Kind::kFrames, keep};
      const auto b = x.size(0), c = x.size(1) / 2, t = x.size(2), h = x.size(3), w = x.size(4);
      // Channels hold two frames per input frame: interleave them in time.
      x = x.reshape({b, 2, c, t, h, w}).permute({0, 2, 3, 1, 4, 5}).reshape({b, c, 2 * t, h, w});
    }
  }

  auto& conv = *resample[1]->as<torch::nn::Conv2d>();  // resample.1, after the upsample or zero pad at .0
  x = PerFrame(x, [&](const at::Tensor& frames) {
    if (mode == Mode::kUpsample2d || mode == Mode::kUpsample3d) {
      const auto up = torch::upsample_nearest2d(frames.to(torch::kFloat), {frames.size(2) * 2, frames.size(3) * 2})
                          .to(frames.scalar_type());
      return conv.forward(up);
    }
    return conv.forward(torch::constant_pad_nd(frames, {0, 1, 0, 1}));
  });

  if (mode == Mode::kDownsample3d && cache) {
    // The first chunk is kept whole and passes; later ones convolve with the last frame before them.
    CausalSlot& slot = cache->Next();
    if (slot.kind == CausalSlot::Kind::kEmpty) {
      slot = {CausalSlot::Kind::kFrames, x.clone()};
    } else {
      const auto keep = x.slice(2, -1).clone();
      x = time_conv(torch::cat({slot.frames.slice(2, -1), x}, 2));
      slot = {CausalSlot::Kind::kFrames, keep};
    }
  }
  return x;
}

VaeEncoderImpl::VaeEncoderImpl(const WanVaeConfig& config) {
  std::vector<std::int64_t> dims = {config.dim};
  for (const auto m : config.dim_mult) dims.push_back(config.dim * m);
  conv1 = register_module("conv1", CausalConv3d(CausalConv3dOptions{3, dims[0], {3, 3, 3}, {1, 1, 1}, {1, 1, 1}}));
  downsamples = register_module("downsamples", torch::nn::ModuleList());
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    std::int64_t in = dims[i];
    for (std::int64_t r = 0; r < config.num_res_blocks; ++r) {
      downsamples->push_back(VaeResidualBlock(in, dims[i + 1]));
      in = dims[i + 1];
    }
    if (i + 2 < dims.size()) {
      downsamples->push_back(VaeResample(dims[i + 1], config.temporal_downsample[i]
                                                          ? VaeResampleImpl::Mode::kDownsample3d
                                                          : VaeResampleImpl::Mode::kDownsample2d));
    }
  }
  const std::int64_t out = dims.back();
  middle = register_module(
      "middle", torch::nn::ModuleList(VaeResidualBlock(out, out), VaeAttentionBlock(out), VaeResidualBlock(out, out)));
  head = register_module(
      "head",
      torch::nn::ModuleList(VaeRmsNorm(out, /*images=*/false), torch::nn::SiLU(),
                            CausalConv3d(CausalConv3dOptions{out, 2 * config.z_dim, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}})));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& input, CausalCache* cache) {
  auto x = CachedCausalConv(*conv1, input, cache);
  for (const auto& stage : *downsamples) x = ApplyStage(stage, x, cache);
  for (const auto& stage : *middle) x = ApplyStage(stage, x, cache);
  return ApplyHead(*head, x, cache);
}

VaeDecoderImpl::VaeDecoderImpl(const WanVaeConfig& config) {
  std::vector<std::int64_t> dims = {config.dim * config.dim_mult.back()};
  for (auto it = config.dim_mult.rbegin(); it != config.dim_mult.rend(); ++it) dims.push_back(config.dim * *it);
  const std::vector<bool> temporal_upsample(config.temporal_downsample.rbegin(), config.temporal_downsample.rend());
  conv1 = register_module("conv1",
                          CausalConv3d(CausalConv3dOptions{config.z_dim, dims[0], {3, 3, 3}, {1, 1, 1}, {1, 1, 1}}));
  middle =
      register_module("middle", torch::nn::ModuleList(VaeResidualBlock(dims[0], dims[0]), VaeAttentionBlock(dims[0]),
                                                      VaeResidualBlock(dims[0], dims[0])));
  upsamples = register_module("upsamples", torch::nn::ModuleList());
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
    // Every upsampler halves the channels, so the stages after the first start from half width.
    std::int64_t in = i == 0 ? dims[i] : dims[i] / 2;
    for (std::int64_t r = 0; r <= config.num_res_blocks; ++r) {
      upsamples->push_back(VaeResidualBlock(in, dims[i + 1]));
      in = dims[i + 1];
    }
    if (i + 2 < dims.size()) {
      upsamples->push_back(VaeResample(
          dims[i + 1], temporal_upsample[i] ? VaeResampleImpl::Mode::kUpsample3d : VaeResampleImpl::Mode::kUpsample2d));
    }
  }
  head = register_module(
      "head",
      torch::nn::ModuleList(VaeRmsNorm(dims.back(), /*images=*/false), torch::nn::SiLU(),
                            CausalConv3d(CausalConv3dOptions{dims.back(), 3, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}})));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z, CausalCache* cache) {
  auto x = CachedCausalConv(*conv1, z, cache);
  for (const auto& stage : *middle) x = ApplyStage(stage, x, cache);
  for (const auto& stage : *upsamples) x = ApplyStage(stage, x, cache);
  return ApplyHead(*head, x, cache);
}

WanVaeImpl::WanVaeImpl(const WanVaeConfig& config) : config_(config) {
  encoder = register_module("encoder", VaeEncoder(config));
  conv1 = register_module(
      "conv1", CausalConv3d(CausalConv3dOptions{2 * config.z_dim, 2 * config.z_dim, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}}));
  conv2 = register_module(
      "conv2", CausalConv3d(CausalConv3dOptions{config.z_dim, config.z_dim, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}}));
  decoder = register_module("decoder", VaeDecoder(config));
  if (config.z_dim != static_cast<std::int64_t>(kLatentMean.size())) {
    Fail(ErrorCode::kInvalidArgument, "Wan VAE with {} latent channels: the normalisation constants are for {}",
         config.z_dim, kLatentMean.size());
  }
  mean_ = torch::tensor(std::vector<float>(kLatentMean.begin(), kLatentMean.end()));
  inverse_std_ = 1.0f / torch::tensor(std::vector<float>(kLatentStd.begin(), kLatentStd.end()));
}

at::Tensor WanVaeImpl::Encode(const at::Tensor& video) {
  return EncodeMoments(video).first;
}

std::pair<at::Tensor, at::Tensor> WanVaeImpl::EncodeMoments(const at::Tensor& video) {
  TORCH_CHECK(video.dim() == 5 && video.size(1) == 3 && (video.size(2) - 1) % 4 == 0,
              "WanVae::Encode expects [B, 3, 1+4k, H, W], got ", video.sizes());
  CausalCache cache;
  std::vector<at::Tensor> chunks;
  const std::int64_t frames = video.size(2);
  for (std::int64_t start = 0; start < frames; start = start == 0 ? 1 : start + 4) {
    cache.BeginChunk();
    chunks.push_back(encoder(video.slice(2, start, start == 0 ? 1 : start + 4), &cache));
  }
  const auto moments = conv1(torch::cat(chunks, 2)).chunk(2, 1);
  const auto shape = std::vector<std::int64_t>{1, config_.z_dim, 1, 1, 1};
  const auto inverse_std = inverse_std_.to(video.device()).view(shape);
  // Normalising x by (x − mean)/std scales the variance by 1/std².
  return {(moments[0] - mean_.to(video.device()).view(shape)) * inverse_std,
          moments[1] + 2 * torch::log(inverse_std)};
}

at::Tensor WanVaeImpl::Decode(const at::Tensor& latent, bool clamp) {
  TORCH_CHECK(latent.dim() == 5 && latent.size(1) == config_.z_dim, "WanVae::Decode expects [B, ", config_.z_dim,
              ", T, h, w], got ", latent.sizes());
  const auto shape = std::vector<std::int64_t>{1, config_.z_dim, 1, 1, 1};
  const auto z = latent / inverse_std_.to(latent.device()).view(shape) + mean_.to(latent.device()).view(shape);
  const auto x = conv2(z);
  CausalCache cache;
  std::vector<at::Tensor> frames;
  for (std::int64_t t = 0; t < x.size(2); ++t) {
    cache.BeginChunk();
    frames.push_back(decoder(x.slice(2, t, t + 1), &cache));
  }
  auto video = torch::cat(frames, 2);
  return clamp ? video.clamp_(-1, 1) : video;
}

}  // namespace vidgen::wan
