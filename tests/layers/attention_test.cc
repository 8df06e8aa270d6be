// The one attention entry point against a dense float64 reference: masks by key position (lengths, a block's offset,
// causal), the log-sum-exp, samples with no key at all, half precision, and blocks merged by their log-sum-exp as
// ring attention merges them. On LibTorch 1.13 this checks the blocked kernel, on 2.x LibTorch's fused ones.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "models/layers/attention.h"
#include "parallel/attention.h"

namespace vidgen::layers {
namespace {

struct Dense {
  at::Tensor out;  // [B, Lq, H, D] float64
  at::Tensor lse;  // [B, H, Lq] float64
};

// softmax(q·kᵀ·scale + mask)·v in float64, from the definition.
Dense DenseAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& options) {
  const double scale = options.scale > 0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::einsum("blhd,bmhd->bhlm", {q.to(torch::kDouble), k.to(torch::kDouble)}) * scale;
  const auto keys = torch::arange(options.key_offset, options.key_offset + k.size(1), torch::kLong);
  const double minus_inf = -std::numeric_limits<double>::infinity();
  for (std::size_t b = 0; b < options.key_lengths.size(); ++b) {
    scores[static_cast<std::int64_t>(b)].masked_fill_(keys.view({1, 1, -1}) >= options.key_lengths[b], minus_inf);
  }
  if (options.causal) {
    const auto rows = torch::arange(q.size(1), torch::kLong).view({-1, 1});
    scores.masked_fill_(keys.view({1, -1}) > rows, minus_inf);
  }
  Dense dense;
  dense.lse = torch::logsumexp(scores, -1);
  const auto weights = torch::softmax(scores, -1).nan_to_num(0.0);
  dense.out = torch::einsum("bhlm,bmhd->blhd", {weights, v.to(torch::kDouble)});
  return dense;
}

double MaxError(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

class AttentionTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(7); }
  static at::Tensor Random(std::int64_t batch, std::int64_t length, std::int64_t heads = 3, std::int64_t dim = 16) {
    return torch::randn({batch, length, heads, dim});
  }
};

TEST_F(AttentionTest, EqualsTheDenseDefinitionWithAndWithoutMasks) {
  const auto q = Random(2, 9), k = Random(2, 13), v = Random(2, 13);
  for (const std::vector<std::int64_t>& lengths : {std::vector<std::int64_t>{}, {13, 13}, {11, 4}}) {
    AttentionOptions options;
    options.key_lengths = lengths;
    const auto dense = DenseAttention(q, k, v, options);
    at::Tensor lse;
    EXPECT_LT(MaxError(Attention(q, k, v, options), dense.out), 1e-5) << lengths.size();
    EXPECT_LT(MaxError(Attention(q, k, v, options, &lse), dense.out), 1e-5) << lengths.size();
    ASSERT_EQ(lse.sizes(), (std::vector<std::int64_t>{2, 3, 9}));
    EXPECT_EQ(lse.scalar_type(), torch::kFloat);
    EXPECT_LT(MaxError(lse, dense.lse), 1e-5) << lengths.size();
  }
}

TEST_F(AttentionTest, CausalQueriesSeeOnlyTheirPast) {
  const auto x = Random(1, 10);
  AttentionOptions options;
  options.causal = true;
  const auto out = Attention(x, x, x, options);
  EXPECT_LT(MaxError(out, DenseAttention(x, x, x, options).out), 1e-5);
  // The first query sees only the first key: its output is that key's value.
  EXPECT_LT(MaxError(out[0][0], x[0][0]), 1e-6);
}

TEST_F(AttentionTest, ABlockOfKeysIsMaskedByItsPositionInTheWholeSequence) {
  const auto q = Random(2, 5), k = Random(2, 6), v = Random(2, 6);
  AttentionOptions options;
  options.key_offset = 6;        // keys 6..11 of the whole sequence
  options.key_lengths = {9, 4};  // sample 0 has three of them, sample 1 none
  at::Tensor lse;
  const auto out = Attention(q, k, v, options, &lse);
  const auto dense = DenseAttention(q, k, v, options);
  EXPECT_LT(MaxError(out[0], dense.out[0]), 1e-5);
  EXPECT_LT(MaxError(lse[0], dense.lse[0]), 1e-5);
  EXPECT_TRUE(torch::equal(out[1], torch::zeros_like(out[1]))) << "a sample without keys attends to nothing";
  EXPECT_TRUE(torch::all(torch::isneginf(lse[1])).item<bool>());
  // A block no sample reaches.
  options.key_lengths = {3, 4};
  EXPECT_TRUE(torch::equal(Attention(q, k, v, options, &lse), torch::zeros({2, 5, 3, 16})));
  EXPECT_TRUE(torch::all(torch::isneginf(lse)).item<bool>());
}

TEST_F(AttentionTest, BlocksMergedByTheirLogSumExpAreTheWholeAttention) {
  const auto q = Random(2, 7), k = Random(2, 12), v = Random(2, 12);
  AttentionOptions whole;
  whole.key_lengths = {10, 3};
  const auto dense = DenseAttention(q, k, v, whole);
  at::Tensor out, lse;
  for (const auto& [start, end] : {std::pair<std::int64_t, std::int64_t>{0, 5}, {5, 12}}) {
    AttentionOptions block = whole;
    block.key_offset = start;
    at::Tensor block_lse;
    const auto block_out = Attention(q, k.slice(1, start, end), v.slice(1, start, end), block, &block_lse);
    if (!out.defined()) {
      out = block_out;
      lse = block_lse;
    } else {
      parallel::MergeAttention(out, lse, block_out, block_lse);
    }
  }
  EXPECT_LT(MaxError(out, dense.out), 1e-5);
  EXPECT_LT(MaxError(lse, dense.lse), 1e-5);
}

TEST_F(AttentionTest, HalfPrecisionStaysCloseAndKeepsTheQueryDType) {
  const auto q = Random(1, 33, 2, 64), k = Random(1, 40, 2, 64), v = Random(1, 40, 2, 64);
  AttentionOptions options;
  options.key_lengths = {29};
  const auto dense = DenseAttention(q, k, v, options);
  const auto out = Attention(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16), options);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LT(MaxError(out, dense.out), 3e-2);
  at::Tensor lse;
  Attention(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16), options, &lse);
  EXPECT_LT(MaxError(lse, dense.lse), 5e-2);
}

}  // namespace
}  // namespace vidgen::layers
