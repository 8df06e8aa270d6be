#include "models/hunyuan/vae.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/io/weight_store.h"
#include "models/layers/attention.h"
#include "models/layers/deferred.h"

namespace vidgen::hunyuan {
namespace {

constexpr double kEps = 1e-6;

torch::nn::GroupNorm Norm(std::int64_t groups, std::int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kEps));
}

// Blends the first `extent` entries of `b` along `dim` from the last ones of `a`, in place, as the reference's
// blend_t / blend_v / blend_h.
void Blend(const at::Tensor& a, at::Tensor& b, std::int64_t dim, std::int64_t extent) {
  extent = std::min({extent, a.size(dim), b.size(dim)});
  for (std::int64_t x = 0; x < extent; ++x) {
    const double w = static_cast<double>(x) / static_cast<double>(extent);
    b.select(dim, x).copy_(a.select(dim, a.size(dim) - extent + x) * (1 - w) + b.select(dim, x) * w);
  }
}

// "downsamplers.0" / "upsamplers.0": a module whose one child "conv" is the causal convolution.
std::shared_ptr<torch::nn::Module> Sampler(CausalConv conv) {
  auto sampler = std::make_shared<torch::nn::Module>();
  sampler->register_module("conv", std::move(conv));
  return sampler;
}

CausalConvImpl* SamplerConv(torch::nn::Module& samplers) {
  return samplers.as<torch::nn::ModuleList>()->ptr(0)->named_children()["conv"]->as<CausalConv>();
}

}  // namespace

bool HunyuanVaeConfig::SpatialResample(std::int64_t block) const {
  return block < static_cast<std::int64_t>(std::log2(static_cast<double>(spatial_compression)));
}

bool HunyuanVaeConfig::TimeResample(std::int64_t block) const {
  const auto blocks = static_cast<std::int64_t>(block_out_channels.size());
  return block != blocks - 1 && block >= blocks - 1 - static_cast<std::int64_t>(std::log2(double(time_compression)));
}

void HunyuanVaeConfig::Validate() const {
  const auto blocks = static_cast<std::int64_t>(block_out_channels.size());
  if (blocks < 2 || blocks > 8) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: block_out_channels needs 2 to 8 entries, has {}", blocks);
  }
  for (const auto channels : block_out_channels) {
    if (norm_num_groups < 1 || channels < 1 || channels % norm_num_groups != 0) {
      Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: {} channels do not divide into {} groups", channels,
           norm_num_groups);
    }
  }
  if (time_compression != 4) {  // the only ratio the reference builds
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: time_compression_ratio {} is not supported (only 4)",
         time_compression);
  }
  const bool power_of_two = spatial_compression >= 2 && (spatial_compression & (spatial_compression - 1)) == 0;
  if (!power_of_two || spatial_compression > (std::int64_t{1} << blocks)) {
    Fail(ErrorCode::kInvalidArgument,
         "HunyuanVideo VAE: spatial_compression_ratio {} is not a power of 2 that {} blocks can reach",
         spatial_compression, blocks);
  }
  if (layers_per_block < 1 || layers_per_block > 16 || latent_channels < 1 || !(scaling_factor > 0)) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: layers_per_block, latent_channels, scaling_factor must be "
         "positive");
  }
  if (sample_size < (std::int64_t{1} << (blocks - 1)) || sample_tsize < time_compression) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: tile sizes sample_size {} and sample_tsize {} are too small",
         sample_size, sample_tsize);
  }
}

HunyuanVaeConfig ReadHunyuanVaeConfig(const std::string& path) {
  const io::JsonConfig file(path, "HunyuanVideo VAE config");
  const auto read = [&](const char* key, auto& field) { file.Read(key, field); };
  HunyuanVaeConfig config;
  read("in_channels", config.in_channels);
  read("out_channels", config.out_channels);
  read("latent_channels", config.latent_channels);
  read("block_out_channels", config.block_out_channels);
  read("layers_per_block", config.layers_per_block);
  read("norm_num_groups", config.norm_num_groups);
  read("time_compression_ratio", config.time_compression);
  read("spatial_compression_ratio", config.spatial_compression);
  read("scaling_factor", config.scaling_factor);
  read("sample_tsize", config.sample_tsize);
  // The reference tiles squares: a [h, w] sample_size uses its first entry.
  if (const auto& json = file.json(); json.contains("sample_size") && json.at("sample_size").is_array()) {
    std::vector<std::int64_t> sizes;
    read("sample_size", sizes);
    if (sizes.empty()) Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE config '{}': sample_size is empty", path);
    config.sample_size = sizes.front();
  } else {
    read("sample_size", config.sample_size);
  }
  config.Validate();
  return config;
}

