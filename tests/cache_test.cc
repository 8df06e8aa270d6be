// The feature cache: schedules, Taylor factors, storage dtypes, memory accounting and budgets.
#include <array>
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cache/feature_cache.h"
#include "common/error.h"
#include "tests/support/expect_error.h"

namespace vidgen::cache {
namespace {

std::vector<int> FullSteps(const CacheConfig& config, int steps) {
  std::vector<int> full;
  const auto plan = Plan(config, steps);
  for (int i = 0; i < steps; ++i) {
    if (plan[static_cast<std::size_t>(i)]) full.push_back(i);
  }
  return full;
}

TEST(CachePlanTest, MatchesTheOfficialSchedules) {
  // Wan2.1 and HunyuanVideo: N=5, O=1, first_enhance=1 -> 0, 5, ..., 45 (10 of 50).
  for (const char* preset : {"taylorseer-wan", "taylorseer-hunyuan"}) {
    const auto config = Preset(preset);
    EXPECT_EQ(config.interval, 5);
    EXPECT_EQ(config.order, 1);
    EXPECT_EQ(config.warmup, 1);
    EXPECT_EQ(FullSteps(config, 50), (std::vector<int>{0, 5, 10, 15, 20, 25, 30, 35, 40, 45})) << preset;
  }
  // FLUX: N=6, O=1, first_enhance=3 -> 0, 1, 2, 8, 14, ..., 44 (10 of 50).
  EXPECT_EQ(FullSteps(Preset("taylorseer-flux"), 50), (std::vector<int>{0, 1, 2, 8, 14, 20, 26, 32, 38, 44}));
  EXPECT_EQ(Preset("fora").order, 0);
  EXPECT_EQ(FullSteps(Preset("none"), 4), (std::vector<int>{0, 1, 2, 3}));
  auto tailed = Preset("taylorseer-wan");
  tailed.tail = 3;
  EXPECT_EQ(FullSteps(tailed, 20), (std::vector<int>{0, 5, 10, 15, 17, 18, 19}));
}

TEST(CachePlanTest, RejectsBadConfigs) {
  auto config = Preset("taylorseer-wan");
  config.order = 5;
  EXPECT_FAILS(config.Validate(), kInvalidArgument, "'cache.order': 5");
  config = Preset("taylorseer-wan");
  config.warmup = 0;
  EXPECT_FAILS(config.Validate(), kInvalidArgument, "'cache.warmup': 0");
  config = Preset("taylorseer-wan");
  config.interval = 0;
  try {
    config.Validate();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'cache.interval'"), std::string::npos);
  }
  EXPECT_FAILS(Preset("magic"), kInvalidArgument, "'cache': 'magic'");
}

// Runs a cache over `steps` steps of one branch whose value at coordinate s is f(s); returns the largest error of a
// predicted step once the order has built up (order + 1 full steps).
double MaxForecastError(const CacheConfig& config, int steps, const std::function<double(double)>& f,
                        const std::vector<double>& sigmas = {}) {
  FeatureCache cache(config, {1, {4}, 0}, steps, sigmas);
  double worst = 0;
  int full_seen = 0;
  for (int step = 0; step < steps; ++step) {
    const double s = config.distance == Distance::kSigma ? sigmas[static_cast<std::size_t>(step)] : step;
    const auto truth = torch::full({4}, f(s), torch::kFloat64);
    auto forward = cache.Begin(step, 0);
    full_seen += forward.full();
    const auto got = forward.Branch(7, [&] { return truth; });
    if (!forward.full() && full_seen > config.order) worst = std::max(worst, (got - truth).abs().max().item<double>());
  }
  return worst;
}

TEST(FeatureCacheTest, LinearTrajectoriesAreExactFromOrderOne) {
  auto config = Preset("taylorseer-wan");
  for (int order = 1; order <= 4; ++order) {
    config.order = order;
    EXPECT_LT(MaxForecastError(config, 30, [](double s) { return 3 - 0.25 * s; }), 1e-5) << order;
  }
  config.order = 0;  // plain reuse holds constants only
  EXPECT_LT(MaxForecastError(config, 30, [](double) { return 2.5; }), 1e-7);
  EXPECT_GT(MaxForecastError(config, 30, [](double s) { return s; }), 1.0);
}

TEST(FeatureCacheTest, NewtonExpansionIsExactForPolynomialsUpToTheOrder) {
  auto config = Preset("taylorseer-wan");
  config.expansion = Expansion::kNewton;
  config.interval = 4;
  config.warmup = 1;
  const std::vector<std::function<double(double)>> polynomials = {
      [](double) { return 1.5; }, [](double s) { return 1 + 0.5 * s; },
      [](double s) { return 1 - 0.3 * s + 0.02 * s * s; }, [](double s) { return 0.001 * s * s * s - 0.1 * s; },
      [](double s) { return 1e-5 * std::pow(s, 4) + 0.01 * s; }};
  for (int order = 0; order <= 4; ++order) {
    config.order = order;
    for (int degree = 0; degree <= order; ++degree) {
      // Forecasts start once the order has built up: the first forecasts use fewer factors.
      FeatureCache cache(config, {1, {1}, 0}, 40, {});
      double worst = 0;
      int full_seen = 0;
      for (int step = 0; step < 40; ++step) {
        const auto truth = torch::full({1}, polynomials[static_cast<std::size_t>(degree)](step), torch::kFloat64);
        auto forward = cache.Begin(step, 0);
        full_seen += forward.full();
        const auto got = forward.Branch(0, [&] { return truth; });
        if (!forward.full() && full_seen > order) worst = std::max(worst, (got - truth).abs().max().item<double>());
      }
      EXPECT_LT(worst, 2e-4) << "order " << order << " degree " << degree;
    }
  }
}

TEST(FeatureCacheTest, PublishedTaylorFormUsesBackwardDifferences) {
  // F(s) = s², full at 0, 5, 10; forecast at 12: F(10) + 2·ΔF + 2²/2·Δ²F = 100 + 2·15 + 2·2 = 134 (true: 144).
  auto config = Preset("taylorseer-wan");
  config.order = 2;
  FeatureCache cache(config, {1, {1}, 0}, 13, {});
  torch::Tensor got;
  for (int step = 0; step <= 12; ++step) {
    auto forward = cache.Begin(step, 0);
    got = forward.Branch(0, [&] { return torch::full({1}, static_cast<double>(step * step), torch::kFloat64); });
  }
  EXPECT_NEAR(got.item<double>(), 134.0, 1e-9);
}

// The cache keeps its own copy of a computed branch: a model that writes into its tensor afterwards changes no
// forecast, in fp32 as in the other storage dtypes.
TEST(FeatureCacheTest, ABranchWrittenAfterItsFullStepChangesNoForecast) {
  for (const auto dtype : {FactorDType::kFloat32, FactorDType::kBFloat16}) {
    auto config = Preset("taylorseer-wan");
    config.order = 0;
    config.factor_dtype = dtype;
    FeatureCache cache(config, {1, {4}, 0}, 3, {});
    auto computed = torch::full({4}, 1.5);
    cache.Begin(0, 0).Branch(3, [&] { return computed; });
    computed.add_(10);
    EXPECT_TRUE(torch::equal(cache.Begin(1, 0).Branch(3, [] { return torch::zeros({4}); }), torch::full({4}, 1.5)));
  }
}

TEST(FeatureCacheTest, OrdersBuildUpOnePerFullStep) {
  auto config = Preset("taylorseer-wan");
  config.order = 3;
  FeatureCache cache(config, {2, {2}, 0}, 30, {});
  std::vector<int> counts;
  for (int step = 0; step < 30; ++step) {
    auto forward = cache.Begin(step, 1);
    forward.Branch(5, [&] { return torch::full({2}, static_cast<float>(step)); });
    if (forward.full()) counts.push_back(cache.TEST_TermCount(1, 5));
  }
  EXPECT_EQ(counts, (std::vector<int>{1, 2, 3, 4, 4, 4}));
  EXPECT_EQ(cache.TEST_TermCount(0, 5), 0);  // streams are separate
}

TEST(FeatureCacheTest, SigmaDistanceFollowsTheSchedule) {
  // A feature linear in sigma is exact with sigma distance, not with step distance, on a shifted schedule.
  std::vector<double> sigmas;
  for (int i = 0; i < 30; ++i) {
    const double s = 1.0 - i / 30.0;
    sigmas.push_back(5 * s / (1 + 4 * s));
  }
  auto config = Preset("taylorseer-wan");
  config.distance = Distance::kSigma;
  EXPECT_LT(MaxForecastError(
                config, 30, [](double sigma) { return 2 * sigma; }, sigmas),
            1e-5);
  config.distance = Distance::kStep;
  EXPECT_GT(MaxForecastError(config, 30, [&](double step) { return 2 * sigmas[static_cast<std::size_t>(step)]; }),
            1e-3);
}

TEST(FeatureCacheTest, BytesEqualTheFormula) {
  for (const auto dtype : {FactorDType::kFloat32, FactorDType::kBFloat16, FactorDType::kFloat8E4M3}) {
    auto config = Preset("taylorseer-wan");
    config.order = 2;
    config.factor_dtype = dtype;
    const CacheFootprint footprint{2, {6, 6, 10}, 0};
    FeatureCache cache(config, footprint, 20, {});
    for (int step = 0; step < 20; ++step) {
      for (int stream = 0; stream < 2; ++stream) {
        auto forward = cache.Begin(step, stream);
        for (std::int64_t id = 0; id < 3; ++id) {
          forward.Branch(id, [&] { return torch::rand({footprint.branch_numels[static_cast<std::size_t>(id)]}); });
        }
      }
    }
    const std::int64_t element = dtype == FactorDType::kFloat32 ? 4 : dtype == FactorDType::kBFloat16 ? 2 : 1;
    const std::int64_t per_tensor = dtype == FactorDType::kFloat8E4M3 ? 4 : 0;  // the fp8 scale
    const std::int64_t expected = 2 * 3 * ((6 + 6 + 10) * element + 3 * per_tensor);
    EXPECT_EQ(EstimateBytes(config, footprint), expected);
    EXPECT_EQ(cache.stats().estimated_bytes, expected);
    EXPECT_EQ(cache.stats().peak_bytes, expected);
    EXPECT_EQ(cache.bytes(), expected);
  }
  CacheConfig lite = Preset("lite");
  EXPECT_EQ(EstimateBytes(lite, {2, {100, 100}, 64}), 2 * 3 * 64 * 4);
}

// A stack of blocks whose branches enter one residual stream through gates (a block's constant plus a per-step gate
// that every block shares, as Wan's): the folded cache forecasts the stack's output that per-branch factors would
// give, for each order and expansion, from 1 + shared gates sums whatever the depth.
TEST(FeatureCacheTest, AFoldedStackForecastsWhatItsBranchesWould) {
  constexpr int kBlocks = 4, kSteps = 16;
  constexpr std::int64_t kValues = 8;
  torch::manual_seed(3);
  // Branch kind 0 and 2 are gated by per-step gate 0 and 1, kind 1 is not (Wan's attention, cross-attention, FFN).
  const auto constants = torch::randn({kBlocks, 3, kValues});
  const auto coefficients = torch::randn({kBlocks, 3, 3, kValues});  // a quadratic trajectory per branch
  auto value = [&](int step, int block, int kind) {
    const auto c = coefficients[block][kind];
    return (c[0] + c[1] * (step / 10.0) + c[2] * std::pow(step / 10.0, 2)).to(torch::kBFloat16);
  };
  for (const auto expansion : {Expansion::kTaylor, Expansion::kNewton}) {
    for (int order = 0; order <= 2; ++order) {
      auto config = Preset("taylorseer-wan");
      config.interval = 3;
      config.order = order;
      config.expansion = expansion;
      FeatureCache per_branch(config, {1, std::vector<std::int64_t>(3 * kBlocks, kValues), 0}, kSteps, {});
      FeatureCache folded(config, {1, std::vector<std::int64_t>(3, kValues), 0, 2}, kSteps, {});
      int predicted = 0;
      for (int step = 0; step < kSteps; ++step) {
        const auto step_gates = torch::randn({2, kValues});
        const auto x = torch::randn({kValues});
        auto a = per_branch.Begin(step, 0);
        auto b = folded.Begin(step, 0);
        ASSERT_FALSE(a.folded());
        ASSERT_TRUE(b.folded());
        auto expected = x.clone();
        for (int block = 0; block < kBlocks; ++block) {
          for (int kind = 0; kind < 3; ++kind) {
            const auto compute = [&] { return value(step, block, kind); };
            const int slot = kind == 1 ? -1 : kind / 2;
            const auto branch = a.Branch(3 * block + kind, compute);
            expected += (slot < 0 ? torch::ones({kValues}) : constants[block][kind] + step_gates[slot]) * branch;
            if (b.full() && slot >= 0) {
              EXPECT_TRUE(torch::equal(b.GatedBranch(slot, compute), compute()));
            }
          }
        }
        const std::array<at::Tensor, 2> gates = {step_gates[0], step_gates[1]};
        if (b.full()) {
          b.FoldStack(x, expected, gates);
          continue;
        }
        ++predicted;
        const auto got = b.ForecastStack(x, gates);
        EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5))
            << "order " << order << " step " << step << ": " << (got - expected).abs().max().item<double>();
      }
      EXPECT_EQ(predicted, 10);  // full: 0, 3, 6, 9, 12, 15
      EXPECT_EQ(folded.TEST_TermCount(0, 0), order + 1);
      EXPECT_EQ(folded.TEST_TermCount(0, 2), order + 1);
      // 3 sums × (order + 1) terms, and a full step's 2 gated sums while they are added up.
      EXPECT_EQ(folded.stats().peak_bytes, (3 * (order + 1) + 2) * kValues * 4);
      EXPECT_EQ(folded.bytes(), 3 * (order + 1) * kValues * 4);
      EXPECT_EQ(folded.stats().peak_bytes, folded.stats().estimated_bytes);
    }
  }
}

