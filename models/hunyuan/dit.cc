#include "models/hunyuan/dit.h"

#include <torch/torch.h>

#include "common/error.h"
#include "models/layers/attention.h"
#include "models/layers/rope.h"
#include "parallel/attention.h"
#include "parallel/world.h"

namespace vidgen::hunyuan {
namespace {

constexpr double kEps = 1e-6;

// HunyuanVideo's timestep_embedding: [cos(t·f_i), sin(t·f_i)], f_i = exp(−ln(10000)·i/half), all in fp32.
at::Tensor TimestepSinusoidFp32(const at::Tensor& t, std::int64_t dim) {
  const std::int64_t half = dim / 2;
  const auto frequencies =
      torch::exp(-std::log(10000.0) * torch::arange(half, t.options().dtype(torch::kFloat)) / static_cast<double>(half));
  const auto angles = t.to(torch::kFloat).view({-1, 1}) * frequencies.view({1, -1});
  return torch::cat({torch::cos(angles), torch::sin(angles)}, -1);
}

// x·(1 + scale) + shift, with x normalised in fp32 and the modulation [B, 1, D].
at::Tensor Modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return layers::LayerNormFp32(x, kEps) * (1 + scale) + shift;
}

// [B, L, 3·H·d] -> q, k, v [B, L, H, d] ("B L (K H D) -> K B L H D").
std::array<at::Tensor, 3> SplitQkv(const at::Tensor& qkv, std::int64_t heads) {
  const auto parts = qkv.view({qkv.size(0), qkv.size(1), 3, heads, -1}).unbind(2);
  return {parts[0], parts[1], parts[2]};
}

// x·cos + rotate_half(x)·sin in fp32, rotate_half turning each interleaved pair (a, b) into (−b, a); x [B, L, H, d],
// cos and sin [L, d].
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto xf = x.to(torch::kFloat);
  const auto pairs = xf.view({x.size(0), x.size(1), x.size(2), -1, 2}).unbind(-1);
  const auto rotated = torch::stack({-pairs[1], pairs[0]}, -1).flatten(3);
  return (xf * cos.view({1, cos.size(0), 1, -1}) + rotated * sin.view({1, sin.size(0), 1, -1})).to(x.scalar_type());
}

// Joint attention of one forward (D.7): image tokens and real text tokens attend to each other, and the padded text
// tokens only among themselves. Under sequence parallelism the image chunk goes through Ulysses / ring with the real
// text replicated; the padded text is local. Returns the image chunk's and the text's outputs [B, L, H, d].
std::pair<at::Tensor, at::Tensor> JointAttention(const std::array<at::Tensor, 3>& img, const std::array<at::Tensor, 3>& txt,
                                                 const HunyuanLayout& layout) {
  const auto& [qi, ki, vi] = img;
  const auto& [qt, kt, vt] = txt;
  const std::int64_t chunk = qi.size(1), text = qt.size(1);
  const bool split = layout.world && layout.world->sequence().size() > 1;
  std::vector<at::Tensor> image_out, text_out;
  for (std::int64_t b = 0; b < qi.size(0); ++b) {
    const std::int64_t n = layout.text_valid[static_cast<std::size_t>(b)];
    auto sample = [&](const at::Tensor& t, std::int64_t from, std::int64_t to) { return t.slice(0, b, b + 1).slice(1, from, to); };
    at::Tensor image, real_text;
    if (split) {
      parallel::JointText joint{sample(qt, 0, n), sample(kt, 0, n), sample(vt, 0, n), {n}};
      auto out = parallel::SequenceParallelJointAttention(*layout.world, sample(qi, 0, chunk), sample(ki, 0, chunk),
                                                          sample(vi, 0, chunk), {layout.image_length}, joint);
      image = out.image;
      real_text = out.text;
    } else {
      const auto q = torch::cat({sample(qi, 0, chunk), sample(qt, 0, n)}, 1);
      const auto k = torch::cat({sample(ki, 0, chunk), sample(kt, 0, n)}, 1);
      const auto v = torch::cat({sample(vi, 0, chunk), sample(vt, 0, n)}, 1);
      const auto out = layers::Attention(q, k, v);
      image = out.slice(1, 0, chunk);
      real_text = out.slice(1, chunk);
    }
    image_out.push_back(image);
    if (n < text) {
      const auto padded = layers::Attention(sample(qt, n, text), sample(kt, n, text), sample(vt, n, text));
      text_out.push_back(torch::cat({real_text, padded}, 1));
    } else {
      text_out.push_back(real_text);
    }
  }
  return {torch::cat(image_out), torch::cat(text_out)};
}

