#include "models/encoders/umt5.h"

#include <cmath>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/weight_store.h"
#include "models/layers/deferred.h"

namespace vidgen::encoders {
namespace {

// Clamps inf back into range after fp16 residual adds, as the reference does.
at::Tensor Fp16Clamp(const at::Tensor& x) {
  if (x.scalar_type() != torch::kHalf || !torch::isinf(x).any().item<bool>()) return x;
  const double limit = 65504.0 - 1000.0;
  return torch::clamp(x, -limit, limit);
}

double LowestValue(c10::ScalarType dtype) {
  switch (dtype) {
    case torch::kHalf: return -65504.0;
    case torch::kBFloat16: return -3.3895313892515355e38;
    default: return std::numeric_limits<float>::lowest();
  }
}

}  // namespace

UmT5Config InferUmT5Config(const io::WeightStore& weights) {
  UmT5Config config;
  const auto& embedding = weights.Get("token_embedding.weight");
  const auto& q = weights.Get("blocks.0.attn.q.weight");
  const auto& fc1 = weights.Get("blocks.0.ffn.fc1.weight");
  const auto& buckets = weights.Get("blocks.0.pos_embedding.embedding.weight");
  if (embedding.dim() != 2 || q.dim() != 2 || fc1.dim() != 2 || buckets.dim() != 2) {
    Fail(ErrorCode::kInvalidArgument,
         "umT5 weights have unexpected ranks (token_embedding {}, q {}, fc1 {}, "
         "pos_embedding {})",
         embedding.dim(), q.dim(), fc1.dim(), buckets.dim());
  }
  config.vocab = embedding.size(0);
  config.dim = embedding.size(1);
  config.dim_attn = q.size(0);
  config.dim_ffn = fc1.size(0);
  config.num_buckets = buckets.size(0);
  config.num_heads = buckets.size(1);
  config.num_layers = 0;
  while (weights.Contains("blocks." + std::to_string(config.num_layers) + ".attn.q.weight")) ++config.num_layers;
  if (config.dim_attn % config.num_heads != 0) {
    Fail(ErrorCode::kInvalidArgument, "umT5 attention width {} does not split into {} heads", config.dim_attn,
         config.num_heads);
  }
  return config;
}

T5LayerNormImpl::T5LayerNormImpl(std::int64_t dim) {
  weight = register_parameter("weight", layers::NewParameter({dim}, 1.0));
}

at::Tensor T5LayerNormImpl::forward(const at::Tensor& x) {
  auto normed = x * torch::rsqrt(x.to(torch::kFloat).pow(2).mean(-1, /*keepdim=*/true) + 1e-6);
  if (weight.scalar_type() == torch::kHalf || weight.scalar_type() == torch::kBFloat16) {
    normed = normed.to(weight.scalar_type());
  }
  return weight * normed;
}

T5AttentionImpl::T5AttentionImpl(const UmT5Config& config) : num_heads(config.num_heads) {
  auto linear = [](std::int64_t in, std::int64_t out) {
    return layers::Linear(in, out, false);
  };
  q = register_module("q", linear(config.dim, config.dim_attn));
  k = register_module("k", linear(config.dim, config.dim_attn));
  v = register_module("v", linear(config.dim, config.dim_attn));
  o = register_module("o", linear(config.dim_attn, config.dim));
}

at::Tensor T5AttentionImpl::forward(const at::Tensor& x, const at::Tensor& bias) {
  const auto split = [&](const at::Tensor& t) { return t.unflatten(-1, {num_heads, -1}).transpose(1, 2); };
  const auto queries = split(q(x));  // [B, H, L, d]
  const auto keys = split(k(x));
  const auto values = split(v(x));
  // T5 does not scale the logits.
  const auto logits = torch::matmul(queries, keys.transpose(-1, -2)) + bias;
  const auto weights = torch::softmax(logits.to(torch::kFloat), -1).to(logits.scalar_type());
  return o(torch::matmul(weights, values).transpose(1, 2).flatten(2));
}

T5FeedForwardImpl::T5FeedForwardImpl(const UmT5Config& config) {
  auto linear = [](std::int64_t in, std::int64_t out) {
    return layers::Linear(in, out, false);
  };
  gate = register_module("gate", torch::nn::Sequential(linear(config.dim, config.dim_ffn)));
  fc1 = register_module("fc1", linear(config.dim, config.dim_ffn));
  fc2 = register_module("fc2", linear(config.dim_ffn, config.dim));
}

at::Tensor T5FeedForwardImpl::forward(const at::Tensor& x) {
  return fc2(fc1(x) * torch::gelu(gate->forward(x), "tanh"));
}

T5RelativeEmbeddingImpl::T5RelativeEmbeddingImpl(const UmT5Config& config)
    : num_buckets(config.num_buckets), max_distance(config.max_distance) {
  embedding = register_module("embedding", layers::Embedding(config.num_buckets, config.num_heads));
}

at::Tensor T5RelativeEmbeddingImpl::forward(std::int64_t length) {
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(embedding->weight.device());
  const auto relative = torch::arange(length, options).unsqueeze(0) - torch::arange(length, options).unsqueeze(1);
  // Half the buckets for keys after the query; within each half, exact buckets up to max_exact, then logarithmic
  // ones up to max_distance.
  const std::int64_t half = num_buckets / 2;
  const std::int64_t max_exact = half / 2;
  const auto distance = relative.abs();
  auto far = max_exact + (torch::log(distance.to(torch::kFloat) / max_exact) /
                          std::log(static_cast<double>(max_distance) / max_exact) * (half - max_exact))
                             .to(torch::kLong);
  far = torch::clamp_max(far, half - 1);
  const auto buckets = (relative > 0).to(torch::kLong) * half + torch::where(distance < max_exact, distance, far);
  return embedding(buckets).permute({2, 0, 1}).unsqueeze(0);
}

T5BlockImpl::T5BlockImpl(const UmT5Config& config) {
  norm1 = register_module("norm1", T5LayerNorm(config.dim));
  attn = register_module("attn", T5Attention(config));
  norm2 = register_module("norm2", T5LayerNorm(config.dim));
  ffn = register_module("ffn", T5FeedForward(config));
  pos_embedding = register_module("pos_embedding", T5RelativeEmbedding(config));
}

at::Tensor T5BlockImpl::forward(const at::Tensor& x, const at::Tensor& padded_keys) {
  // Padded keys get the dtype's lowest value in place of their position bias, as the reference's masked_fill.
  const auto bias = pos_embedding(x.size(1))
                        .to(x.scalar_type())
                        .expand({x.size(0), -1, -1, -1})
                        .masked_fill(padded_keys, LowestValue(x.scalar_type()));
  auto h = Fp16Clamp(x + attn(norm1(x), bias));
  return Fp16Clamp(h + ffn(norm2(h)));
}

UmT5EncoderImpl::UmT5EncoderImpl(const UmT5Config& config) {
  token_embedding = register_module("token_embedding", layers::Embedding(config.vocab, config.dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < config.num_layers; ++i) blocks->push_back(T5Block(config));
  norm = register_module("norm", T5LayerNorm(config.dim));
}

at::Tensor UmT5EncoderImpl::forward(const at::Tensor& ids, const at::Tensor& mask) {
  TORCH_CHECK(ids.dim() == 2 && mask.sizes() == ids.sizes(), "UmT5Encoder expects ids and mask [B, L], got ",
              ids.sizes(), " and ", mask.sizes());
  auto x = token_embedding(ids);
  const auto padded_keys = (mask == 0).view({ids.size(0), 1, 1, ids.size(1)});
  for (const auto& block : *blocks) x = block->as<T5Block>()->forward(x, padded_keys);
  return norm(x);
}

const io::KeyMap& TransformersUmT5KeyMap() {
  static const io::KeyMap map = {
      {"encoder.block.", "blocks."},
      {"layer.0.SelfAttention.relative_attention_bias.", "pos_embedding.embedding."},
      {"layer.0.SelfAttention.", "attn."},
      {"layer.0.layer_norm.", "norm1."},
      {"layer.1.layer_norm.", "norm2."},
      {"layer.1.DenseReluDense.wi_0.", "ffn.gate.0."},
      {"layer.1.DenseReluDense.wi_1.", "ffn.fc1."},
      {"layer.1.DenseReluDense.wo.", "ffn.fc2."},
      {"encoder.final_layer_norm.", "norm."},
      {"shared.", "token_embedding."},
  };
  return map;
}

UmT5Encoder LoadUmT5Encoder(io::WeightStore& weights, c10::ScalarType dtype, c10::Device device) {
  if (weights.Contains("shared.weight")) {
    weights.Rename(TransformersUmT5KeyMap());
    weights.Erase("encoder.embed_tokens.weight");  // tied to shared.weight
  }
  UmT5Encoder encoder(nullptr);
  {
    layers::DeferredInit deferred;
    encoder = UmT5Encoder(InferUmT5Config(weights));
  }
  layers::CastParameters(*encoder, dtype);
  weights.LoadInto(*encoder, {.allow_unexpected = false, .what = "the umT5 text encoder", .device = device});
  encoder->eval();
  return encoder;
}

}  // namespace vidgen::encoders