// The folded stack's protocol: on a full step only its gated branches and its fold, on a predicted step only its
// forecast; a full step's stack must be folded before the next forward begins.
TEST(FeatureCacheTest, AFoldedStackIsAskedOnlyForGatedBranchesOnFullSteps) {
  FeatureCache cache(Preset("taylorseer-wan"), {1, {4, 4}, 0, 1}, 10, {});
  const auto ones = [] { return torch::ones({4}); };
  const std::array<at::Tensor, 1> gate = {torch::full({4}, 2.0)};
  auto full = cache.Begin(0, 0);
  EXPECT_FAILS(full.Branch(0, ones), kInternal, "goes through GatedBranch");
  EXPECT_FAILS(full.GatedBranch(1, ones), kInternal, "gate slot 1 of a folded stack with 1 shared gates");
  EXPECT_FAILS(full.FoldStack(ones(), ones(), gate), kInternal, "step 0 added no branch under gate 0");
  EXPECT_FAILS(full.FoldStack(ones(), ones(), {}), kInternal,
               "a stack's fold of stream 0 at step 0 with 0 gates for 1");
  const auto branch = ones();
  full.GatedBranch(0, [&] { return branch; });
  full.GatedBranch(0, [&] { return branch; });  // Q = 2, in the cache's own sum
  EXPECT_TRUE(torch::equal(branch, ones()));
  EXPECT_FAILS(cache.Begin(1, 0), kInternal, "step 0's folded stack began another forward before its FoldStack");
  full.FoldStack(ones(), torch::full({4}, 7.0), gate);  // R = 7 − 1 − 2·2 = 2
  auto predicted = cache.Begin(1, 0);
  EXPECT_FAILS(predicted.GatedBranch(0, ones), kInternal, "outside a folded stack's full step");
  EXPECT_FAILS(predicted.FoldStack(ones(), ones(), gate), kInternal, "outside a folded stack's full step");
  // Order 1 from one full step is the value itself: x + R + 3·Q.
  const std::array<at::Tensor, 1> later_gate = {torch::full({4}, 3.0)};
  EXPECT_TRUE(torch::equal(predicted.ForecastStack(ones(), later_gate), torch::full({4}, 9.0)));
  EXPECT_FAILS(predicted.ForecastStack(ones(), {}), kInternal, "a stack's forecast of stream 0 at step 1 with 0 gates");
  EXPECT_FAILS(FeatureCache(Preset("taylorseer-wan"), {1, {4, 4, 4}, 0, 1}, 10, {}), kInternal, "keeps 2 sums, not 3");
}