std::vector<std::int64_t> ValidLengths(const at::Tensor& mask) {
  std::vector<std::int64_t> lengths;
  const auto cpu = mask.to(torch::kCPU, torch::kLong);
  for (std::int64_t b = 0; b < cpu.size(0); ++b) {
    const std::int64_t n = cpu[b].sum().item<std::int64_t>();
    if (n > 0 && cpu[b].slice(0, 0, n).min().item<std::int64_t>() != 1) {
      Fail(ErrorCode::kInvalidArgument, "HunyuanVideo: the text mask of sample {} is not a prefix of ones", b);
    }
    lengths.push_back(n);
  }
  return lengths;
}

}  // namespace

TimestepEmbedderImpl::TimestepEmbedderImpl(std::int64_t hidden, std::int64_t frequency_dim)
    : frequency_dim(frequency_dim) {
  mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(frequency_dim, hidden), torch::nn::SiLU(),
                                                     torch::nn::Linear(hidden, hidden)));
}

at::Tensor TimestepEmbedderImpl::forward(const at::Tensor& t) {
  const auto& first = mlp[0]->as<torch::nn::Linear>()->weight;
  return mlp->forward(TimestepSinusoidFp32(t, frequency_dim).to(first.scalar_type()));
}

MlpImpl::MlpImpl(std::int64_t dim, std::int64_t hidden, bool gelu) : gelu(gelu) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  const auto h = layers::Project(fc1, x);
  return layers::Project(fc2, gelu ? layers::GeluTanh(h) : torch::silu(h));
}

ModulationImpl::ModulationImpl(std::int64_t dim, std::int64_t count) : count(count) {
  linear = register_module("linear", torch::nn::Linear(dim, count * dim));
}

std::vector<at::Tensor> ModulationImpl::forward(const at::Tensor& vec) {
  return layers::Project(linear, torch::silu(vec)).unsqueeze(1).chunk(count, -1);
}

TwoLayerEmbedderImpl::TwoLayerEmbedderImpl(std::int64_t in, std::int64_t out, const std::string& first_name,
                                           const std::string& second_name) {
  first = register_module(first_name, torch::nn::Linear(in, out));
  second = register_module(second_name, torch::nn::Linear(out, out));
}

at::Tensor TwoLayerEmbedderImpl::forward(const at::Tensor& x) {
  return layers::Project(second, torch::silu(layers::Project(first, x)));
}

RefinerBlockImpl::RefinerBlockImpl(const HunyuanDitConfig& config) : heads(config.heads_num) {
  const std::int64_t d = config.hidden_size;
  norm1 = register_module("norm1", layers::AffineLayerNorm(d, kEps));
  self_attn_qkv = register_module("self_attn_qkv", torch::nn::Linear(d, 3 * d));
  self_attn_proj = register_module("self_attn_proj", torch::nn::Linear(d, d));
  norm2 = register_module("norm2", layers::AffineLayerNorm(d, kEps));
  mlp = register_module("mlp", Mlp(d, config.mlp_hidden(), /*gelu=*/false));
  adaLN_modulation =
      register_module("adaLN_modulation", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(d, 2 * d)));
}

