#include "models/wan/dit.h"

#include <array>
#include <map>

#include <torch/torch.h>

#include "models/dit/attention.h"
#include "models/dit/rope.h"
#include "models/layers/attention.h"
#include "models/layers/deferred.h"

namespace vidgen::wan {
namespace {

using layers::Project;

// [B, L, dim] -> [B, L, heads, dim/heads]
at::Tensor SplitHeads(const at::Tensor& x, std::int64_t heads) {
  return x.unflatten(-1, {heads, -1});
}

}  // namespace

WanSelfAttentionImpl::WanSelfAttentionImpl(const WanDitConfig& config) : num_heads(config.num_heads) {
  q = register_module("q", layers::Linear(config.dim, config.dim));
  k = register_module("k", layers::Linear(config.dim, config.dim));
  v = register_module("v", layers::Linear(config.dim, config.dim));
  o = register_module("o", layers::Linear(config.dim, config.dim));
  norm_q = register_module("norm_q", layers::RmsNorm(config.dim, config.eps));
  norm_k = register_module("norm_k", layers::RmsNorm(config.dim, config.eps));
}

void WanSelfAttentionImpl::FuseProjections(c10::Device device) {
  torch::NoGradGuard no_grad;
  const std::array<torch::nn::Linear*, 3> parts = {&q, &k, &v};
  // The three's values, or room for them while they are placeholders.
  auto fuse = [&](at::Tensor torch::nn::LinearImpl::*member) {
    std::vector<at::Tensor> pieces;
    for (const auto* part : parts) pieces.push_back((*part).get()->*member);
    const auto& first = pieces.front();
    if (layers::IsPlaceholder(first)) {
      auto sizes = first.sizes().vec();
      sizes[0] *= 3;
      return torch::empty(sizes, first.options().device(device));
    }
    return torch::cat(pieces).to(device);
  };
  qkv_weight = fuse(&torch::nn::LinearImpl::weight);
  qkv_bias = fuse(&torch::nn::LinearImpl::bias);
  for (std::int64_t i = 0; i < 3; ++i) {
    auto& part = *parts[static_cast<std::size_t>(i)];
    part->weight.set_data(qkv_weight.narrow(0, i * part->weight.size(0), part->weight.size(0)));
    part->bias.set_data(qkv_bias.narrow(0, i * part->bias.size(0), part->bias.size(0)));
  }
}

bool WanSelfAttentionImpl::fused() const {
  if (!qkv_weight.defined()) return false;
  const std::array<const torch::nn::Linear*, 3> parts = {&q, &k, &v};
  for (std::int64_t i = 0; i < 3; ++i) {
    const auto& part = *parts[static_cast<std::size_t>(i)];
    auto views = [&](const at::Tensor& piece, const at::Tensor& whole) {
      return piece.is_alias_of(whole) && piece.scalar_type() == whole.scalar_type() &&
             piece.storage_offset() == whole.storage_offset() + i * piece.numel();
    };
    if (!views(part->weight, qkv_weight) || !views(part->bias, qkv_bias)) return false;
  }
  return true;
}

at::Tensor WanSelfAttentionImpl::forward(const at::Tensor& input, const dit::TokenLayout& layout) {
  const auto x = input.to(v->weight.scalar_type());  // once for the three projections
  std::vector<at::Tensor> qkv;
  if (fused() && !torch::GradMode::is_enabled()) {
    qkv = torch::linear(x, qkv_weight, qkv_bias).chunk(3, -1);
  } else {
    qkv = {Project(q, x), Project(k, x), Project(v, x)};
  }
  const auto values = SplitHeads(qkv[2], num_heads);
  // RoPE in float64 on the real tokens; padding rows turn by nothing.
  auto rotate = [&](const at::Tensor& t) {
    return dit::ApplyRope(SplitHeads(t, num_heads), layout.rope_cos, layout.rope_sin).to(values.scalar_type());
  };
  const auto queries = rotate(norm_q(qkv[0])), keys = rotate(norm_k(qkv[1]));
  return Project(o, dit::SelfAttention(queries, keys, values, layout).flatten(2));
}

WanCrossAttentionImpl::WanCrossAttentionImpl(const WanDitConfig& config) : WanSelfAttentionImpl(config) {
  if (config.has_image_input()) {
    k_img = register_module("k_img", layers::Linear(config.dim, config.dim));
    v_img = register_module("v_img", layers::Linear(config.dim, config.dim));
    norm_k_img = register_module("norm_k_img", layers::RmsNorm(config.dim, config.eps));
  }
}

WanCrossKeysValues WanCrossKeysValues::Cat(const std::vector<const WanCrossKeysValues*>& rows) {
  if (rows.size() == 1) return *rows.front();
  auto cat = [&](at::Tensor WanCrossKeysValues::*member) -> at::Tensor {
    if (!(rows.front()->*member).defined()) return {};
    std::vector<at::Tensor> parts;
    for (const auto* row : rows) parts.push_back(row->*member);
    return torch::cat(parts);
  };
  return {cat(&WanCrossKeysValues::keys), cat(&WanCrossKeysValues::values), cat(&WanCrossKeysValues::image_keys),
          cat(&WanCrossKeysValues::image_values)};
}

WanCrossKeysValues WanCrossAttentionImpl::KeysValues(const at::Tensor& context, std::int64_t image_tokens) {
  WanCrossKeysValues out;
  const auto text = context.slice(1, image_tokens);
  out.values = SplitHeads(Project(v, text), num_heads);
  out.keys = SplitHeads(norm_k(Project(k, text)), num_heads).to(out.values.scalar_type());
  if (image_tokens > 0) {
    const auto image = context.slice(1, 0, image_tokens);
    out.image_values = SplitHeads(Project(v_img, image), num_heads);
    out.image_keys = SplitHeads(norm_k_img(Project(k_img, image)), num_heads).to(out.image_values.scalar_type());
  }
  return out;
}

at::Tensor WanCrossAttentionImpl::forward(const at::Tensor& x, const WanCrossKeysValues& context) {
  const auto queries = SplitHeads(norm_q(Project(q, x)), num_heads).to(context.values.scalar_type());
  // Every text slot is attended to, the zero-padded ones included, as in the reference.
  auto out = layers::Attention(queries, context.keys, context.values).flatten(2);
  if (context.image_keys.defined()) {
    out = out + layers::Attention(queries, context.image_keys, context.image_values).flatten(2);
  }
  return Project(o, out);
}

WanBlockImpl::WanBlockImpl(const WanDitConfig& config) : eps(config.eps) {
  self_attn = register_module("self_attn", WanSelfAttention(config));
  if (config.cross_attn_norm) norm3 = register_module("norm3", layers::AffineLayerNorm(config.dim, config.eps));
  cross_attn = register_module("cross_attn", WanCrossAttention(config));
  ffn = register_module("ffn",
                        dit::Mlp(dit::MlpOptions(config.dim, config.ffn_dim, config.dim, dit::Activation::kGeluTanh)));
  modulation = register_parameter("modulation", layers::NewParameter({1, 6, config.dim}, 0.0));
}

at::Tensor WanBlockImpl::forward(const at::Tensor& x, const at::Tensor& e0, const dit::TokenLayout& layout,
                                 const WanCrossKeysValues& context, cache::FeatureCache::Forward* cache) {
  const auto e = (modulation.to(torch::kFloat) + e0).chunk(6, 1);  // each [B, 1, dim]
  const auto& [shift_attn, scale_attn, gate_attn] = std::tie(e[0], e[1], e[2]);
  const auto& [shift_ffn, scale_ffn, gate_ffn] = std::tie(e[3], e[4], e[5]);
  // The cache folds the stack (WanDitImpl::Footprint): the gated branches' sums go through it, the rest of the
  // stack it takes from the stack's output.
  auto gated = [&](int slot, const std::function<at::Tensor()>& compute) {
    return cache ? cache->GatedBranch(slot, compute) : compute();
  };

  // x + gate ⊙ attention, + cross-attention, + gate ⊙ FFN: one new tensor, then in place (each branch argument is
  // evaluated before the add that uses it). When training, out of place: autograd keeps the norms' inputs.
  auto h = torch::addcmul(
      x,
      gated(kAttentionGate,
            [&] { return self_attn(layers::ModulatedLayerNorm(x, shift_attn, scale_attn, eps), layout); }),
      gate_attn);
  const bool training = torch::GradMode::is_enabled();
  const auto cross = cross_attn(norm3 ? norm3(h) : h, context);
  h = training ? h + cross : h.add_(cross);
  const auto mlp = gated(kFfnGate, [&] { return ffn(layers::ModulatedLayerNorm(h, shift_ffn, scale_ffn, eps)); });
  return training ? torch::addcmul(h, mlp, gate_ffn) : h.addcmul_(mlp, gate_ffn);
}

WanHeadImpl::WanHeadImpl(const WanDitConfig& config) : eps(config.eps) {
  const std::int64_t patch = config.patch_size[0] * config.patch_size[1] * config.patch_size[2];
  head = register_module("head", layers::Linear(config.dim, patch * config.out_dim));
  modulation = register_parameter("modulation", layers::NewParameter({1, 2, config.dim}, 0.0));
}

at::Tensor WanHeadImpl::forward(const at::Tensor& x, const at::Tensor& e) {
  const auto m = (modulation.to(torch::kFloat) + e.unsqueeze(1)).chunk(2, 1);
  return Project(head, layers::ModulatedLayerNorm(x, m[0], m[1], eps));
}

WanImageEmbeddingImpl::WanImageEmbeddingImpl(const WanDitConfig& config) {
  const std::int64_t clip_dim = config.image_dim;
  proj =
      register_module("proj", torch::nn::Sequential(torch::nn::LayerNorm(torch::nn::LayerNormOptions({clip_dim})),
                                                    layers::Linear(clip_dim, clip_dim), torch::nn::GELU(),
                                                    layers::Linear(clip_dim, config.dim),
                                                    torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}))));
  if (config.model_type == WanModelType::kFLF2V) {
    emb_pos = register_parameter("emb_pos", layers::NewParameter({1, config.image_tokens, clip_dim}, 0.0));
  }
}