TEST(FeatureCacheTest, BudgetRefusesOrFallsBackToLite) {
  auto config = Preset("taylorseer-wan");
  const CacheFootprint footprint{2, std::vector<std::int64_t>(30, 1000), 64};
  config.budget_bytes = 10000;
  EXPECT_FAILS(FeatureCache(config, footprint, 10, {}), kResourceExhausted,
               "needs 468.8 KiB (2 streams, order 1, 30 branches), over the cache budget of 9.77 KiB");
  EXPECT_FAILS(FeatureCache(config, footprint, 10, {}), kResourceExhausted, "use lite mode (1.00 KiB)");
  config.over_budget = OverBudget::kFallBackToLite;
  FeatureCache cache(config, footprint, 10, {});
  EXPECT_EQ(cache.config().policy, Policy::kLite);
  EXPECT_EQ(cache.stats().estimated_bytes, 2 * 2 * 64 * 4);
  config.budget_bytes = 100;  // even lite does not fit
  EXPECT_FAILS(FeatureCache(config, footprint, 10, {}), kResourceExhausted, "over the cache budget of 100 B");
  try {
    FeatureCache(config, footprint, 10, {});
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("lite mode"), std::string::npos) << "lite does not fit either: " << e.what();
  }
}

TEST(StoredTensorTest, Fp8RoundTripsEveryCodeAndBoundsTheError) {
  // Every finite e4m3 code decodes to a value that encodes back to the same code.
  auto codes = torch::arange(256, torch::kLong).to(torch::kUInt8);
  codes = codes.index({(codes != 0x7F) & (codes != 0xFF) & (codes != 0x80)});
  EXPECT_TRUE(torch::equal(EncodeE4M3(DecodeE4M3(codes)), codes));

  torch::manual_seed(11);
  const auto x = torch::randn({4096}) * 3;
  const auto stored = StoredTensor::Store(x, FactorDType::kFloat8E4M3);
  EXPECT_EQ(stored.bytes(), 4096 + 4);
  const auto y = stored.Load();
  const double scale = x.abs().max().item<double>() / 448;
  // Half a unit in the last place of a 3-bit mantissa: 2^-4 relative, or the subnormal step near zero.
  const auto bound = x.abs() * std::ldexp(1.0, -4) + scale * std::ldexp(1.0, -10);
  EXPECT_TRUE(((x - y).abs() <= bound + 1e-7).all().item<bool>());
  EXPECT_TRUE(torch::equal(StoredTensor::Store(torch::zeros({3}), FactorDType::kFloat8E4M3).Load(), torch::zeros({3})));
  const auto bf16 = StoredTensor::Store(x, FactorDType::kBFloat16);
  EXPECT_EQ(bf16.bytes(), 4096 * 2);
  EXPECT_LT(((bf16.Load() - x).abs() / x.abs().clamp_min(1e-3)).max().item<double>(), std::ldexp(1.0, -8) + 1e-6);
}

}  // namespace
}  // namespace vidgen::cache
