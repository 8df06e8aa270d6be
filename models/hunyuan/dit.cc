#include "models/hunyuan/dit.h"

#include <torch/torch.h>

#include "common/error.h"
#include "models/dit/attention.h"
#include "models/dit/rope.h"
#include "models/layers/attention.h"
#include "models/layers/deferred.h"

namespace vidgen::hunyuan {
namespace {

constexpr double kEps = 1e-6;
constexpr std::int64_t kFrequencyDim = 256;  // of the timestep sinusoid

// x·(1 + scale) + shift, with x normalised in fp32 and the modulation [B, 1, D].
at::Tensor Modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return layers::ModulatedLayerNorm(x, shift, scale, kEps);
}

// count modulation vectors [B, 1, D] from one projection [B, count·D].
std::vector<at::Tensor> Modulations(dit::SiluLinear& projection, const at::Tensor& vec, std::int64_t count) {
  return projection(vec).unsqueeze(1).chunk(count, -1);
}

// [B, L, 3·H·d] -> q, k, v [B, L, H, d] ("B L (K H D) -> K B L H D").
std::array<at::Tensor, 3> SplitQkv(const at::Tensor& qkv, std::int64_t heads) {
  const auto parts = qkv.view({qkv.size(0), qkv.size(1), 3, heads, -1}).unbind(2);
  return {parts[0], parts[1], parts[2]};
}

}  // namespace

TimestepEmbedderImpl::TimestepEmbedderImpl(std::int64_t hidden) {
  mlp = register_module("mlp", dit::Mlp(dit::MlpOptions(kFrequencyDim, hidden, hidden, dit::Activation::kSilu)));
}

at::Tensor TimestepEmbedderImpl::forward(const at::Tensor& t) {
  return mlp(dit::TimestepSinusoid(t, kFrequencyDim, torch::kFloat));
}

RefinerBlockImpl::RefinerBlockImpl(const HunyuanDitConfig& config) : heads(config.heads_num) {
  const std::int64_t d = config.hidden_size;
  norm1 = register_module("norm1", layers::AffineLayerNorm(d, kEps));
  self_attn_qkv = register_module("self_attn_qkv", layers::Linear(d, 3 * d));
  self_attn_proj = register_module("self_attn_proj", layers::Linear(d, d));
  norm2 = register_module("norm2", layers::AffineLayerNorm(d, kEps));
  mlp = register_module("mlp",
                        dit::Mlp(dit::MlpOptions(d, config.mlp_hidden(), d, dit::Activation::kSilu, "fc1", "fc2")));
  adaLN_modulation = register_module("adaLN_modulation", dit::SiluLinear(d, 2 * d, "1"));
}

at::Tensor RefinerBlockImpl::forward(const at::Tensor& x, const at::Tensor& c, const std::vector<std::int64_t>& valid) {
  const auto gates = adaLN_modulation(c).unsqueeze(1).chunk(2, -1);
  const auto [q, k, v] = SplitQkv(layers::Project(self_attn_qkv, norm1(x)), heads);
  // The reference's mask lets real tokens see the real tokens, and a padded token see only the first one.
  std::vector<at::Tensor> outs;
  for (std::int64_t b = 0; b < x.size(0); ++b) {
    const std::int64_t n = valid[static_cast<std::size_t>(b)];
    auto rows = [&](const at::Tensor& t, std::int64_t from, std::int64_t to) {
      return t.slice(0, b, b + 1).slice(1, from, to);
    };
    std::vector<at::Tensor> parts;
    if (n > 0) parts.push_back(layers::Attention(rows(q, 0, n), rows(k, 0, n), rows(v, 0, n)));
    if (n < x.size(1)) parts.push_back(rows(v, 0, 1).expand({1, x.size(1) - n, -1, -1}).to(q.scalar_type()));
    outs.push_back(torch::cat(parts, 1));
  }
  auto h = x + layers::Project(self_attn_proj, torch::cat(outs).flatten(2)) * gates[0];
  return h + mlp(norm2(h)) * gates[1];
}