at::Tensor WanImageEmbeddingImpl::forward(const at::Tensor& clip_features) {
  auto x = clip_features.to(torch::kFloat);
  if (emb_pos.defined()) x = x.reshape({-1, emb_pos.size(1), x.size(2)}) + emb_pos;
  x = proj[0]->as<torch::nn::LayerNorm>()->forward(x);
  x = torch::gelu(Project(torch::nn::Linear(proj->ptr<torch::nn::LinearImpl>(1)), x));
  x = Project(torch::nn::Linear(proj->ptr<torch::nn::LinearImpl>(3)), x);
  return proj[4]->as<torch::nn::LayerNorm>()->forward(x.to(torch::kFloat));
}

WanDitImpl::WanDitImpl(const WanDitConfig& config) : config_(config), space_(config.out_dim, config.patch_size) {
  config.Validate();
  const auto& p = config.patch_size;
  patch_embedding = register_module(
      "patch_embedding",
      layers::Conv3d(
          torch::nn::Conv3dOptions(config.in_dim, config.dim, {p[0], p[1], p[2]}).stride({p[0], p[1], p[2]})));
  text_embedding = register_module(
      "text_embedding", dit::Mlp(dit::MlpOptions(config.text_dim, config.dim, config.dim, dit::Activation::kGeluTanh)));
  time_embedding = register_module(
      "time_embedding", dit::Mlp(dit::MlpOptions(config.freq_dim, config.dim, config.dim, dit::Activation::kSilu)));
  time_projection = register_module("time_projection", dit::SiluLinear(config.dim, 6 * config.dim, "1"));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.num_layers; ++i) blocks->push_back(WanBlock(config));
  head = register_module("head", WanHead(config));
  if (config.has_image_input()) img_emb = register_module("img_emb", WanImageEmbedding(config));
}

