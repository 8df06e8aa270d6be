#include "tools/bench_calibrate.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>

#include "cache/calibration.h"
#include "common/error.h"
#include "models/demo/world.h"
#include "models/families.h"
#include "models/io/json_config.h"
#include "models/wan/pipeline.h"

namespace vidgen::tools {
namespace {

constexpr std::size_t kMaxPrompts = 10000;

std::vector<std::string> CalibrationPrompts(const CalibrateOptions& options) {
  std::vector<std::string> prompts;
  if (options.prompts_file.empty()) {
    // Training prompts: the held-out ones are what the quality benchmark measures on.
    for (const auto& spec : demo::AllClips()) {
      if (!demo::HeldOut(spec)) prompts.push_back(demo::Prompt(spec));
    }
  } else {
    std::ifstream in(options.prompts_file);
    if (!in) Fail(ErrorCode::kNotFound, "cannot read the prompts file '{}'", options.prompts_file);
    for (std::string line; prompts.size() < kMaxPrompts && std::getline(in, line);) {
      if (!line.empty()) prompts.push_back(line);
    }
  }
  if (prompts.empty()) Fail(ErrorCode::kInvalidArgument, "no prompts to calibrate with");
  if (prompts.size() > static_cast<std::size_t>(options.prompts)) {
    prompts.resize(static_cast<std::size_t>(options.prompts));
  }
  return prompts;
}

}  // namespace

int RunCalibrate(const CalibrateOptions& options) {
  torch::NoGradGuard no_grad;
  torch::set_num_threads(options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency()));
  if (options.prompts < 1) Fail(ErrorCode::kInvalidArgument, "--prompts must be at least 1");
  if (options.guidance == 1.0) {
    Fail(ErrorCode::kInvalidArgument, "at guidance 1 there is no guidance difference to calibrate");
  }
  if (DetectFamily(options.model_dir) != spec::Family::kWan) {
    Fail(ErrorCode::kInvalidArgument,
         "'{}' is not a Wan checkpoint: the calibration measures classifier-free guidance's two passes, and "
         "HunyuanVideo's guidance is embedded in one",
         options.model_dir);
  }
  wan::WanLoadOptions load;
  load.dtype = torch::kFloat;
  load.load_calibration = false;  // the one it replaces may be broken
  auto pipeline = wan::WanPipeline::Load(options.model_dir, load);

  GenerationRequest request = vidgen::FamilyDefaults(spec::Family::kWan);
  std::string negative = wan::kDefaultNegativePrompt;
  {
    io::JsonConfig config(options.model_dir + "/config.json", "Wan config");
    config.Descend("vidgen_defaults");
    config.Read("width", request.width);
    config.Read("height", request.height);
    config.Read("frames", request.frames);
    config.Read("negative_prompt", negative);
  }
  if (options.width > 0) request.width = options.width;
  if (options.height > 0) request.height = options.height;
  if (options.frames > 0) request.frames = options.frames;
  request.steps = options.steps;
  request.guidance_scale = options.guidance;
  request.shift = options.shift;
  request.solver = schedulers::ParseSolver(options.solver);

  dit::SamplerOptions sampler;
  sampler.schedule = {request.solver, request.steps, request.shift, /*integer_timesteps=*/true};
  sampler.guidance_scale = request.guidance_scale;
  cache::GuidanceCalibration calibration;
  calibration.solver = options.solver;
  calibration.steps = options.steps;
  calibration.shift = options.shift;
  calibration.guidance = options.guidance;
  // The scheduler's sigmas end with its end point (0), which is not a step.
  calibration.sigmas = schedulers::MakeFlowScheduler(sampler.schedule)->sigmas();
  calibration.sigmas.resize(static_cast<std::size_t>(request.steps));
  calibration.difference_rms.assign(calibration.sigmas.size(), 0.0);

  const auto prompts = CalibrationPrompts(options);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    request.prompt = prompts[i];
    pipeline->Validate(request);
    const auto contexts = pipeline->EncodeText(pipeline->tokenizer().Encode({prompts[i], negative}));
    request.seed = 1'000'000 + i;  // seeds of their own, apart from the quality benchmark's
    const auto noise =
        SeededNoise(request, pipeline->dit()->config().in_dim, /*space_stride=*/8, c10::Device(torch::kCPU));
    pipeline->Denoise(noise, {contexts[0], contexts[1]}, sampler, {}, [&](const dit::ObservedStep& s) {
      const double rms = s.guidance_difference.pow(2).mean().sqrt().item<double>();
      calibration.difference_rms[static_cast<std::size_t>(s.step)] += rms / static_cast<double>(prompts.size());
    });
    fmt::print("calibrated on prompt {} of {}: {}\n", i + 1, prompts.size(), prompts[i]);
  }
  calibration.prompts = static_cast<int>(prompts.size());
  const auto out =
      options.out.empty() ? (std::filesystem::path(options.model_dir) / cache::kCalibrationFile).string() : options.out;
  cache::SaveCalibration(calibration, out);
  fmt::print(
      "wrote {} ({} steps, {} prompts, guidance {}, difference RMS {:.4g} at the first step, {:.4g} at the "
      "last)\n",
      out, calibration.steps, calibration.prompts, calibration.guidance, calibration.difference_rms.front(),
      calibration.difference_rms.back());
  return 0;
}

}  // namespace vidgen::tools
