#include "models/layers/attention.h"

#include <cmath>
#include <limits>
#include <optional>

#include <torch/torch.h>
#include <torch/version.h>

#include "common/error.h"

namespace vidgen::layers {
namespace {

// Keys masked per sample: [B, 1, 1, Lk] true where the key's position is at or past the sample's length.
torch::Tensor MaskedKeys(const AttentionOptions& options, std::int64_t lk, const torch::Device& device) {
  const auto positions = torch::arange(options.key_offset, options.key_offset + lk,
                                       torch::TensorOptions().dtype(torch::kLong).device(device));
  const auto lengths = torch::tensor(options.key_lengths, torch::kLong).to(device).view({-1, 1});
  return (positions.view({1, -1}) >= lengths).view({static_cast<std::int64_t>(options.key_lengths.size()), 1, 1, lk});
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define VIDGEN_FUSED_ATTENTION 1
// LibTorch's fused kernels on [B, H, L, D] inputs of one dtype: the CPU flash kernel, and on CUDA flash (no mask,
// half precision) or memory-efficient attention, each returning the log-sum-exp [B, H, Lq] fp32 when asked.
// `masked` as MaskedKeys. Samples with no key at all come out as garbage here; the caller zeroes them.
std::pair<torch::Tensor, torch::Tensor> FusedAttention(const torch::Tensor& q, const torch::Tensor& k,
                                                       const torch::Tensor& v, const torch::Tensor& masked, bool causal,
                                                       double scale, bool with_lse) {
  const std::int64_t lq = q.size(2), lk = k.size(2);
  // An additive bias of q's dtype; CUDA wants its rows 16-element aligned, so it is a view into a padded buffer.
  auto bias = [&]() -> std::optional<torch::Tensor> {
    if (!masked.defined()) return std::nullopt;
    const std::int64_t padded = (lk + 15) / 16 * 16;
    auto buffer = torch::zeros({masked.size(0), 1, 1, padded}, q.options());
    buffer.slice(3, 0, lk).masked_fill_(masked, -std::numeric_limits<float>::infinity());
    return buffer.slice(3, 0, lk).expand({q.size(0), q.size(1), lq, lk});
  };
  if (!q.is_cuda()) {
    auto [out, lse] =
        at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, /*dropout_p=*/0.0, causal, bias(), scale);
    return {out, with_lse ? lse : torch::Tensor()};
  }
  if (!with_lse) {
    auto mask = masked.defined() ? std::optional<torch::Tensor>(masked.logical_not()) : std::nullopt;
    return {at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, causal, scale), {}};
  }
  if (!masked.defined() && q.scalar_type() != torch::kFloat && q.size(3) <= 256) {
    const auto result = at::_scaled_dot_product_flash_attention(q, k, v, /*dropout_p=*/0.0, causal,
                                                                /*return_debug_mask=*/false, scale);
    return {std::get<0>(result), std::get<1>(result)};
  }
  const auto result =
      at::_scaled_dot_product_efficient_attention(q, k, v, bias(), /*compute_log_sumexp=*/true, 0.0, causal, scale);
  return {std::get<0>(result), std::get<1>(result).slice(2, 0, lq)};
}
#else
// Scores held at once by the blocked kernel: 2^24 fp32 values (64 MiB).
constexpr std::int64_t kScoreBudget = std::int64_t{1} << 24;

// Exact attention over blocks of queries. The unnormalised weights exp(s − max) go into the product and the row
// sums divide its much smaller result; lse = max + log(sum). A row whose keys are all masked gets max 0, sum 0:
// out 0, lse −inf. Returns out [B, H, Lq, D] fp32 and, when asked, lse [B, H, Lq].
std::pair<torch::Tensor, torch::Tensor> BlockedAttention(const torch::Tensor& q, const torch::Tensor& k,
                                                         const torch::Tensor& v, const torch::Tensor& masked,
                                                         bool causal, double scale, bool with_lse) {
  const auto qh = q.transpose(1, 2);        // [B, H, Lq, D]
  const auto kt = k.permute({0, 2, 3, 1});  // [B, H, D, Lk]
  const auto vh = v.transpose(1, 2);
  const std::int64_t batch = q.size(0), heads = q.size(2), lq = q.size(1), lk = k.size(1);
  const std::int64_t block = std::max<std::int64_t>(1, kScoreBudget / std::max<std::int64_t>(1, batch * heads * lk));
  const bool any_masked = masked.defined() || causal;
  auto out = torch::empty({batch, heads, lq, v.size(3)}, q.options().dtype(torch::kFloat));
  auto lse = with_lse ? torch::empty({batch, heads, lq}, out.options()) : torch::Tensor();
  for (std::int64_t start = 0; start < lq; start += block) {
    const std::int64_t end = std::min(lq, start + block);
    auto scores = torch::matmul(qh.slice(2, start, end), kt).to(torch::kFloat).mul_(scale);
    if (masked.defined()) scores.masked_fill_(masked, -std::numeric_limits<float>::infinity());
    if (causal) {
      const auto rows = torch::arange(start, end, torch::TensorOptions().dtype(torch::kLong).device(q.device()));
      const auto keys = torch::arange(lk, rows.options());
      scores.masked_fill_(keys.view({1, -1}) > rows.view({-1, 1}), -std::numeric_limits<float>::infinity());
    }
    auto row_max = std::get<0>(scores.max(-1, /*keepdim=*/true));
    if (any_masked) row_max.masked_fill_(row_max.isinf(), 0.0);
    scores.sub_(row_max).exp_();
    const auto row_sum = scores.sum(-1, /*keepdim=*/true);
    out.slice(2, start, end)
        .copy_(torch::matmul(scores.to(vh.scalar_type()), vh))
        .div_(row_sum.clamp_min(std::numeric_limits<float>::min()));
    if (with_lse) lse.slice(2, start, end).copy_(row_sum.log().add_(row_max).squeeze(-1));
  }
  return {out, lse};
}
#endif

}  // namespace

