// TaylorSeer in the Wan pipeline: exactness at interval 1, determinism, lite mode, memory accounting, budgets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cache/feature_cache.h"
#include "common/error.h"
#include "models/wan/pipeline.h"
#include "tests/support/expect_error.h"
#include "tests/support/golden.h"

namespace vidgen::wan {
namespace {

class WanCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ = new testing::GoldenCase(testing::GoldenCases("wan_t2v").at(0));
    WanLoadOptions load;
    load.device = testing::TestDevice();
    pipeline_ = WanPipeline::Load(golden_->CheckpointDir().string(), load).release();
    context_ = new torch::Tensor(
        pipeline_->EncodeText({golden_->Input("ids").unsqueeze(0), golden_->Input("mask").unsqueeze(0)})[0]);
    context_null_ = new torch::Tensor(
        pipeline_->EncodeText({golden_->Input("neg_ids").unsqueeze(0), golden_->Input("neg_mask").unsqueeze(0)})[0]);
  }
  static void TearDownTestSuite() {
    delete context_null_;
    delete context_;
    delete pipeline_;
    delete golden_;
  }

  static dit::SamplerOptions Options(const cache::CacheConfig& cache, int steps = 12) {
    dit::SamplerOptions options;
    options.schedule = {schedulers::Solver::kUniPC, steps, std::stod(golden_->Meta("shift")), true};
    options.guidance_scale = std::stod(golden_->Meta("guide_scale"));
    options.cache = cache;
    return options;
  }
  static torch::Tensor Run(const dit::SamplerOptions& options, GenerationStats* stats = nullptr) {
    return pipeline_->Denoise(golden_->Input("noise"), {*context_, *context_null_}, options, {}, nullptr, stats);
  }
  // The bytes of one fp32 sum of the folded stack: tokens × dim.
  static std::int64_t SumBytes() {
    const auto noise = golden_->Get("noise");  // its shape only
    const auto& config = pipeline_->dit()->config();
    const auto& p = config.patch_size;
    const std::int64_t tokens = noise.size(1) / p[0] * (noise.size(2) / p[1]) * (noise.size(3) / p[2]);
    return tokens * config.dim * 4;
  }

  static testing::GoldenCase* golden_;
  static WanPipeline* pipeline_;
  static torch::Tensor* context_;
  static torch::Tensor* context_null_;
};
testing::GoldenCase* WanCacheTest::golden_ = nullptr;
WanPipeline* WanCacheTest::pipeline_ = nullptr;
torch::Tensor* WanCacheTest::context_ = nullptr;
torch::Tensor* WanCacheTest::context_null_ = nullptr;

TEST_F(WanCacheTest, IntervalOneReproducesTheUncachedGoldenRunExactly) {
  auto every_step = cache::Preset("taylorseer-wan");
  every_step.interval = 1;
  const int steps = std::stoi(golden_->Meta("steps"));
  GenerationStats stats;
  const auto cached = Run(Options(every_step, steps), &stats);
  EXPECT_TRUE(torch::equal(cached, Run(Options({}, steps))));
  EXPECT_TRUE(testing::TensorsClose(cached, golden_->Get("latents")));
  EXPECT_EQ(stats.full_steps, steps);
  EXPECT_EQ(stats.predicted_steps, 0);
}

TEST_F(WanCacheTest, CachedRunsAreDeterministicAndCountTheirSteps) {
  auto config = cache::Preset("taylorseer-wan");
  config.interval = 3;
  GenerationStats stats;
  const auto first = Run(Options(config), &stats);
  EXPECT_TRUE(torch::equal(first, Run(Options(config))));
  EXPECT_FALSE(torch::equal(first, Run(Options({}))));
  EXPECT_EQ(stats.full_steps, 4);  // 0, 3, 6, 9 of 12
  EXPECT_EQ(stats.predicted_steps, 8);
  EXPECT_EQ(stats.model_calls, 24);  // predicted steps still run embeddings, gates and head
  EXPECT_GT(stats.forecast_seconds, 0);
  EXPECT_TRUE(torch::isfinite(first).all().item<bool>());

  // Memory: 2 streams × 3 sums of the folded stack × (order + 1) × tokens × dim × 4 bytes, and one forward's 2
  // gated sums while they are added up, whatever the depth.
  const std::int64_t sum_bytes = SumBytes();
  const std::int64_t expected = 2 * 3 * 2 * sum_bytes + 2 * sum_bytes;
  EXPECT_EQ(stats.cache_estimated_bytes, expected);
  EXPECT_EQ(stats.cache_peak_bytes, expected);
}

TEST_F(WanCacheTest, TaylorSeerRunsNoBlockOnPredictedSteps) {
  int block_calls = 0;
  pipeline_->dit()->trace = [&](const std::string&, const torch::Tensor&) { ++block_calls; };
  GenerationStats stats;
  Run(Options(cache::Preset("taylorseer-wan")), &stats);
  pipeline_->dit()->trace = nullptr;
  EXPECT_GT(stats.predicted_steps, 0);
  EXPECT_EQ(stats.cache_policy, cache::Policy::kTaylorSeer);
  EXPECT_EQ(block_calls, 2 * stats.full_steps * static_cast<int>(pipeline_->dit()->config().num_layers));
}