TokenRefinerImpl::TokenRefinerImpl(const HunyuanDitConfig& config) {
  const std::int64_t d = config.hidden_size;
  input_embedder = register_module("input_embedder", layers::Linear(config.text_states_dim, d));
  t_embedder = register_module("t_embedder", TimestepEmbedder(d));
  c_embedder = register_module("c_embedder", dit::Mlp(dit::MlpOptions(config.text_states_dim, d, d,
                                                                      dit::Activation::kSilu, "linear_1", "linear_2")));
  auto refiner = register_module("individual_token_refiner", Namespace());
  blocks = refiner->register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.refiner_blocks; ++i) blocks->push_back(RefinerBlock(config));
}

at::Tensor TokenRefinerImpl::forward(const at::Tensor& text_states, const at::Tensor& t, const at::Tensor& mask,
                                     const std::vector<std::int64_t>& valid) {
  const auto weights = mask.to(torch::kFloat).unsqueeze(-1);
  const auto mean = (text_states.to(torch::kFloat) * weights).sum(1) / weights.sum(1);
  const auto c = t_embedder(t) + c_embedder(mean);
  auto x = layers::Project(input_embedder, text_states);
  for (const auto& block : *blocks) x = block->as<RefinerBlock>()->forward(x, c, valid);
  return x;
}

namespace {

StreamModules RegisterStream(torch::nn::Module& block, const std::string& prefix, const HunyuanDitConfig& config) {
  const std::int64_t d = config.hidden_size, hd = config.head_dim();
  StreamModules s;
  s.mod = block.register_module(prefix + "_mod", dit::SiluLinear(d, 6 * d, "linear"));
  s.attn_qkv = block.register_module(prefix + "_attn_qkv", layers::Linear(d, 3 * d, config.qkv_bias));
  s.attn_q_norm = block.register_module(prefix + "_attn_q_norm", layers::RmsNorm(hd, kEps));
  s.attn_k_norm = block.register_module(prefix + "_attn_k_norm", layers::RmsNorm(hd, kEps));
  s.attn_proj = block.register_module(prefix + "_attn_proj", layers::Linear(d, d));
  s.mlp = block.register_module(
      prefix + "_mlp", dit::Mlp(dit::MlpOptions(d, config.mlp_hidden(), d, dit::Activation::kGeluTanh, "fc1", "fc2")));
  return s;
}

}  // namespace

DoubleBlockImpl::DoubleBlockImpl(const HunyuanDitConfig& config)
    : img(RegisterStream(*this, "img", config)), txt(RegisterStream(*this, "txt", config)), heads(config.heads_num) {}

void DoubleBlockImpl::forward(at::Tensor& image, at::Tensor& text, const at::Tensor& vec, const HunyuanLayout& layout,
                              cache::FeatureCache::Forward* cache, std::int64_t first_branch) {
  const auto im = Modulations(img.mod, vec, 6), tm = Modulations(txt.mod, vec, 6);  // shift1, scale1, gate1, ...2
  auto branch = [&](std::int64_t kind, const std::function<at::Tensor()>& compute) {
    return cache ? cache->Branch(first_branch + kind, compute) : compute();
  };
  // Both attention branches come from one joint attention, computed by whichever branch runs first.
  at::Tensor img_attn, txt_attn;
  auto attend = [&] {
    if (img_attn.defined()) return;
    auto [qi, ki, vi] = SplitQkv(layers::Project(img.attn_qkv, Modulate(image, im[0], im[1])), heads);
    auto [qt, kt, vt] = SplitQkv(layers::Project(txt.attn_qkv, Modulate(text, tm[0], tm[1])), heads);
    const auto& rope = layout.image;
    qi = dit::ApplyRope(img.attn_q_norm(qi), rope.rope_cos, rope.rope_sin);
    ki = dit::ApplyRope(img.attn_k_norm(ki), rope.rope_cos, rope.rope_sin);
    const auto [image_out, text_out] = dit::JointAttention({qi, ki, vi}, {txt.attn_q_norm(qt), txt.attn_k_norm(kt), vt},
                                                           layout.image, layout.text_valid);
    img_attn = layers::Project(img.attn_proj, image_out.flatten(2));
    txt_attn = layers::Project(txt.attn_proj, text_out.flatten(2));
  };
  const auto img_attn_out = branch(0, [&] {
    attend();
    return img_attn;
  });
  const auto txt_attn_out = branch(1, [&] {
    attend();
    return txt_attn;
  });
  image = image + (img_attn_out * im[2]).to(image.scalar_type());
  text = text + (txt_attn_out * tm[2]).to(text.scalar_type());
  image = image + (branch(2, [&] { return img.mlp(Modulate(image, im[3], im[4])); }) * im[5]).to(image.scalar_type());
  text = text + (branch(3, [&] { return txt.mlp(Modulate(text, tm[3], tm[4])); }) * tm[5]).to(text.scalar_type());
}