void WanDitImpl::SetComputeDType(c10::ScalarType dtype) {
  for (const auto& item : named_modules()) {
    const std::string& name = item.key();
    if (name.starts_with("time_") || name.starts_with("head")) continue;
    if (item.value()->as<torch::nn::Linear>() || item.value()->as<torch::nn::Conv3d>()) {
      layers::CastParameters(*item.value(), dtype);
    }
  }
}

void WanDitImpl::FuseProjections(c10::Device device) {
  for (const auto& block : *blocks) block->as<WanBlock>()->self_attn->FuseProjections(device);
}

dit::TokenLayout WanDitImpl::Layout(const dit::Shard& shard, std::span<const dit::Grid> grids) const {
  const std::int64_t pairs = config_.head_dim() / 2;
  return dit::TokenLayout::Make(shard, grids,
                                {{pairs - 2 * (pairs / 3), pairs / 3, pairs / 3}, 10000.0, torch::kFloat64},
                                patch_embedding->weight.device());
}

std::pair<at::Tensor, at::Tensor> WanDitImpl::EmbedTime(const at::Tensor& timesteps) {
  // Sinusoid in float64, embedding and projection in fp32.
  auto e = time_embedding(dit::TimestepSinusoid(timesteps, config_.freq_dim, torch::kFloat64));
  auto e0 = time_projection(e).unflatten(1, {6, config_.dim});
  return {std::move(e), std::move(e0)};
}