TEST_F(WanCacheTest, LiteModeSkipsEveryBlockOnPredictedSteps) {
  int block_calls = 0;
  pipeline_->dit()->trace = [&](const std::string&, const torch::Tensor&) { ++block_calls; };
  GenerationStats stats;
  const auto latents = Run(Options(cache::Preset("lite")), &stats);
  pipeline_->dit()->trace = nullptr;
  const int layers = static_cast<int>(pipeline_->dit()->config().num_layers);
  EXPECT_EQ(block_calls, 2 * stats.full_steps * layers);
  EXPECT_GT(stats.predicted_steps, 0);
  EXPECT_EQ(stats.cache_policy, cache::Policy::kLite);
  const auto noise = golden_->Get("noise");                      // its size only
  EXPECT_EQ(stats.cache_peak_bytes, 2 * 3 * noise.numel() * 4);  // 2 streams × (order 2 + 1) × output × fp32
  EXPECT_TRUE(torch::isfinite(latents).all().item<bool>());
}

TEST_F(WanCacheTest, BudgetRefusesOrFallsBack) {
  auto config = cache::Preset("taylorseer-wan");
  config.budget_bytes = 64 * 1024;
  try {
    Run(Options(config));
    FAIL() << "the over-budget cache ran";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
  }
  config.over_budget = cache::OverBudget::kFallBackToLite;
  GenerationStats stats;
  Run(Options(config), &stats);
  EXPECT_EQ(stats.cache_policy, cache::Policy::kLite);
  EXPECT_LE(stats.cache_peak_bytes, config.budget_bytes);
}

TEST_F(WanCacheTest, Fp8FactorsStayCloseToFp32Factors) {
  auto config = cache::Preset("taylorseer-wan");
  config.interval = 3;
  const auto fp32 = Run(Options(config));
  config.factor_dtype = cache::FactorDType::kFloat8E4M3;
  GenerationStats stats;
  const auto fp8 = Run(Options(config), &stats);
  const double relative = ((fp8 - fp32).norm() / fp32.norm()).item<double>();
  EXPECT_LT(relative, 0.05);
  std::printf("fp8 factors: latents rel. L2 vs fp32 factors %.3e, cache %lld bytes\n", relative,
              static_cast<long long>(stats.cache_peak_bytes));
}

TEST_F(WanCacheTest, ReusedGuidanceRunsOnlyTheUnconditionalPassOnPredictedSteps) {
  auto config = cache::Preset("taylorseer-cfg");
  config.interval = 3;
  GenerationStats stats;
  std::vector<torch::Tensor> differences;
  const auto latents = pipeline_->Denoise(
      golden_->Input("noise"), {*context_, *context_null_}, Options(config), {},
      [&](const dit::ObservedStep& s) { differences.push_back(s.guidance_difference); }, &stats);
  EXPECT_EQ(stats.full_steps, 4);  // 0, 3, 6, 9 of 12
  EXPECT_EQ(stats.model_calls, 2 * 4 + 8);
  // Only the negative prompt's pass keeps factors: half the memory of forecasting both.
  GenerationStats separate_stats;
  auto separate = config;
  separate.guidance = cache::GuidanceCache::kSeparate;
  const auto separate_latents = Run(Options(separate), &separate_stats);
  const std::int64_t working = 2 * SumBytes();  // the gated sums of the forward under way, one at a time
  EXPECT_EQ(2 * (stats.cache_estimated_bytes - working), separate_stats.cache_estimated_bytes - working);
  EXPECT_EQ(2 * (stats.cache_peak_bytes - working), separate_stats.cache_peak_bytes - working);
  // A predicted step guides with the last full step's difference, as it was.
  for (const int step : {1, 2}) EXPECT_TRUE(torch::equal(differences[step], differences[0])) << step;
  for (const int step : {10, 11}) EXPECT_TRUE(torch::equal(differences[step], differences[9])) << step;
  EXPECT_FALSE(torch::equal(differences[3], differences[0]));
  EXPECT_TRUE(torch::isfinite(latents).all().item<bool>());
  // Not the run that forecasts both passes, and deterministic.
  EXPECT_FALSE(torch::allclose(latents, separate_latents));
  EXPECT_TRUE(torch::equal(latents, Run(Options(config))));
  // At interval 1 every step is full: the uncached run.
  config.interval = 1;
  EXPECT_TRUE(torch::equal(Run(Options(config)), Run(Options({}))));
}

TEST_F(WanCacheTest, CalibratedGuidanceScalesTheDifferenceAndNeedsACalibration) {
  auto config = cache::Preset("taylorseer-cfg-calibrated");
  config.interval = 3;
  EXPECT_FAILS(Run(Options(config)), kFailedPrecondition, cache::kCalibrationFile);

  auto options = Options(config);
  const auto sigmas = schedulers::MakeFlowScheduler(options.schedule)->sigmas();
  cache::GuidanceCalibration calibration;
  calibration.sigmas = {sigmas.front(), sigmas.back()};
  calibration.difference_rms = {2.0, 0.5};
  options.calibration = &calibration;
  std::vector<torch::Tensor> differences;
  pipeline_->Denoise(golden_->Input("noise"), {*context_, *context_null_}, options, {},
                     [&](const dit::ObservedStep& s) { differences.push_back(s.guidance_difference); });
  for (const int step : {1, 2}) {
    const double scale = calibration.DifferenceRmsAt(sigmas[step]) / calibration.DifferenceRmsAt(sigmas[0]);
    EXPECT_LT(scale, 1.0);
    EXPECT_TRUE(torch::allclose(differences[step], differences[0] * scale)) << step;
  }
  // The batch of both passes takes the same steps.
  auto batched_load = pipeline_->options();
  batched_load.batch_cfg = true;
  auto batched = WanPipeline::Load(golden_->CheckpointDir().string(), batched_load);
  EXPECT_TRUE(testing::TensorsClose(batched->Denoise(golden_->Input("noise"), {*context_, *context_null_}, options),
                                    pipeline_->Denoise(golden_->Input("noise"), {*context_, *context_null_}, options)));
}

}  // namespace
}  // namespace vidgen::wan