SingleBlockImpl::SingleBlockImpl(const HunyuanDitConfig& config)
    : heads(config.heads_num), mlp_hidden(config.mlp_hidden()) {
  const std::int64_t d = config.hidden_size, hd = config.head_dim();
  linear1 = register_module("linear1", layers::Linear(d, 3 * d + mlp_hidden));
  linear2 = register_module("linear2", layers::Linear(d + mlp_hidden, d));
  q_norm = register_module("q_norm", layers::RmsNorm(hd, kEps));
  k_norm = register_module("k_norm", layers::RmsNorm(hd, kEps));
  modulation = register_module("modulation", dit::SiluLinear(d, 3 * d, "linear"));
}

void SingleBlockImpl::forward(at::Tensor& x, const at::Tensor& vec, const HunyuanLayout& layout,
                              cache::FeatureCache::Forward* cache, std::int64_t branch) {
  const auto m = Modulations(modulation, vec, 3);  // shift, scale, gate
  const std::int64_t chunk = layout.image.shard.chunk, d = x.size(2);
  auto compute = [&] {
    const auto h = layers::Project(linear1, Modulate(x, m[0], m[1]));
    auto [q, k, v] = SplitQkv(h.slice(-1, 0, 3 * d), heads);
    q = q_norm(q);
    k = k_norm(k);
    const auto& rope = layout.image;
    const auto qi = dit::ApplyRope(q.slice(1, 0, chunk), rope.rope_cos, rope.rope_sin);
    const auto ki = dit::ApplyRope(k.slice(1, 0, chunk), rope.rope_cos, rope.rope_sin);
    const auto [image, text] =
        dit::JointAttention({qi, ki, v.slice(1, 0, chunk)}, {q.slice(1, chunk), k.slice(1, chunk), v.slice(1, chunk)},
                            layout.image, layout.text_valid);
    const auto attention = torch::cat({image, text}, 1).flatten(2);
    return layers::Project(linear2,
                           torch::cat({attention, dit::Activate(dit::Activation::kGeluTanh, h.slice(-1, 3 * d))}, -1));
  };
  x = x + ((cache ? cache->Branch(branch, compute) : compute()) * m[2]).to(x.scalar_type());
}