CausalConvImpl::CausalConvImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::array<std::int64_t, 3> stride)
    : kernel(kernel) {
  conv = register_module(
      "conv", layers::Conv3d(torch::nn::Conv3dOptions(in, out, kernel).stride({stride[0], stride[1], stride[2]})));
}

at::Tensor CausalConvImpl::forward(const at::Tensor& x) {
  if (kernel == 1) return conv(x);
  const std::int64_t half = kernel / 2;
  return conv(torch::nn::functional::pad(
      x, torch::nn::functional::PadFuncOptions({half, half, half, half, kernel - 1, 0}).mode(torch::kReplicate)));
}

ResnetBlockImpl::ResnetBlockImpl(std::int64_t in, std::int64_t out, std::int64_t groups) {
  norm1 = register_module("norm1", Norm(groups, in));
  conv1 = register_module("conv1", CausalConv(in, out, 3));
  norm2 = register_module("norm2", Norm(groups, out));
  conv2 = register_module("conv2", CausalConv(out, out, 3));
  if (in != out) conv_shortcut = register_module("conv_shortcut", CausalConv(in, out, 1));
}

at::Tensor ResnetBlockImpl::forward(const at::Tensor& x) {
  auto h = conv1(torch::silu(norm1(x)));
  h = conv2(torch::silu(norm2(h)));
  return (conv_shortcut ? conv_shortcut(x) : x) + h;
}

MidAttentionImpl::MidAttentionImpl(std::int64_t channels, std::int64_t groups) {
  group_norm = register_module("group_norm", Norm(groups, channels));
  to_q = register_module("to_q", layers::Linear(channels, channels));
  to_k = register_module("to_k", layers::Linear(channels, channels));
  to_v = register_module("to_v", layers::Linear(channels, channels));
  auto out = register_module("to_out", torch::nn::ModuleList());
  to_out = layers::Linear(channels, channels);
  out->push_back(to_out);
}

at::Tensor MidAttentionImpl::forward(const at::Tensor& x) {
  const std::int64_t batch = x.size(0), channels = x.size(1), frames = x.size(2), hw = x.size(3) * x.size(4);
  const auto tokens = group_norm(x.flatten(2)).transpose(1, 2);  // [B, T·H·W, C]
  const auto q = to_q(tokens).unsqueeze(2), k = to_k(tokens).unsqueeze(2), v = to_v(tokens).unsqueeze(2);
  // Frame-causal: the tokens of frame f see frames 0..f, i.e. the first (f+1)·h·w keys. One call per frame.
  std::vector<at::Tensor> outs;
  for (std::int64_t f = 0; f < frames; ++f) {
    outs.push_back(layers::Attention(q.slice(1, f * hw, (f + 1) * hw), k.slice(1, 0, (f + 1) * hw),
                                     v.slice(1, 0, (f + 1) * hw)));
  }
  const auto attended = to_out(torch::cat(outs, 1).squeeze(2));
  return x + attended.transpose(1, 2).reshape({batch, channels, frames, x.size(3), x.size(4)});
}

MidBlockImpl::MidBlockImpl(std::int64_t channels, std::int64_t groups) {
  resnets = register_module("resnets", torch::nn::ModuleList(ResnetBlock(channels, channels, groups),
                                                              ResnetBlock(channels, channels, groups)));
  attentions = register_module("attentions", torch::nn::ModuleList(MidAttention(channels, groups)));
}