at::Tensor RefinerBlockImpl::forward(const at::Tensor& x, const at::Tensor& c, const at::Tensor& valid) {
  const auto gates = adaLN_modulation->forward(c.to(self_attn_qkv->weight.scalar_type())).unsqueeze(1).chunk(2, -1);
  const auto [q, k, v] = SplitQkv(layers::Project(self_attn_qkv, norm1(x)), heads);
  // The reference's mask lets real tokens see the real tokens, and a padded token see only the first one.
  const auto lengths = ValidLengths(valid);
  std::vector<at::Tensor> outs;
  for (std::int64_t b = 0; b < x.size(0); ++b) {
    const std::int64_t n = lengths[static_cast<std::size_t>(b)];
    auto rows = [&](const at::Tensor& t, std::int64_t from, std::int64_t to) { return t.slice(0, b, b + 1).slice(1, from, to); };
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
  input_embedder = register_module("input_embedder", torch::nn::Linear(config.text_states_dim, d));
  t_embedder = register_module("t_embedder", TimestepEmbedder(d));
  c_embedder = register_module("c_embedder", TwoLayerEmbedder(config.text_states_dim, d, "linear_1", "linear_2"));
  auto refiner = register_module("individual_token_refiner", Namespace());
  blocks = refiner->register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.refiner_blocks; ++i) blocks->push_back(RefinerBlock(config));
}

at::Tensor TokenRefinerImpl::forward(const at::Tensor& text_states, const at::Tensor& t, const at::Tensor& valid) {
  const auto mask = valid.to(torch::kFloat).unsqueeze(-1);
  const auto mean = (text_states.to(torch::kFloat) * mask).sum(1) / mask.sum(1);
  const auto c = t_embedder(t) + c_embedder(mean);
  auto x = layers::Project(input_embedder, text_states);
  for (const auto& block : *blocks) x = block->as<RefinerBlock>()->forward(x, c, valid);
  return x;
}

DoubleBlockImpl::DoubleBlockImpl(const HunyuanDitConfig& config) : heads(config.heads_num) {
  const std::int64_t d = config.hidden_size, hd = config.head_dim();
  img_mod = register_module("img_mod", Modulation(d, 6));
  img_attn_qkv = register_module("img_attn_qkv", torch::nn::Linear(torch::nn::LinearOptions(d, 3 * d).bias(config.qkv_bias)));
  img_attn_q_norm = register_module("img_attn_q_norm", layers::RmsNorm(hd, kEps));
  img_attn_k_norm = register_module("img_attn_k_norm", layers::RmsNorm(hd, kEps));
  img_attn_proj = register_module("img_attn_proj", torch::nn::Linear(d, d));
  img_mlp = register_module("img_mlp", Mlp(d, config.mlp_hidden(), /*gelu=*/true));
  txt_mod = register_module("txt_mod", Modulation(d, 6));
  txt_attn_qkv = register_module("txt_attn_qkv", torch::nn::Linear(torch::nn::LinearOptions(d, 3 * d).bias(config.qkv_bias)));
  txt_attn_q_norm = register_module("txt_attn_q_norm", layers::RmsNorm(hd, kEps));
  txt_attn_k_norm = register_module("txt_attn_k_norm", layers::RmsNorm(hd, kEps));
  txt_attn_proj = register_module("txt_attn_proj", torch::nn::Linear(d, d));
  txt_mlp = register_module("txt_mlp", Mlp(d, config.mlp_hidden(), /*gelu=*/true));
}