HunyuanDitImpl::HunyuanDitImpl(const HunyuanDitConfig& config)
    : config_(config), space_(config.in_channels, config.patch_size) {
  config_.Validate();
  const std::int64_t d = config.hidden_size;
  const auto& p = config.patch_size;
  auto img_in = register_module("img_in", Namespace());
  patch = img_in->register_module(
      "proj",
      layers::Conv3d(torch::nn::Conv3dOptions(config.in_channels, d, {p[0], p[1], p[2]}).stride({p[0], p[1], p[2]})));
  time_in = register_module("time_in", TimestepEmbedder(d));
  vector_in = register_module("vector_in", dit::Mlp(dit::MlpOptions(config.text_states_dim_2, d, d,
                                                                    dit::Activation::kSilu, "in_layer", "out_layer")));
  if (config.guidance_embed) guidance_in = register_module("guidance_in", TimestepEmbedder(d));
  txt_in = register_module("txt_in", TokenRefiner(config));
  double_blocks = register_module("double_blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.double_blocks; ++i) double_blocks->push_back(DoubleBlock(config));
  single_blocks = register_module("single_blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.single_blocks; ++i) single_blocks->push_back(SingleBlock(config));
  auto final_layer = register_module("final_layer", Namespace());
  final_linear = final_layer->register_module("linear", layers::Linear(d, config.out_channels * space_.patch_volume()));
  final_modulation = final_layer->register_module("adaLN_modulation", dit::SiluLinear(d, 2 * d, "1"));
}

dit::RopeOptions HunyuanDitImpl::rope() const {
  const auto& dims = config_.rope_dim_list;
  // The reference builds its tables in fp32.
  return {{dims[0] / 2, dims[1] / 2, dims[2] / 2}, config_.rope_theta, torch::kFloat};
}

std::pair<at::Tensor, at::Tensor> HunyuanDitImpl::RopeTables(const dit::Grid& grid) const {
  const auto table = dit::RopeTable::ForGrid(grid, rope().pairs, rope().theta, rope().dtype);
  return {table.cos, table.sin};
}

HunyuanLayout HunyuanDitImpl::Layout(const dit::Shard& shard, const dit::Grid& grid,
                                     const at::Tensor& text_mask) const {
  const std::vector<dit::Grid> grids(static_cast<std::size_t>(text_mask.size(0)), grid);
  return {dit::TokenLayout::Make(shard, grids, rope(), patch->weight.device()), layers::PrefixLengths(text_mask)};
}

cache::CacheFootprint HunyuanDitImpl::Footprint(std::int64_t batch, std::int64_t tokens, std::int64_t text,
                                                int streams) const {
  cache::CacheFootprint footprint;
  footprint.streams = streams;
  const std::int64_t d = config_.hidden_size;
  for (std::int64_t i = 0; i < config_.double_blocks; ++i) {
    footprint.branch_numels.insert(footprint.branch_numels.end(),
                                   {batch * tokens * d, batch * text * d, batch * tokens * d, batch * text * d});
  }
  footprint.branch_numels.insert(footprint.branch_numels.end(), static_cast<std::size_t>(config_.single_blocks),
                                 batch * (tokens + text) * d);
  footprint.output_numel = batch * tokens * config_.out_channels * space_.patch_volume();
  return footprint;
}

void HunyuanDitImpl::SetComputeDType(c10::ScalarType dtype) {
  // Everything, as the reference casts the whole model; the norms compute in fp32 and multiply after casting back.
  layers::CastParameters(*this, dtype);
}

at::Tensor HunyuanDitImpl::ForwardTokens(const HunyuanTokenInput& input, const HunyuanLayout& layout,
                                         cache::FeatureCache::Forward* cache) {
  const std::int64_t batch = input.tokens.size(0), chunk = input.tokens.size(1);
  auto img = dit::EmbedPatches(patch, input.tokens);
  auto vec = time_in(input.timesteps) + vector_in(input.text_states_2);
  if (guidance_in) {
    if (!input.guidance.defined()) Fail(ErrorCode::kInvalidArgument, "HunyuanVideo: this model needs a guidance value");
    vec = vec + guidance_in(input.guidance);
  }
  auto txt = txt_in(input.text_states, input.timesteps, input.text_mask, layout.text_valid);
  if (trace) trace("txt_in", txt);

  const auto out = dit::CachedStack(cache, [&](cache::FeatureCache::Forward* branch_cache) {
    auto image = img, text = txt;
    const std::int64_t doubles = static_cast<std::int64_t>(double_blocks->size());
    for (std::int64_t i = 0; i < doubles; ++i) {
      double_blocks[i]->as<DoubleBlock>()->forward(image, text, vec, layout, branch_cache, 4 * i);
      if (trace) trace("double" + std::to_string(i) + ".img", image);
    }
    // The single blocks run on one stream: concatenated once.
    auto joint = torch::cat({image, text}, 1);
    for (std::size_t i = 0; i < single_blocks->size(); ++i) {
      single_blocks[i]->as<SingleBlock>()->forward(joint, vec, layout, branch_cache,
                                                   4 * doubles + static_cast<std::int64_t>(i));
      if (trace) trace("single" + std::to_string(i), joint);
    }
    const auto m = final_modulation(vec).unsqueeze(1).chunk(2, -1);
    return layers::Project(final_linear, Modulate(joint.slice(1, 0, chunk), m[0], m[1]))
        .to(torch::kFloat);  // shift first
  });
  return out.reshape({batch, chunk, -1}).to(torch::kFloat);
}

at::Tensor HunyuanDitImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text_states,
                                   const at::Tensor& text_mask, const at::Tensor& text_states_2,
                                   const at::Tensor& guidance, cache::FeatureCache::Forward* cache) {
  const auto grid = space_.GridOf(x[0]);
  std::vector<at::Tensor> tokens;
  for (std::int64_t b = 0; b < x.size(0); ++b) tokens.push_back(space_.Patchify(x[b]));
  HunyuanTokenInput input;
  input.tokens = torch::stack(tokens);
  input.timesteps = t;
  input.text_states = text_states;
  input.text_mask = text_mask;
  input.text_states_2 = text_states_2;
  input.guidance = guidance;
  const auto out = ForwardTokens(input, Layout(dit::Shard::Of(input.tokens.size(1), nullptr), grid, text_mask), cache);
  std::vector<at::Tensor> videos;
  for (std::int64_t b = 0; b < x.size(0); ++b) videos.push_back(space_.Unpatchify(out[b], grid));
  return torch::stack(videos);
}

namespace {

// HunyuanVideo's transformer over one generation: one pass a step, the guidance embedded in the model.
class HunyuanDenoiser final : public dit::Denoiser {
 public:
  HunyuanDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance) : dit_(dit) {
    input_.text_states = text.states.unsqueeze(0).to(device());
    input_.text_mask = text.mask.unsqueeze(0).to(device());
    input_.text_states_2 = text.pooled.unsqueeze(0).to(device());
    input_.guidance = torch::full({1}, EmbeddedGuidanceValue(embedded_guidance, dit->patch->weight.scalar_type()),
                                  torch::TensorOptions().dtype(torch::kFloat).device(device()));
  }

  c10::Device device() const override { return dit_->patch->weight.device(); }

  void Prepare(const dit::Shard& shard, const dit::Grid& grid) override {
    layout_ = dit_->Layout(shard, grid, input_.text_mask);
  }

  cache::CacheFootprint Footprint(std::int64_t batch, int streams) const override {
    return dit_->Footprint(batch, layout_.image.shard.chunk, input_.text_states.size(1), streams);
  }

  at::Tensor Predict(const at::Tensor& tokens, double timestep, std::span<const dit::Condition>,
                     cache::FeatureCache::Forward* cache) override {
    input_.tokens = tokens.unsqueeze(0);
    input_.timesteps = torch::full({1}, timestep, torch::TensorOptions().dtype(torch::kFloat).device(device()));
    return dit_->ForwardTokens(input_, layout_, cache);
  }

 private:
  HunyuanDit& dit_;
  HunyuanTokenInput input_;
  HunyuanLayout layout_;
};

}  // namespace

std::unique_ptr<dit::Denoiser> MakeDenoiser(HunyuanDit& dit, const HunyuanText& text, double embedded_guidance) {
  return std::make_unique<HunyuanDenoiser>(dit, text, embedded_guidance);
}

double EmbeddedGuidanceValue(double embedded_guidance, c10::ScalarType dtype) {
  return (torch::full({1}, embedded_guidance, torch::TensorOptions().dtype(dtype)) * 1000.0).item<double>();
}

}  // namespace vidgen::hunyuan