at::Tensor MidBlockImpl::forward(const at::Tensor& x) {
  auto h = resnets[0]->as<ResnetBlock>()->forward(x);
  h = attentions[0]->as<MidAttention>()->forward(h);
  return resnets[1]->as<ResnetBlock>()->forward(h);
}

HunyuanVaeEncoderImpl::HunyuanVaeEncoderImpl(const HunyuanVaeConfig& config) {
  const auto& channels = config.block_out_channels;
  const std::int64_t blocks = static_cast<std::int64_t>(channels.size()), groups = config.norm_num_groups;
  conv_in = register_module("conv_in", CausalConv(config.in_channels, channels[0], 3));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  std::int64_t previous = channels[0];
  for (std::int64_t i = 0; i < blocks; ++i) {
    auto block = std::make_shared<torch::nn::Module>();
    auto resnets = block->register_module("resnets", torch::nn::ModuleList());
    for (std::int64_t j = 0; j < config.layers_per_block; ++j) {
      resnets->push_back(ResnetBlock(j == 0 ? previous : channels[i], channels[i], groups));
    }
    const std::int64_t time = config.TimeResample(i) ? 2 : 1, space = config.SpatialResample(i) ? 2 : 1;
    if (time > 1 || space > 1) {
      block->register_module("downsamplers", torch::nn::ModuleList(Sampler(CausalConv(
                                                 channels[i], channels[i], 3, std::array<std::int64_t, 3>{time, space, space}))));
    }
    down_blocks->push_back(block);
    previous = channels[i];
  }
  mid_block = register_module("mid_block", MidBlock(channels.back(), groups));
  conv_norm_out = register_module("conv_norm_out", Norm(groups, channels.back()));
  conv_out = register_module("conv_out", CausalConv(channels.back(), 2 * config.latent_channels, 3));
}

at::Tensor HunyuanVaeEncoderImpl::forward(const at::Tensor& video) {
  auto h = conv_in(video);
  for (const auto& block : *down_blocks) {
    for (const auto& resnet : *block->named_children()["resnets"]->as<torch::nn::ModuleList>()) {
      h = resnet->as<ResnetBlock>()->forward(h);
    }
    if (auto downsamplers = block->named_children().find("downsamplers")) {
      h = SamplerConv(**downsamplers)->forward(h);
    }
  }
  h = mid_block(h);
  return conv_out(torch::silu(conv_norm_out(h)));
}

HunyuanVaeDecoderImpl::HunyuanVaeDecoderImpl(const HunyuanVaeConfig& config) {
  std::vector<std::int64_t> channels(config.block_out_channels.rbegin(), config.block_out_channels.rend());
  const std::int64_t blocks = static_cast<std::int64_t>(channels.size()), groups = config.norm_num_groups;
  conv_in = register_module("conv_in", CausalConv(config.latent_channels, channels[0], 3));
  mid_block = register_module("mid_block", MidBlock(channels[0], groups));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  std::int64_t previous = channels[0];
  for (std::int64_t i = 0; i < blocks; ++i) {
    auto block = std::make_shared<torch::nn::Module>();
    auto resnets = block->register_module("resnets", torch::nn::ModuleList());
    for (std::int64_t j = 0; j <= config.layers_per_block; ++j) {
      resnets->push_back(ResnetBlock(j == 0 ? previous : channels[i], channels[i], groups));
    }
    const std::int64_t time = config.TimeResample(i) ? 2 : 1, space = config.SpatialResample(i) ? 2 : 1;
    if (time > 1 || space > 1) {
      block->register_module("upsamplers", torch::nn::ModuleList(Sampler(CausalConv(channels[i], channels[i], 3))));
      upsample.push_back({time, space, space});
    } else {
      upsample.push_back({0, 0, 0});
    }
    up_blocks->push_back(block);
    previous = channels[i];
  }
  conv_norm_out = register_module("conv_norm_out", Norm(groups, channels.back()));
  conv_out = register_module("conv_out", CausalConv(channels.back(), config.out_channels, 3));
}