void DoubleBlockImpl::forward(at::Tensor& img, at::Tensor& txt, const at::Tensor& vec, const HunyuanLayout& layout,
                              cache::FeatureCache::Forward* cache, std::int64_t first_branch) {
  const auto im = img_mod(vec), tm = txt_mod(vec);  // shift1, scale1, gate1, shift2, scale2, gate2
  auto branch = [&](std::int64_t kind, const std::function<at::Tensor()>& compute) {
    return cache ? cache->Branch(first_branch + kind, compute) : compute();
  };
  // Both attention branches come from one joint attention, computed by whichever branch runs first.
  at::Tensor img_attn, txt_attn;
  auto attend = [&] {
    if (img_attn.defined()) return;
    auto [qi, ki, vi] = SplitQkv(layers::Project(img_attn_qkv, Modulate(img, im[0], im[1])), heads);
    auto [qt, kt, vt] = SplitQkv(layers::Project(txt_attn_qkv, Modulate(txt, tm[0], tm[1])), heads);
    qi = ApplyRope(img_attn_q_norm(qi), layout.rope_cos, layout.rope_sin);
    ki = ApplyRope(img_attn_k_norm(ki), layout.rope_cos, layout.rope_sin);
    qt = txt_attn_q_norm(qt);
    kt = txt_attn_k_norm(kt);
    const auto [image, text] = JointAttention({qi, ki, vi}, {qt, kt, vt}, layout);
    img_attn = layers::Project(img_attn_proj, image.flatten(2));
    txt_attn = layers::Project(txt_attn_proj, text.flatten(2));
  };
  const auto img_attn_out = branch(0, [&] { attend(); return img_attn; });
  const auto txt_attn_out = branch(1, [&] { attend(); return txt_attn; });
  img = img + (img_attn_out * im[2]).to(img.scalar_type());
  txt = txt + (txt_attn_out * tm[2]).to(txt.scalar_type());
  img = img + (branch(2, [&] { return img_mlp(Modulate(img, im[3], im[4])); }) * im[5]).to(img.scalar_type());
  txt = txt + (branch(3, [&] { return txt_mlp(Modulate(txt, tm[3], tm[4])); }) * tm[5]).to(txt.scalar_type());
}

SingleBlockImpl::SingleBlockImpl(const HunyuanDitConfig& config)
    : heads(config.heads_num), mlp_hidden(config.mlp_hidden()) {
  const std::int64_t d = config.hidden_size, hd = config.head_dim();
  linear1 = register_module("linear1", torch::nn::Linear(d, 3 * d + mlp_hidden));
  linear2 = register_module("linear2", torch::nn::Linear(d + mlp_hidden, d));
  q_norm = register_module("q_norm", layers::RmsNorm(hd, kEps));
  k_norm = register_module("k_norm", layers::RmsNorm(hd, kEps));
  modulation = register_module("modulation", Modulation(d, 3));
}

void SingleBlockImpl::forward(at::Tensor& img, at::Tensor& txt, const at::Tensor& vec, const HunyuanLayout& layout,
                              cache::FeatureCache::Forward* cache, std::int64_t branch) {
  const auto m = modulation(vec);  // shift, scale, gate
  const std::int64_t chunk = img.size(1), d = img.size(2);
  auto compute = [&] {
    const auto h = layers::Project(linear1, Modulate(torch::cat({img, txt}, 1), m[0], m[1]));
    auto [q, k, v] = SplitQkv(h.slice(-1, 0, 3 * d), heads);
    q = q_norm(q);
    k = k_norm(k);
    const auto qi = ApplyRope(q.slice(1, 0, chunk), layout.rope_cos, layout.rope_sin);
    const auto ki = ApplyRope(k.slice(1, 0, chunk), layout.rope_cos, layout.rope_sin);
    const auto [image, text] = JointAttention({qi, ki, v.slice(1, 0, chunk)},
                                              {q.slice(1, chunk), k.slice(1, chunk), v.slice(1, chunk)}, layout);
    const auto attention = torch::cat({image, text}, 1).flatten(2);
    return layers::Project(linear2, torch::cat({attention, layers::GeluTanh(h.slice(-1, 3 * d))}, -1));
  };
  const auto out = (cache ? cache->Branch(branch, compute) : compute()) * m[2];
  img = img + out.slice(1, 0, chunk).to(img.scalar_type());
  txt = txt + out.slice(1, chunk).to(txt.scalar_type());
}