at::Tensor WanDitImpl::EmbedText(const std::vector<at::Tensor>& context) {
  std::vector<at::Tensor> padded;
  for (const auto& c : context) {
    TORCH_CHECK(c.dim() == 2 && c.size(1) == config_.text_dim && c.size(0) <= config_.text_len,
                "WanDit expects a context [<= ", config_.text_len, ", ", config_.text_dim, "], got ", c.sizes());
    padded.push_back(torch::constant_pad_nd(c, {0, 0, 0, config_.text_len - c.size(0)}));
  }
  return text_embedding(torch::stack(padded));
}

std::vector<WanCrossKeysValues> WanDitImpl::CrossKeysValues(const at::Tensor& text_states,
                                                            const at::Tensor& clip_features) {
  // Text: the padded slots of the context are text_embedding(0) and stay attended to, as in the reference.
  auto context = text_states;
  std::int64_t image_tokens = 0;
  if (config_.has_image_input()) {
    TORCH_CHECK(clip_features.defined(), "WanDit: this I2V model needs CLIP image features");
    const auto image_context = img_emb(clip_features);
    image_tokens = image_context.size(1);
    context = torch::cat({image_context.to(context.scalar_type()), context}, 1);
  }
  std::vector<WanCrossKeysValues> out;
  for (const auto& block : *blocks) out.push_back(block->as<WanBlock>()->cross_attn->KeysValues(context, image_tokens));
  return out;
}

cache::CacheFootprint WanDitImpl::Footprint(std::int64_t batch, std::int64_t tokens, int streams) const {
  cache::CacheFootprint footprint;
  footprint.streams = streams;
  // Folded: every block adds gate ⊙ attention + cross-attention + gate ⊙ FFN, each gate its modulation plus the
  // time projection's chunk that all blocks share.
  footprint.shared_gates = WanBlockImpl::kSharedGates;
  footprint.branch_numels.assign(WanBlockImpl::kSharedGates + 1, batch * tokens * config_.dim);
  footprint.output_numel = batch * tokens * config_.out_dim * space_.patch_volume();
  return footprint;
}