at::Tensor HunyuanVaeDecoderImpl::forward(const at::Tensor& z) {
  auto h = mid_block(conv_in(z));
  for (std::size_t i = 0; i < up_blocks->size(); ++i) {
    const auto& block = up_blocks[i];
    for (const auto& resnet : *block->named_children()["resnets"]->as<torch::nn::ModuleList>()) {
      h = resnet->as<ResnetBlock>()->forward(h);
    }
    const auto [ft, fh, fw] = upsample[i];
    if (ft == 0) continue;
    // Nearest upsampling; with a temporal factor the first frame is upsampled in space only (T' = 1 + 2(T − 1)).
    namespace F = torch::nn::functional;
    const auto first = F::interpolate(h.slice(2, 0, 1), F::InterpolateFuncOptions()
                                                            .scale_factor(std::vector<double>{1.0, double(fh), double(fw)})
                                                            .mode(torch::kNearest));
    if (h.size(2) > 1) {
      const auto rest = F::interpolate(h.slice(2, 1), F::InterpolateFuncOptions()
                                                          .scale_factor(std::vector<double>{double(ft), double(fh), double(fw)})
                                                          .mode(torch::kNearest));
      h = torch::cat({first, rest}, 2);
    } else {
      h = first;
    }
    h = SamplerConv(*block->named_children()["upsamplers"])->forward(h);
  }
  return conv_out(torch::silu(conv_norm_out(h)));
}

HunyuanVaeImpl::HunyuanVaeImpl(const HunyuanVaeConfig& config) : config_(config) {
  config_.Validate();
  encoder = register_module("encoder", HunyuanVaeEncoder(config));
  decoder = register_module("decoder", HunyuanVaeDecoder(config));
  const std::int64_t latent = config.latent_channels;
  quant_conv = register_module("quant_conv", layers::Conv3d(torch::nn::Conv3dOptions(2 * latent, 2 * latent, 1)));
  post_quant_conv = register_module("post_quant_conv", layers::Conv3d(torch::nn::Conv3dOptions(latent, latent, 1)));
}

std::pair<at::Tensor, at::Tensor> HunyuanVaeImpl::Posterior(const at::Tensor& video) {
  torch::NoGradGuard no_grad;
  const std::int64_t s = config_.spatial_compression;
  if (video.dim() != 5 || video.size(1) != config_.in_channels || (video.size(2) - 1) % config_.time_compression != 0 ||
      video.size(3) % s != 0 || video.size(4) % s != 0) {
    Fail(ErrorCode::kInvalidArgument,
         "HunyuanVideo VAE: cannot encode a video of shape [{}]: expected [B, {}, 1+{}k, {}h, {}w]",
         fmt::join(video.sizes(), ", "), config_.in_channels, config_.time_compression, s, s);
  }
  const auto moments = quant_conv(encoder(video.to(torch::kFloat))).chunk(2, 1);
  return {moments[0], moments[1].clamp(-30.0, 20.0)};
}

at::Tensor HunyuanVaeImpl::Encode(const at::Tensor& video) {
  return Posterior(video).first * config_.scaling_factor;
}

std::int64_t HunyuanVaeImpl::LatentTileSize() const {
  return config_.sample_size / (std::int64_t{1} << (config_.block_out_channels.size() - 1));
}

at::Tensor HunyuanVaeImpl::DecodeOne(const at::Tensor& z, const HunyuanVaeTiling& tiling) {
  if (tiling.enabled && (z.size(3) > LatentTileSize() || z.size(4) > LatentTileSize())) {
    return DecodeSpatialTiles(z, tiling);
  }
  return decoder(post_quant_conv(z));
}

