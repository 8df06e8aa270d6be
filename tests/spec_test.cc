// The request spec that both the server and the worker apply: defaults, the field each refusal names, its JSON form,
// and that the core takes every value the spec allows (solvers, cache settings).
#include "spec/spec.h"

#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/families.h"
#include "models/job_request.h"
#include "models/schedulers/flow_scheduler.h"
#include "spec/json.h"
#include "tests/support/expect_error.h"
#include "tests/support/scratch_dir.h"

namespace vidgen::spec {
namespace {

ModelInfo Wan() {
  return {"wan", Family::kWan, std::nullopt, 16};
}

JobRequest Request() {
  JobRequest request;
  request.model = "wan";
  request.prompt = "a cat";
  return request;
}

// The message of the refusal, which must be INVALID_ARGUMENT.
std::string Refusal(JobRequest request, const ModelInfo& model = Wan()) {
  try {
    Normalize(request, model, Limits{});
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(SpecTest, ImagesMustFitTheModelsTaskAndLorasItsList) {
  auto i2v = Wan();
  i2v.task = Task::kImageToVideo;
  i2v.loras = {"anime", "distill"};
  auto request = Request();
  EXPECT_NE(Refusal(request, i2v).find("spec.image is required"), std::string::npos);
  request.image = "png bytes";
  EXPECT_NO_THROW(Normalize(request, i2v, Limits{}));
  EXPECT_NE(Refusal(request).find("spec.image: model 'wan' is text-to-video"), std::string::npos);
  request.last_image = "png bytes";
  EXPECT_NE(Refusal(request, i2v).find("spec.last_image"), std::string::npos);
  request.last_image.clear();
  Limits small;
  small.max_image_bytes = 4;
  EXPECT_THROW(Normalize(request, i2v, small), Error);

  request.loras = {{"distill", 1.0}, {"anime", 0.5}};
  EXPECT_NO_THROW(Normalize(request, i2v, Limits{}));
  request.loras.push_back({"sketch", 1.0});
  EXPECT_NE(Refusal(request, i2v).find("spec.loras[2]: model 'wan' has no LoRA 'sketch' (it has: anime, distill)"),
            std::string::npos);
  request.loras.back() = {"anime", 1.0};
  EXPECT_NE(Refusal(request, i2v).find("named twice"), std::string::npos);
  auto many = i2v;
  for (int i = 0; i < 1000; ++i) many.loras.push_back(fmt::format("style-{}", i));
  request.loras = {{"sketch", 1.0}};
  const auto refusal = Refusal(request, many);
  EXPECT_NE(refusal.find("and 982 more"), std::string::npos) << refusal;
  EXPECT_LT(refusal.size(), 1000u);  // fits a gRPC status
  request.loras = {{"anime", std::numeric_limits<double>::quiet_NaN()}};
  EXPECT_NE(Refusal(request, i2v).find("spec.loras[0].scale"), std::string::npos);
}

// A step-distilled model declares its schedule: a request naming neither steps nor timesteps takes it.
TEST(SpecTest, AGivenScheduleComesFromTheModelOrTheRequestAndMustDescend) {
  auto distilled = Wan();
  JobRequest defaults;
  defaults.timesteps = {1000, 750, 500, 250};
  defaults.guidance = 1.0;
  defaults.solver = "euler";
  distilled.defaults = defaults;
  auto request = Request();
  Normalize(request, distilled, Limits{});
  EXPECT_EQ(request.timesteps, defaults.timesteps);
  EXPECT_EQ(request.steps, 4);
  EXPECT_EQ(request.guidance, 1.0);
  EXPECT_EQ(request.solver, "euler");

  request = Request();
  request.steps = 20;  // the user's own step count: evenly spaced
  Normalize(request, distilled, Limits{});
  EXPECT_TRUE(request.timesteps.empty());

  request = Request();
  request.timesteps = {900, 600, 300};
  Normalize(request, Wan(), Limits{});
  EXPECT_EQ(request.steps, 3);
  request.timesteps = {900, 900, 300};
  EXPECT_NE(Refusal(request).find("spec.timesteps"), std::string::npos);
  request.timesteps = {1001, 300};
  request.steps = 2;
  EXPECT_NE(Refusal(request).find("spec.timesteps"), std::string::npos);
  request.timesteps = {900, 300};
  request.steps = 5;
  EXPECT_NE(Refusal(request).find("2 values for 5 steps"), std::string::npos);
}

// A step-distilled LoRA declares its schedule: a job naming it takes it before the model's defaults, a job that
// does not name it, or sets its own steps, does not.
TEST(SpecTest, ALorasDefaultsComeBeforeTheModelsForJobsThatNameIt) {
  auto model = Wan();
  model.loras = {"anime", "distill"};
  JobRequest distill;
  distill.timesteps = {1000, 750, 500, 250};
  distill.guidance = 1.0;
  distill.solver = "euler";
  JobRequest anime;
  anime.guidance = 3.0;
  anime.negative_prompt = "blurry";
  model.lora_defaults = {{"distill", distill}, {"anime", anime}};
  model.defaults = JobRequest{};
  model.defaults->guidance = 4.0;
  model.defaults->negative_prompt = " ";

  auto request = Request();
  request.loras = {{"distill", 1.0}, {"anime", 0.7}};
  Normalize(request, model, Limits{});
  EXPECT_EQ(request.timesteps, distill.timesteps);
  EXPECT_EQ(request.steps, 4);
  EXPECT_EQ(request.guidance, 1.0);              // the first LoRA named that sets it
  EXPECT_EQ(request.negative_prompt, "blurry");  // the second LoRA's, before the model's
  EXPECT_EQ(request.solver, "euler");

  request = Request();
  request.loras = {{"anime", 0.7}, {"distill", 1.0}};
  Normalize(request, model, Limits{});
  EXPECT_EQ(request.guidance, 3.0);

  request = Request();
  request.loras = {{"distill", 1.0}};
  request.steps = 8;  // the user's own count: evenly spaced
  Normalize(request, model, Limits{});
  EXPECT_TRUE(request.timesteps.empty());
  EXPECT_EQ(request.steps, 8);

  request = Request();
  Normalize(request, model, Limits{});
  EXPECT_EQ(request.steps, 50);
  EXPECT_EQ(request.guidance, 4.0);
  EXPECT_EQ(request.solver, "unipc");
}

TEST(SpecTest, UnsetFieldsTakeTheModelsThenTheFamilysDefaults) {
  auto request = Request();
  Normalize(request, Wan(), Limits{});
  EXPECT_EQ(request.width, 832);
  EXPECT_EQ(request.frames, 81);
  EXPECT_EQ(request.solver, "unipc");
  EXPECT_EQ(request.cache.preset, "none");
  EXPECT_EQ(request.output.container, "mp4");
  EXPECT_EQ(request.output.codec, "h264");
  EXPECT_EQ(request.output.fps, 16);
  auto model = Wan();
  model.defaults = JobRequest{};
  model.defaults->width = model.defaults->height = 32;
  model.defaults->negative_prompt = " ";
  request = Request();
  Normalize(request, model, Limits{});
  EXPECT_EQ(request.width, 32);
  EXPECT_EQ(request.negative_prompt, " ");
  EXPECT_EQ(request.frames, 81);  // the family's, where the model declares none
  request = Request();
  request.model = "hy";
  Normalize(request, {"hy", Family::kHunyuanVideo, std::nullopt, 16}, Limits{});
  EXPECT_EQ(request.solver, "euler");
  EXPECT_EQ(request.guidance, 6.0);
}

TEST(SpecTest, EveryRefusalNamesItsField) {
  const std::vector<std::pair<std::function<void(JobRequest&)>, std::string>> cases = {
      {[](auto& r) { r.width = 100; }, "spec.width"},
      {[](auto& r) { r.height = -16; }, "spec.height"},
      {[](auto& r) { r.frames = 10; }, "spec.frames"},
      {[](auto& r) { r.steps = 100'000; }, "spec.steps"},
      {[](auto& r) { r.guidance = -1; }, "spec.guidance"},
      {[](auto& r) { r.shift = -2; }, "spec.shift"},
      {[](auto& r) { r.seed = -5; }, "spec.seed"},
      {[](auto& r) { r.solver = "rk4"; }, "spec.solver"},
      {[](auto& r) { r.cache.preset = "magic"; }, "spec.cache.preset"},
      {[](auto& r) { r.cache.preset = "taylorseer-wan", r.cache.order = 9; }, "spec.cache.order"},
      // What the worker's cache refuses, the server refuses: step 0 has nothing to forecast from.
      {[](auto& r) { r.cache.preset = "taylorseer-wan", r.cache.warmup = 0; }, "spec.cache.warmup"},
      {[](auto& r) { r.cache.preset = "fora", r.cache.interval = 0; }, "spec.cache.interval"},
      {[](auto& r) { r.cache.preset = "fora", r.cache.guidance = "both"; }, "spec.cache.guidance"},
      {[](auto& r) { r.cache.preset = "fora", r.cache.expansion = "fourier"; }, "spec.cache.expansion"},
      {[](auto& r) { r.cache.preset = "fora", r.cache.calibrated = true; }, "spec.cache.calibrated"},
      {[](auto& r) { r.output.container = "avi"; }, "spec.output.container"},
      {[](auto& r) { r.output.codec = "vp9"; }, "spec.output.codec"},
      {[](auto& r) { r.output.fps = 500; }, "spec.output.fps"},
      {[](auto& r) { r.parallel.ulysses = -1; }, "spec.parallel.ulysses"},
      {[](auto& r) { r.prompt = ""; }, "spec.prompt"},
      {[](auto& r) { r.prompt = "caf\xC3"; }, "spec.prompt is not valid UTF-8"},
      {[](auto& r) { r.negative_prompt = "\xED\xA0\x80"; }, "spec.negative_prompt is not valid UTF-8"},
      {[](auto& r) { r.prompt = std::string(5000, 'a'); }, "spec.prompt is 5000 bytes"},
  };
  for (const auto& [change, field] : cases) {
    auto request = Request();
    change(request);
    const auto message = Refusal(request);
    EXPECT_NE(message.find(field), std::string::npos) << field << ": " << message;
  }
  auto request = Request();
  request.width = 48;
  EXPECT_NE(Refusal(request, {"wan", Family::kWan, std::nullopt, 32}).find("multiple of 32"), std::string::npos);
  request = Request();
  request.model = "hy";
  request.guidance = 0;  // HunyuanVideo's embedded guidance: 0 is no value
  request.steps = 0;
  EXPECT_NO_THROW(Normalize(request, {"hy", Family::kHunyuanVideo, std::nullopt, 16}, Limits{}));
}

TEST(SpecTest, Utf8) {
  EXPECT_TRUE(IsUtf8("plain, ünïcode, 日本語, 🎥"));
  EXPECT_FALSE(IsUtf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(IsUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\xE2\x82"));          // cut short
}

// A checkpoint's (or a LoRA's) defaults fill a job's unset fields; the LoRAs a job stacks are its own.
TEST(SpecTest, DefaultsThatNameLorasAreRefused) {
  testing::ScratchDir scratch;
  std::ofstream(scratch.path() / "config.json") << R"({"vidgen_defaults": {"steps": 4, "loras": [{"name": "x"}]}})";
  EXPECT_FAILS(ReadCheckpointDefaults(scratch.path().string()), kInvalidArgument, "defaults cannot name LoRAs");
  std::ofstream(scratch.path() / "config.json") << R"({"vidgen_defaults": {"steps": 4}})";
  EXPECT_EQ(ReadCheckpointDefaults(scratch.path().string())->steps, 4);
}

TEST(SpecTest, JsonRoundTripsAndRefusesUnknownFields) {
  auto request = Request();
  request.width = 64;
  request.guidance = 3.5;
  request.cache.preset = "fora";
  request.cache.warmup = 2;
  request.cache.guidance = "reuse-difference";
  request.cache.calibrated = true;
  request.cache.expansion = "newton";
  request.output.container = "webm";
  request.timesteps = {1000, 750, 500, 250};
  request.loras = {{"distill", 1.0}, {"anime", 0.7}};
  EXPECT_EQ(JobRequestFromJson(ToJson(request), "body"), request);
  EXPECT_EQ(JobRequestFromJson(nlohmann::json::parse(R"({"loras": [{"name": "anime"}]})"), "x").loras,
            (std::vector<LoraRequest>{{"anime", 1.0}}));  // the scale is 1 unless given
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json::parse(R"({"loras": "anime"})"), "x"), kInvalidArgument,
               "x.loras is not an array of at most 64 objects");
  EXPECT_FAILS(
      JobRequestFromJson(nlohmann::json::parse(R"({"loras": [{"name": "a"}, {"name": "b", "weight": 2}]})"), "x"),
      kInvalidArgument, "x.loras[1] has an unknown field 'weight'");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json::parse(R"({"loras": [{"name": 7}]})"), "x"), kInvalidArgument,
               "x.loras[0].name has the wrong type");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"loras", std::vector<nlohmann::json>(65, {{"name", "a"}})}}, "x"),
               kInvalidArgument, "x.loras is not an array of at most 64 objects");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"timesteps", {1000, "x"}}}, "x"), kInvalidArgument,
               "x.timesteps holds");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"timesteps", {1000, 750.5}}}, "x"), kInvalidArgument,
               "x.timesteps holds 750.5, not an integer");
  // Whole numbers written as floats (Python's json writes 1000.0 for a float) are the integers they are.
  const auto floats = JobRequestFromJson(nlohmann::json{{"timesteps", {1000.0, 750.0}}, {"width", 32.0}}, "x");
  EXPECT_EQ(floats.timesteps, (std::vector<int>{1000, 750}));
  EXPECT_EQ(floats.width, 32);
  const auto unknown = nlohmann::json{{"width", 32}, {"colour", "red"}};
  try {
    JobRequestFromJson(unknown, "vidgen_defaults");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vidgen_defaults has an unknown field 'colour'"), std::string::npos);
  }
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"width", "wide"}}, "x"), kInvalidArgument,
               "x.width has the wrong type");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"cache", {{"order", 1.5}}}}, "x"), kInvalidArgument,
               "x.cache.order has the wrong type");
  EXPECT_FAILS(JobRequestFromJson(nlohmann::json{{"frames", 1LL << 40}}, "x"), kInvalidArgument,
               "x.frames is out of range");
}

// The core takes every name the spec allows, and its family defaults are the spec's.
TEST(SpecTest, TheCoreTakesWhatTheSpecAllows) {
  for (const auto solver : kSolvers) EXPECT_NO_THROW(schedulers::ParseSolver(std::string(solver))) << solver;
  for (const auto preset : cache::PresetNames()) {
    CacheRequest cache;
    cache.preset = preset;
    EXPECT_NO_THROW(CacheConfigOf(cache)) << preset;
  }
  const auto hunyuan = vidgen::FamilyDefaults(Family::kHunyuanVideo);
  EXPECT_EQ(hunyuan.width, spec::FamilyDefaults(Family::kHunyuanVideo).width);
  EXPECT_EQ(hunyuan.solver, schedulers::Solver::kEuler);
}

}  // namespace
}  // namespace vidgen::spec