std::vector<at::Tensor> WanDitImpl::forward(const WanDitInput& input, cache::FeatureCache::Forward* cache) {
  const dit::TokenSpace input_space(config_.in_dim, config_.patch_size);
  std::vector<dit::Grid> grids;
  std::vector<at::Tensor> patches;
  std::int64_t longest = 0;
  for (const auto& latent : input.x) {
    grids.push_back(input_space.GridOf(latent));
    patches.push_back(input_space.Patchify(latent));
    longest = std::max(longest, patches.back().size(0));
  }
  const std::int64_t seq_len = input.seq_len > 0 ? input.seq_len : longest;
  TORCH_CHECK(longest <= seq_len, "WanDit: ", longest, " tokens do not fit seq_len ", seq_len);
  const auto shard = dit::Shard::Of(seq_len, nullptr);
  for (auto& t : patches) t = shard.Take(t);
  WanTokenInput tokens;
  tokens.tokens = torch::stack(patches);
  tokens.timesteps = input.timesteps;
  tokens.text_states = EmbedText(input.context);
  tokens.clip_features = input.clip_features;
  const auto out = ForwardTokens(tokens, Layout(shard, grids), cache);
  std::vector<at::Tensor> videos;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    videos.push_back(space_.Unpatchify(out[static_cast<std::int64_t>(i)], grids[i]));
  }
  return videos;
}

at::Tensor WanDitImpl::ForwardTokens(const WanTokenInput& input, const dit::TokenLayout& layout,
                                     cache::FeatureCache::Forward* cache) {
  const std::int64_t batch = input.tokens.size(0), chunk = input.tokens.size(1);
  TORCH_CHECK(input.tokens.dim() == 3 && static_cast<std::int64_t>(layout.lengths.size()) == batch &&
                  (input.cross.empty() ? input.text_states.defined() && input.text_states.size(0) == batch
                                       : input.cross.size() == blocks->size() && input.cross[0].keys.size(0) == batch),
              "WanDit: tokens ", input.tokens.sizes(), " for ", layout.lengths.size(), " samples and text states ",
              input.text_states.defined() ? input.text_states.sizes() : at::IntArrayRef{});

  // Patch embedding: the 3D convolution with kernel = stride is a matrix product per token. As the reference, the
  // padding tokens past each sample's length are zeros, not the embedding's bias.
  const auto x = torch::mul(dit::EmbedPatches(patch_embedding, input.tokens), layout.real);  // fp32 (real's type)

  const auto [e, e0] = input.time.defined() ? std::pair(input.time, input.time_projection) : EmbedTime(input.timesteps);
  const auto cross = input.cross.empty() ? CrossKeysValues(input.text_states, input.clip_features) : input.cross;

  const auto out = dit::CachedStack(cache, [&](cache::FeatureCache::Forward* branch_cache) {
    // The shared gates by slot: kAttentionGate's is e0's chunk 2, kFfnGate's chunk 5.
    const std::array<at::Tensor, WanBlockImpl::kSharedGates> shared_gates = {e0.slice(1, 2, 3), e0.slice(1, 5, 6)};
    if (branch_cache && !branch_cache->full()) return head(branch_cache->ForecastStack(x, shared_gates), e);
    auto h = x;
    for (std::size_t i = 0; i < blocks->size(); ++i) {
      h = blocks[i]->as<WanBlock>()->forward(h, e0, layout, cross[i], branch_cache);
      if (trace) trace("block" + std::to_string(i), h);
    }
    if (branch_cache) branch_cache->FoldStack(x, h, shared_gates);
    return head(h, e);
  });
  // The head lays a token out as (pt, ph, pw, c); the token space's layout is (c, pt, ph, pw).
  const auto& p = config_.patch_size;
  return out.reshape({batch, chunk, p[0], p[1], p[2], -1})
      .permute({0, 1, 5, 2, 3, 4})
      .reshape({batch, chunk, -1})
      .to(torch::kFloat);
}