at::Tensor HunyuanVaeImpl::DecodeSpatialTiles(const at::Tensor& z, const HunyuanVaeTiling& tiling) {
  const std::int64_t size = LatentTileSize();
  const auto stride = static_cast<std::int64_t>(static_cast<double>(size) * (1 - tiling.overlap));
  const auto blend = static_cast<std::int64_t>(static_cast<double>(config_.sample_size) * tiling.overlap);
  const std::int64_t limit = config_.sample_size - blend;
  std::vector<std::vector<at::Tensor>> rows;
  for (std::int64_t i = 0; i < z.size(3); i += stride) {
    rows.emplace_back();
    for (std::int64_t j = 0; j < z.size(4); j += stride) {
      rows.back().push_back(decoder(post_quant_conv(z.slice(3, i, i + size).slice(4, j, j + size))));
    }
  }
  std::vector<at::Tensor> result_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::vector<at::Tensor> row;
    for (std::size_t j = 0; j < rows[i].size(); ++j) {
      auto& tile = rows[i][j];
      if (i > 0) Blend(rows[i - 1][j], tile, 3, blend);
      if (j > 0) Blend(rows[i][j - 1], tile, 4, blend);
      row.push_back(tile.slice(3, 0, limit).slice(4, 0, limit));
    }
    result_rows.push_back(torch::cat(row, 4));
  }
  return torch::cat(result_rows, 3);
}

at::Tensor HunyuanVaeImpl::Decode(const at::Tensor& latents, const HunyuanVaeTiling& tiling) {
  torch::NoGradGuard no_grad;
  if (latents.dim() != 5 || latents.size(1) != config_.latent_channels) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo VAE: cannot decode latents of shape [{}]: expected [B, {}, t, h, w]",
         fmt::join(latents.sizes(), ", "), config_.latent_channels);
  }
  const auto z = latents.to(torch::kFloat) / config_.scaling_factor;
  at::Tensor video;
  if (tiling.enabled && z.size(2) > LatentTileFrames()) {
    // Temporal tiles of latent_frames + 1 latent frames; each after the first drops its first decoded frame.
    const std::int64_t frames = LatentTileFrames();
    const auto stride = static_cast<std::int64_t>(static_cast<double>(frames) * (1 - tiling.overlap));
    const auto blend = static_cast<std::int64_t>(static_cast<double>(config_.sample_tsize) * tiling.overlap);
    const std::int64_t limit = config_.sample_tsize - blend;
    std::vector<at::Tensor> tiles;
    for (std::int64_t i = 0; i < z.size(2); i += stride) {
      auto decoded = DecodeOne(z.slice(2, i, i + frames + 1), tiling);
      tiles.push_back(i > 0 ? decoded.slice(2, 1).clone() : decoded);
    }
    std::vector<at::Tensor> kept;
    for (std::size_t i = 0; i < tiles.size(); ++i) {
      if (i > 0) Blend(tiles[i - 1], tiles[i], 2, blend);
      kept.push_back(tiles[i].slice(2, 0, i > 0 ? limit : limit + 1));
    }
    video = torch::cat(kept, 2);
  } else {
    video = DecodeOne(z, tiling);
  }
  return video;
}

HunyuanVae LoadHunyuanVae(const std::string& dir, c10::Device device) {
  namespace fs = std::filesystem;
  const auto config_path = fs::path(dir) / "config.json";
  const auto config = fs::exists(config_path) ? ReadHunyuanVaeConfig(config_path.string()) : HunyuanVaeConfig();
  HunyuanVae vae(nullptr);
  {
    layers::DeferredInit deferred;
    vae = HunyuanVae(config);
  }
  io::WeightStore store;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto extension = entry.path().extension();
    if (extension == ".pt" || extension == ".pth" || extension == ".safetensors") store.AddFile(entry.path().string());
  }
  if (store.size() == 0) Fail(ErrorCode::kNotFound, "no VAE weights in '{}'", dir);
  // As the reference's load_vae: the "state_dict" entry when there is one; then, when any name starts with "vae.",
  // only those names, without it.
  auto any_under = [&](std::string_view prefix) {
    const auto names = store.Names();
    return std::any_of(names.begin(), names.end(), [&](const std::string& name) { return name.starts_with(prefix); });
  };
  if (any_under("state_dict.")) store.SelectPrefix("state_dict.");
  if (any_under("vae.")) store.SelectPrefix("vae.");
  store.LoadInto(*vae, {.allow_unexpected = false, .what = "the HunyuanVideo VAE", .device = device});
  vae->eval();
  return vae;
}

}  // namespace vidgen::hunyuan