HunyuanDitImpl::HunyuanDitImpl(const HunyuanDitConfig& config) : config_(config) {
  config_.Validate();
  const std::int64_t d = config.hidden_size;
  const auto& p = config.patch_size;
  auto img_in = register_module("img_in", Namespace());
  patch = img_in->register_module(
      "proj", torch::nn::Conv3d(torch::nn::Conv3dOptions(config.in_channels, d, {p[0], p[1], p[2]}).stride({p[0], p[1], p[2]})));
  time_in = register_module("time_in", TimestepEmbedder(d));
  vector_in = register_module("vector_in", TwoLayerEmbedder(config.text_states_dim_2, d, "in_layer", "out_layer"));
  if (config.guidance_embed) guidance_in = register_module("guidance_in", TimestepEmbedder(d));
  txt_in = register_module("txt_in", TokenRefiner(config));
  double_blocks = register_module("double_blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.double_blocks; ++i) double_blocks->push_back(DoubleBlock(config));
  single_blocks = register_module("single_blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.single_blocks; ++i) single_blocks->push_back(SingleBlock(config));
  auto final_layer = register_module("final_layer", Namespace());
  final_linear = final_layer->register_module(
      "linear", torch::nn::Linear(d, config.out_channels * p[0] * p[1] * p[2]));
  final_modulation = final_layer->register_module(
      "adaLN_modulation", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(d, 2 * d)));
}

std::array<std::int64_t, 3> HunyuanDitImpl::TokenGrid(const at::Tensor& latents) const {
  const auto& p = config_.patch_size;
  if (latents.dim() != 4 || latents.size(0) != config_.in_channels || latents.size(1) % p[0] ||
      latents.size(2) % p[1] || latents.size(3) % p[2]) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo expects latents [{}, T, H, W] divisible by the patch, got [{}]",
         config_.in_channels, fmt::join(latents.sizes(), ", "));
  }
  return {latents.size(1) / p[0], latents.size(2) / p[1], latents.size(3) / p[2]};
}

at::Tensor HunyuanDitImpl::Patchify(const at::Tensor& latents) const {
  const auto [t, h, w] = TokenGrid(latents);
  const auto& p = config_.patch_size;
  return latents.reshape({latents.size(0), t, p[0], h, p[1], w, p[2]})
      .permute({1, 3, 5, 0, 2, 4, 6})
      .reshape({t * h * w, -1});
}

at::Tensor HunyuanDitImpl::Unpatchify(const at::Tensor& tokens, const std::array<std::int64_t, 3>& grid) const {
  const auto [t, h, w] = grid;
  const auto& p = config_.patch_size;
  return tokens.slice(0, 0, t * h * w)
      .reshape({t, h, w, -1, p[0], p[1], p[2]})
      .permute({3, 0, 4, 1, 5, 2, 6})
      .reshape({-1, t * p[0], h * p[1], w * p[2]});
}

std::pair<at::Tensor, at::Tensor> HunyuanDitImpl::RopeTables(const std::array<std::int64_t, 3>& grid) const {
  const auto& dims = config_.rope_dim_list;
  const auto angles = layers::GridRopeAngles(grid, {dims[0] / 2, dims[1] / 2, dims[2] / 2}, config_.rope_theta)
                          .to(torch::kFloat)  // the reference builds its tables in fp32
                          .repeat_interleave(2, 1);
  return {angles.cos(), angles.sin()};
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
  const auto& p = config_.patch_size;
  footprint.output_numel = batch * tokens * config_.out_channels * p[0] * p[1] * p[2];
  return footprint;
}

void HunyuanDitImpl::SetComputeDType(c10::ScalarType dtype) {
  to(dtype);
  // Norm weights stay fp32: the norms compute in fp32 and RmsNorm multiplies after casting back.
}