namespace {

// Wan's transformer over one generation: the prompt's and the negative prompt's text (and the image tokens),
// embedded and projected to every block's cross-attention keys and values once.
class WanDenoiser final : public dit::Denoiser {
 public:
  WanDenoiser(WanDit& dit, const WanCondition& condition) : dit_(dit), image_(condition.image) {
    torch::NoGradGuard no_grad;
    const auto& clip = image_.clip_features;
    const auto features = clip.defined() ? clip.to(device()) : clip;
    for (const auto& [rows, context] : {std::pair{dit::Condition::kPrompt, &condition.context},
                                        {dit::Condition::kNegative, &condition.context_null}}) {
      cross_[{rows}] = dit_->CrossKeysValues(dit_->EmbedText({context->to(device())}), features);
    }
  }

  c10::Device device() const override { return dit_->patch_embedding->weight.device(); }

  void Prepare(const dit::Shard& shard, const dit::Grid& grid) override {
    shard_ = shard;
    if (image_.y.defined()) {
      const dit::TokenSpace space(image_.y.size(0), dit_->config().patch_size);
      condition_tokens_ = shard.Take(space.Patchify(image_.y.to(device(), torch::kFloat)));
    }
    for (std::size_t rows = 1; rows <= 2; ++rows) {
      const std::vector<dit::Grid> grids(rows, grid);
      layouts_[rows - 1] = dit_->Layout(shard, grids);
    }
  }

  cache::CacheFootprint Footprint(std::int64_t batch, int streams) const override {
    return dit_->Footprint(batch, shard_.chunk, streams);
  }

  at::Tensor Predict(const at::Tensor& tokens, double timestep, std::span<const dit::Condition> conditions,
                     cache::FeatureCache::Forward* cache) override {
    // The time embedding is the same for both guidance passes of a step.
    if (timestep != timestep_) {
      std::tie(time_, time_projection_) =
          dit_->EmbedTime(torch::full({1}, timestep, torch::TensorOptions().dtype(torch::kFloat64).device(device())));
      timestep_ = timestep;
    }
    const auto rows = static_cast<std::int64_t>(conditions.size());
    WanTokenInput input;
    // A token's values are channel-major, so the conditioning channels follow the latents' in each token.
    const auto model_tokens = condition_tokens_.defined() ? torch::cat({tokens, condition_tokens_}, 1) : tokens;
    input.tokens = model_tokens.unsqueeze(0).expand({rows, -1, -1});
    input.cross = Cross(conditions);
    input.time = time_.expand({rows, -1});
    input.time_projection = time_projection_.expand({rows, -1, -1});
    return dit_->ForwardTokens(input, layouts_[static_cast<std::size_t>(rows - 1)], cache);
  }

 private:
  // Every block's keys and values for these rows: the batch of both guidance passes is put together once.
  const std::vector<WanCrossKeysValues>& Cross(std::span<const dit::Condition> conditions) {
    const std::vector<dit::Condition> rows(conditions.begin(), conditions.end());
    auto& cross = cross_[rows];
    if (cross.empty()) {
      for (std::size_t block = 0; block < cross_[{dit::Condition::kPrompt}].size(); ++block) {
        std::vector<const WanCrossKeysValues*> per_row;
        for (const auto condition : rows) per_row.push_back(&cross_[{condition}][block]);
        cross.push_back(WanCrossKeysValues::Cat(per_row));
      }
    }
    return cross;
  }

  WanDit& dit_;
  WanImageInput image_;
  at::Tensor condition_tokens_;  // the shard's tokens of image_.y
  // Per rows (the prompt, the negative prompt, or both in a batch), every block's cross-attention keys and values.
  std::map<std::vector<dit::Condition>, std::vector<WanCrossKeysValues>> cross_;
  dit::Shard shard_;
  std::array<dit::TokenLayout, 2> layouts_;  // for one row and for two
  double timestep_ = -1;
  at::Tensor time_, time_projection_;
};

}  // namespace

std::unique_ptr<dit::Denoiser> MakeDenoiser(WanDit& dit, const WanCondition& condition) {
  return std::make_unique<WanDenoiser>(dit, condition);
}

}  // namespace vidgen::wan
