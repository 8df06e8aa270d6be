// Wan2.1 image-to-video (golden wan_i2v_* cases) and first-last-frame video (wan_flf2v_*) against the official
// generate(): the images as the pipeline prepares them, the video size, the conditioning latents, the CLIP
// context, the step-0 transformer call block by block, every step, the decoded video, and the whole request.
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/wan/pipeline.h"
#include "tests/support/golden.h"
#include "tests/wan/golden_run.h"

namespace vidgen::wan {
namespace {

std::pair<std::int64_t, std::int64_t> MetaSize(const testing::GoldenCase& golden, const std::string& key) {
  std::istringstream in(golden.Meta(key));
  std::int64_t height = 0, width = 0;
  in >> height >> width;
  return {height, width};
}

class WanImageGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WanImageGoldenTest, MatchesTheReferenceStepByStep) {
  const testing::GoldenCase golden(GetParam());
  const bool flf2v = golden.Has("first");
  WanLoadOptions load;
  load.device = testing::TestDevice();
  auto pipeline = WanPipeline::Load(golden.CheckpointDir().string(), load);
  ASSERT_EQ(pipeline->model_type(), flf2v ? WanModelType::kFLF2V : WanModelType::kI2V);
  EXPECT_EQ(DefaultNegativePrompt(pipeline->model_type()), golden.Meta("negative_prompt"));

  // The images as generate() takes them, and the video size from the first one's aspect ratio.
  const auto first = ImageToModel(golden.Get(flf2v ? "first_u8" : "image_u8"));
  EXPECT_TRUE(testing::TensorsClose(first, golden.Get(flf2v ? "first" : "image"), 1e-6));
  at::Tensor last;
  if (flf2v) {
    const auto given = ImageToModel(golden.Get("last_u8"));
    EXPECT_TRUE(testing::TensorsClose(given, golden.Get("last"), 1e-6));
    last = FitLastImage(given, first.size(1), first.size(2));
    EXPECT_TRUE(testing::TensorsClose(last, golden.Get("last_cropped"), 0));
  }
  const auto size = ImageLatentSize(first.size(1), first.size(2), std::stod(golden.Meta("max_area")), 8,
                                    pipeline->dit()->config().patch_size[1]);
  EXPECT_EQ(std::pair(size.height, size.width), MetaSize(golden, "latent_hw"));
  const auto [video_h, video_w] = MetaSize(golden, "video_hw");
  EXPECT_TRUE(testing::TensorsClose(ResizeBicubic(first, video_h, video_w),
                                    golden.Get(flf2v ? "first_resized" : "image_resized")));
  if (flf2v) {
    EXPECT_TRUE(testing::TensorsClose(ResizeBicubic(last, video_h, video_w), golden.Get("last_resized")));
  }

  // The CLIP context and the conditioning latents.
  const std::int64_t frames = std::stoll(golden.Meta("frame_num"));
  const auto image = pipeline->EncodeImages(first, last, frames, size);
  EXPECT_TRUE(testing::TensorsClose(image.clip_features, golden.Get("clip_fea")));
  EXPECT_TRUE(testing::TensorsClose(image.y, golden.Get("y")));
  EXPECT_TRUE(
      testing::TensorsClose(pipeline->dit()->img_emb(golden.Input("clip_fea"))[0], golden.Get("debug.img_emb")));

  // The step-0 conditional call of the transformer, block by block, from the reference's inputs.
  const auto [context, context_null, options] = ReadGoldenRun(golden, *pipeline);
  EXPECT_TRUE(testing::TensorsClose(context, golden.Get("context")));
  EXPECT_TRUE(testing::TensorsClose(context_null, golden.Get("context_null")));
  WanDitInput input;
  input.x = {torch::cat({golden.Input("noise"), golden.Input("y")})};
  input.timesteps = golden.Input("timesteps").slice(0, 0, 1).to(torch::kFloat64);
  input.context = {golden.Input("context")};
  input.seq_len = std::stoll(golden.Meta("seq_len"));
  input.clip_features = golden.Input("clip_fea");
  int traced = 0;
  pipeline->dit()->trace = [&](const std::string& name, const at::Tensor& value) {
    EXPECT_TRUE(testing::TensorsClose(value[0], golden.Get("debug." + name))) << name;
    ++traced;
  };
  EXPECT_TRUE(testing::TensorsClose(pipeline->dit()->forward(input)[0], golden.Get("step0.cond")));
  EXPECT_EQ(traced, pipeline->dit()->config().num_layers);
  pipeline->dit()->trace = nullptr;

  // Every step: cond and uncond share the CLIP context and y.
  const WanCondition condition{context, context_null, {golden.Get("clip_fea"), golden.Get("y")}};
  int steps_seen = 0;
  const auto latents = pipeline->Denoise(golden.Get("noise"), condition, options, {}, [&](const dit::ObservedStep& s) {
    const std::string prefix = "step" + std::to_string(s.step) + ".";
    EXPECT_TRUE(testing::TensorsClose(s.velocity, golden.Get(prefix + "noise_pred"), 1e-3)) << prefix;
    EXPECT_TRUE(testing::TensorsClose(s.latents, golden.Get(prefix + "latents"), 1e-3)) << prefix;
    ++steps_seen;
  });
  EXPECT_EQ(steps_seen, options.schedule.steps);
  EXPECT_TRUE(testing::TensorsClose(latents, golden.Get("latents"), 1e-3));
  // A cache with a full step every step is no cache.
  auto every_step = options;
  every_step.cache = cache::Preset("taylorseer-wan");
  every_step.cache.interval = 1;
  EXPECT_TRUE(torch::equal(pipeline->Denoise(golden.Get("noise"), condition, every_step), latents));
  EXPECT_TRUE(testing::TensorsClose(pipeline->Decode(golden.Input("latents")), golden.Get("video")));

  // The whole request as a user sends it: the images' bytes, an area, the default negative prompt.
  GenerationRequest request;
  request.prompt = golden.Meta("prompt");
  request.image = golden.Get(flf2v ? "first_u8" : "image_u8");
  if (flf2v) request.last_image = golden.Get("last_u8");
  const auto area = std::stoll(golden.Meta("max_area"));
  request.width = area / 16;  // any sides of that area
  request.height = 16;
  request.frames = frames;
  request.steps = options.schedule.steps;
  request.shift = options.schedule.shift;
  request.guidance_scale = options.guidance_scale;
  request.solver = options.schedule.solver;
  request.seed = std::stoull(golden.Meta("seed"));
  const auto result = pipeline->Generate(request);
  const auto expected = ToVideoFrames(golden.Get("video"));
  ASSERT_EQ(result.frames.sizes(), expected.sizes());
  // Frames truncate to uint8, so a value at the edge of a level may land one level off.
  EXPECT_LE((result.frames.to(torch::kInt) - expected.to(torch::kInt)).abs().max().item<int>(), 1);
}

INSTANTIATE_TEST_SUITE_P(I2V, WanImageGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_i2v")));
INSTANTIATE_TEST_SUITE_P(FLF2V, WanImageGoldenTest, ::testing::ValuesIn(testing::GoldenCases("wan_flf2v")));

}  // namespace
}  // namespace vidgen::wan