at::Tensor HunyuanDitImpl::ForwardTokens(const HunyuanTokenInput& input, cache::FeatureCache::Forward* cache) {
  const std::int64_t batch = input.tokens.size(0), chunk = input.tokens.size(1);
  HunyuanLayout layout;
  layout.grid = input.grid;
  layout.offset = input.offset;
  layout.image_length = input.grid[0] * input.grid[1] * input.grid[2];
  layout.world = input.world;
  layout.text_valid = ValidLengths(input.text_mask);
  auto [cos, sin] = RopeTables(input.grid);
  // The chunk may run past the real tokens (padding to a multiple of the ranks): those rows rotate by nothing.
  const std::int64_t real = std::clamp<std::int64_t>(layout.image_length - input.offset, 0, chunk);
  const auto pad = [&](const at::Tensor& table, double fill) {
    return torch::cat({table.slice(0, input.offset, input.offset + real),
                       torch::full({chunk - real, table.size(1)}, fill, table.options())})
        .to(input.tokens.device());
  };
  layout.rope_cos = pad(cos, 1.0);
  layout.rope_sin = pad(sin, 0.0);

  const auto& weight = patch->weight;
  auto img = torch::linear(input.tokens.to(weight.scalar_type()), weight.flatten(1), patch->bias);
  auto vec = time_in(input.timesteps) + vector_in(input.text_states_2);
  if (guidance_in) {
    if (!input.guidance.defined()) Fail(ErrorCode::kInvalidArgument, "HunyuanVideo: this model needs a guidance value");
    vec = vec + guidance_in(input.guidance);
  }
  auto txt = txt_in(input.text_states, input.timesteps, input.text_mask);
  if (trace) trace("txt_in", txt);

  auto run_blocks = [&](cache::FeatureCache::Forward* branch_cache) {
    auto image = img, text = txt;
    const std::int64_t doubles = static_cast<std::int64_t>(double_blocks->size());
    for (std::int64_t i = 0; i < doubles; ++i) {
      double_blocks[i]->as<DoubleBlock>()->forward(image, text, vec, layout, branch_cache, 4 * i);
      if (trace) trace("double" + std::to_string(i) + ".img", image);
    }
    for (std::size_t i = 0; i < single_blocks->size(); ++i) {
      single_blocks[i]->as<SingleBlock>()->forward(image, text, vec, layout, branch_cache,
                                                   4 * doubles + static_cast<std::int64_t>(i));
      if (trace) trace("single" + std::to_string(i), torch::cat({image, text}, 1));
    }
    const auto m = final_modulation->forward(vec.to(final_linear->weight.scalar_type())).unsqueeze(1).chunk(2, -1);
    return layers::Project(final_linear, Modulate(image, m[0], m[1])).to(torch::kFloat);  // shift first
  };
  const auto out = cache && cache->lite()
                       ? cache->Branch(cache::FeatureCache::kOutputBranch, [&] { return run_blocks(nullptr); })
                       : run_blocks(cache);
  return out.reshape({batch, chunk, -1}).to(torch::kFloat);
}

at::Tensor HunyuanDitImpl::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& text_states,
                                   const at::Tensor& text_mask, const at::Tensor& text_states_2,
                                   const at::Tensor& guidance, cache::FeatureCache::Forward* cache) {
  HunyuanTokenInput input;
  input.grid = TokenGrid(x[0]);
  std::vector<at::Tensor> tokens;
  for (std::int64_t b = 0; b < x.size(0); ++b) tokens.push_back(Patchify(x[b]));
  input.tokens = torch::stack(tokens);
  input.timesteps = t;
  input.text_states = text_states;
  input.text_mask = text_mask;
  input.text_states_2 = text_states_2;
  input.guidance = guidance;
  const auto out = ForwardTokens(input, cache);
  std::vector<at::Tensor> videos;
  for (std::int64_t b = 0; b < x.size(0); ++b) videos.push_back(Unpatchify(out[b], input.grid));
  return torch::stack(videos);
}

}  // namespace vidgen::hunyuan
