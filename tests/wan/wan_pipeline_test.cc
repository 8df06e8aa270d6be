// The whole Wan2.1 text-to-video run against the reference (golden wan_t2v_* cases), step by step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/wan/pipeline.h"
#include "tests/support/golden.h"
#include "tests/wan/golden_run.h"

namespace vidgen::wan {
namespace {

class WanT2VGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanT2VGoldenTest, MatchesTheReferenceStepByStep) {
  const testing::GoldenCase golden(GetParam());
  WanLoadOptions load;
  load.device = testing::TestDevice();
  auto pipeline = WanPipeline::Load(golden.CheckpointDir().string(), load);
  const auto [context, context_null, options] = ReadGoldenRun(golden, *pipeline);

  const auto scheduler = schedulers::MakeFlowScheduler(options.schedule);
  EXPECT_TRUE(testing::TensorsClose(torch::tensor(scheduler->sigmas()), golden.Get("sigmas"), 1e-6));
  EXPECT_TRUE(torch::equal(torch::tensor(scheduler->timesteps()).to(torch::kFloat), golden.Get("timesteps")));

  int steps_seen = 0;
  const auto latents =
      pipeline->Denoise(golden.Get("noise"), {context, context_null}, options, {}, [&](const dit::ObservedStep& s) {
        const std::string prefix = "step" + std::to_string(s.step) + ".";
        EXPECT_TRUE(testing::TensorsClose(s.velocity, golden.Get(prefix + "noise_pred"), 1e-4)) << prefix;
        EXPECT_TRUE(testing::TensorsClose(s.latents, golden.Get(prefix + "latents"), 1e-4)) << prefix;
        ++steps_seen;
      });
  EXPECT_EQ(steps_seen, options.schedule.steps);
  EXPECT_TRUE(testing::TensorsClose(latents, golden.Get("latents"), 1e-4));
  EXPECT_TRUE(testing::TensorsClose(pipeline->Decode(latents), golden.Get("video"), 1e-4));

  // The two guidance passes as one batch of two: the same run.
  load.batch_cfg = true;
  auto batched = WanPipeline::Load(golden.CheckpointDir().string(), load);
  EXPECT_TRUE(testing::TensorsClose(batched->Denoise(golden.Get("noise"), {context, context_null}, options),
                                    golden.Get("latents"), 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Golden, WanT2VGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_t2v")));

}  // namespace
}  // namespace vidgen::wan
