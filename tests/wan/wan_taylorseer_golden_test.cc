// The official TaylorSeer-Wan2.1 runs (golden wan_taylorseer_* cases), step by step: the cache settings come from
// each case's metadata, the checkpoint, text and noise from the case.
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/wan/pipeline.h"
#include "tests/support/golden.h"
#include "tests/wan/golden_run.h"

namespace vidgen::wan {
namespace {

// The official settings in vidgen's terms: fresh_threshold is the interval, max_order the order, first_enhance the
// warm-up; the official code expands in the step index and keeps fp32 factors.
cache::CacheConfig CacheOf(const testing::GoldenCase& golden) {
  cache::CacheConfig config;
  if (golden.Meta("cache") == "none") return config;
  EXPECT_EQ(golden.Meta("cache"), "taylorseer");
  EXPECT_EQ(golden.Meta("distance"), "step index");
  EXPECT_EQ(golden.Meta("factor_dtype"), "float32");
  config.policy = cache::Policy::kTaylorSeer;
  config.interval = std::stoi(golden.Meta("interval"));
  config.order = std::stoi(golden.Meta("order"));
  config.warmup = std::stoi(golden.Meta("first_enhance"));
  return config;
}

std::vector<int> Numbers(const std::string& text) {
  std::vector<int> numbers;
  std::istringstream stream(text);
  for (int n; stream >> n;) numbers.push_back(n);
  return numbers;
}

class WanTaylorSeerGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanTaylorSeerGoldenTest, MatchesTheOfficialCachedRunStepByStep) {
  const testing::GoldenCase golden(GetParam());
  WanLoadOptions load;
  load.device = testing::TestDevice();
  auto pipeline = WanPipeline::Load(golden.CheckpointDir().string(), load);
  auto [context, context_null, options] = ReadGoldenRun(golden, *pipeline);
  options.cache = CacheOf(golden);

  // The same steps are full as in the official run.
  std::vector<int> full_steps;
  const auto plan = cache::Plan(options.cache, options.schedule.steps);
  for (int step = 0; step < options.schedule.steps; ++step) {
    if (plan[static_cast<std::size_t>(step)]) full_steps.push_back(step);
  }
  if (options.cache.enabled()) {
    EXPECT_EQ(full_steps, Numbers(golden.Meta("full_steps")));
  }
  const auto expected_full = golden.Get("full_steps").to(torch::kInt).contiguous();
  EXPECT_EQ(full_steps,
            std::vector<int>(expected_full.data_ptr<int>(), expected_full.data_ptr<int>() + expected_full.numel()));

  int steps_seen = 0;
  GenerationStats stats;
  const auto latents = pipeline->Denoise(
      golden.Get("noise"), {context, context_null}, options, {},
      [&](const dit::ObservedStep& s) {
        const std::string prefix = "step" + std::to_string(s.step) + ".";
        EXPECT_TRUE(testing::TensorsClose(s.velocity, golden.Get(prefix + "noise_pred"), 1e-4)) << prefix;
        EXPECT_TRUE(testing::TensorsClose(s.latents, golden.Get(prefix + "latents"), 1e-4)) << prefix;
        ++steps_seen;
      },
      &stats);
  EXPECT_EQ(steps_seen, options.schedule.steps);
  EXPECT_EQ(stats.full_steps, static_cast<int>(full_steps.size()));
  EXPECT_TRUE(testing::TensorsClose(latents, golden.Get("latents"), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Golden, WanTaylorSeerGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_taylorseer")));

}  // namespace
}  // namespace vidgen::wan