std::int64_t ScoreBytesBound() {
#ifdef VIDGEN_FUSED_ATTENTION
  return 0;
#else
  return 4 * static_cast<std::int64_t>(sizeof(float)) * kScoreBudget;  // scores, their exp and the products' copies
#endif
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& options,
                     at::Tensor* lse) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "Attention expects [B, L, H, D] inputs, got ", q.sizes(),
              ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(options.key_lengths.empty() || static_cast<std::int64_t>(options.key_lengths.size()) == q.size(0),
              "Attention: ", options.key_lengths.size(), " key lengths for a batch of ", q.size(0));
  TORCH_CHECK(!options.causal || options.key_offset == 0, "Attention: a causal mask over a block of keys");
  const double scale = options.scale > 0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  bool all_keys = true;
  for (const auto length : options.key_lengths) all_keys = all_keys && length >= options.key_offset + k.size(1);
  const torch::Tensor masked = all_keys ? torch::Tensor() : MaskedKeys(options, k.size(1), q.device());
  const auto kv_dtype = v.scalar_type();

  // Samples with no key in this block (a ring block past their length) get out 0 and lse −inf.
  std::vector<std::int64_t> empty;
  for (std::size_t b = 0; b < options.key_lengths.size(); ++b) {
    if (options.key_lengths[b] <= options.key_offset) empty.push_back(static_cast<std::int64_t>(b));
  }
  const bool with_lse = lse != nullptr;
  torch::Tensor out, block_lse;  // [B, H, Lq, D], [B, H, Lq]
  if (static_cast<std::int64_t>(empty.size()) == q.size(0)) {
    out = torch::zeros({q.size(0), q.size(2), q.size(1), v.size(3)}, q.options().dtype(torch::kFloat));
    if (with_lse) block_lse = torch::full({q.size(0), q.size(2), q.size(1)}, -INFINITY, out.options());
  } else {
#ifdef VIDGEN_FUSED_ATTENTION
    std::tie(out, block_lse) = FusedAttention(q.to(kv_dtype).transpose(1, 2), k.to(kv_dtype).transpose(1, 2),
                                              v.transpose(1, 2), masked, options.causal, scale, with_lse);
#else
    std::tie(out, block_lse) =
        BlockedAttention(q.to(kv_dtype), k.to(kv_dtype), v, masked, options.causal, scale, with_lse);
#endif
    if (!empty.empty()) {
      const auto rows = torch::tensor(empty, torch::kLong).to(q.device());
      out = out.index_fill(0, rows, 0.0);
      if (with_lse) block_lse = block_lse.index_fill(0, rows, -INFINITY);
    }
  }
  if (with_lse) {
    *lse = block_lse.to(torch::kFloat);
    return out.transpose(1, 2).to(torch::kFloat);
  }
  return out.transpose(1, 2).to(q.scalar_type());
}

std::vector<std::int64_t> PrefixLengths(const at::Tensor& mask) {
  const auto rows = mask.to(torch::kCPU, torch::kLong);
  const auto lengths = rows.sum(1);
  // A prefix of ones: its first `length` entries are all 1.
  const auto positions = torch::arange(rows.size(1), torch::kLong).view({1, -1});
  const auto expected = (positions < lengths.view({-1, 1})).to(torch::kLong);
  if (!torch::equal(rows, expected)) {
    const auto bad = (rows != expected).any(1).nonzero()[0][0].item<std::int64_t>();
    Fail(ErrorCode::kInvalidArgument, "the text mask of sample {} is not a prefix of ones", bad);
  }
  return {lengths.data_ptr<std::int64_t>(), lengths.data_ptr<std::int64_t>() + lengths.numel()};
}

}  // namespace vidgen::layers
