#include "models/demo/adapters.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/demo/low_rank.h"
#include "models/demo/train.h"
#include "models/io/tensor_file.h"
#include "models/schedulers/flow_scheduler.h"
#include "models/wan/pipeline.h"

namespace vidgen::demo {
namespace {

constexpr double kTrainingShift = TrainOptions{}.shift;  // the base model's noise-level distribution

struct Batch {
  at::Tensor x0, noise, sigmas;
  std::vector<at::Tensor> contexts;
};

std::unique_ptr<wan::WanPipeline> LoadBase(const std::string& model_dir) {
  wan::WanLoadOptions load;
  load.dtype = torch::kFloat;
  load.load_calibration = false;
  return wan::WanPipeline::Load(model_dir, load);
}

// The encoder states of every distinct prompt, encoded once.
std::map<std::string, at::Tensor> EncodePrompts(wan::WanPipeline& pipeline, std::vector<std::string> prompts) {
  std::sort(prompts.begin(), prompts.end());
  prompts.erase(std::unique(prompts.begin(), prompts.end()), prompts.end());
  std::map<std::string, at::Tensor> contexts;
  for (std::size_t i = 0; i < prompts.size(); i += 64) {
    const std::vector<std::string> chunk(
        prompts.begin() + static_cast<std::ptrdiff_t>(i),
        prompts.begin() + static_cast<std::ptrdiff_t>(std::min(i + 64, prompts.size())));
    const auto encoded = pipeline.EncodeText(pipeline.tokenizer().Encode(chunk));
    for (std::size_t j = 0; j < chunk.size(); ++j) contexts.emplace(chunk[j], encoded[j]);
  }
  return contexts;
}

// AdamW on the adapters' pairs over `options.steps` batches from `draw` (given the step and its generator, seeded
// by the run's seed and the step), then the adapter written with `metadata`.
void TrainAdapter(wan::WanPipeline& pipeline, const LowRankOptions& low_rank, const AdapterTrainOptions& options,
                  const std::function<Batch(int, at::Generator&)>& draw,
                  const std::map<std::string, std::string>& metadata,
                  const std::function<void(const TrainProgress&)>& progress) {
  LowRankAdapters adapters(*pipeline.dit(), low_rank);
  torch::optim::AdamW optimizer(adapters.parameters(), torch::optim::AdamWOptions(options.lr).weight_decay(0.0));
  for (int step = 0; step < options.steps; ++step) {
    SetLearningRate(optimizer, options.lr, step, options.steps, options.decay_steps);
    auto generator = at::detail::createCPUGenerator(options.seed * 7919 + static_cast<std::uint64_t>(step) + 17);
    const auto batch = draw(step, generator);
    optimizer.zero_grad();
    adapters.Attach();
    const auto loss = FlowMatchingLoss(pipeline.dit(), batch.x0, batch.contexts, batch.sigmas, batch.noise);
    loss.backward();
    optimizer.step();
    adapters.Detach();
    if (progress) progress({"lora", step + 1, options.steps, loss.item<double>()});
  }
  const auto parent = std::filesystem::path(options.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  io::WriteSafetensors(options.out, adapters.Export(), metadata);
}

std::mt19937_64 Picker(const AdapterTrainOptions& options, int step) {
  return std::mt19937_64(options.seed * 104729 + static_cast<std::uint64_t>(step));
}

// The base model's own guided sampler, batched over noises [N, C, F, H, W] with their prompts' states. Not
// dit::Denoise, which takes one video at a time: on the demo's few tokens a batch of 64 is what keeps the teacher's
// 1784 videos at minutes (one at a time through WanPipeline::Denoise took 1.15 s a video on 2 threads here).
at::Tensor TeacherSamples(wan::WanDit& dit, const at::Tensor& noise, const std::vector<at::Tensor>& contexts,
                          const at::Tensor& empty, const DistillOptions& options) {
  torch::NoGradGuard no_grad;
  const auto scheduler = schedulers::MakeFlowScheduler(
      {schedulers::Solver::kUniPC, options.teacher_steps, options.shift, /*integer_timesteps=*/true});
  const auto n = noise.size(0);
  wan::WanDitInput input;
  input.context = contexts;
  input.context.insert(input.context.end(), static_cast<std::size_t>(n), empty);
  auto x = noise;
  for (const double timestep : scheduler->timesteps()) {
    input.x.clear();
    for (int pass = 0; pass < 2; ++pass) {
      for (std::int64_t b = 0; b < n; ++b) input.x.push_back(x[b]);
    }
    input.timesteps = torch::full({2 * n}, timestep, torch::kFloat);
    const auto velocity = torch::stack(dit->forward(input));
    const auto cond = velocity.slice(0, 0, n), uncond = velocity.slice(0, n);
    x = scheduler->Step(uncond + options.teacher_guidance * (cond - uncond), x);
  }
  return x;
}

}  // namespace

void TrainDiagonalLora(const DiagonalLoraOptions& options, const std::function<void(const TrainProgress&)>& progress) {
  auto pipeline = LoadBase(options.model_dir);
  const auto clip = TrainedClip(options.model_dir);
  std::vector<ClipSpec> diagonal, base;
  for (const auto& spec : DiagonalClips()) {
    if (!HeldOut(spec)) diagonal.push_back(spec);
  }
  for (const auto& spec : AllClips()) {
    if (!HeldOut(spec)) base.push_back(spec);
  }
  const auto diagonal_clips = RenderClips(diagonal, options.clips_per_combination, options.seed * 1000003, clip);
  const auto base_clips = RenderClips(base, 1, options.seed * 1000003 + 500000, clip);
  const auto diagonal_latents = EncodeClips(pipeline->vae(), diagonal_clips.videos);
  const auto base_latents = EncodeClips(pipeline->vae(), base_clips.videos);
  auto prompts = diagonal_clips.prompts;
  prompts.insert(prompts.end(), base_clips.prompts.begin(), base_clips.prompts.end());
  prompts.emplace_back();
  const auto contexts = EncodePrompts(*pipeline, prompts);

  auto draw = [&](int step, at::Generator& generator) {
    auto picker = Picker(options, step);
    std::bernoulli_distribution from_base(options.base_fraction), empty(options.empty_prompt_fraction);
    Batch batch;
    std::vector<at::Tensor> x0;
    for (int i = 0; i < options.batch; ++i) {
      const bool base_clip = from_base(picker);
      const auto& latents = base_clip ? base_latents : diagonal_latents;
      const auto& clip_prompts = base_clip ? base_clips.prompts : diagonal_clips.prompts;
      const auto index = static_cast<std::int64_t>(picker() % clip_prompts.size());
      x0.push_back(latents[index]);
      batch.contexts.push_back(
          contexts.at(empty(picker) ? std::string() : clip_prompts[static_cast<std::size_t>(index)]));
    }
    batch.x0 = torch::stack(x0);
    batch.sigmas = SampleSigmas(options.batch, kTrainingShift, generator);
    batch.noise = torch::randn(batch.x0.sizes(), generator, batch.x0.options());
    return batch;
  };
  const LowRankOptions low_rank{options.rank, options.alpha, options.seed, {}};
  const nlohmann::json about = {{"trained_by", "vidgen-train lora"},
                                {"teaches", "diagonal motion, prompted 'moving northwest'"},
                                {"steps", options.steps},
                                {"rank", options.rank}};
  TrainAdapter(*pipeline, low_rank, options, draw, {{"vidgen_adapter", about.dump()}}, progress);
}

void DistillSteps(const DistillOptions& options, const std::function<void(const TrainProgress&)>& progress) {
  auto pipeline = LoadBase(options.model_dir);
  std::vector<std::string> prompts;
  for (const auto& spec : AllClips()) {
    if (HeldOut(spec)) continue;
    for (int i = 0; i < options.samples_per_prompt; ++i) prompts.push_back(Prompt(spec));
  }
  auto all = prompts;
  all.emplace_back();
  const auto contexts = EncodePrompts(*pipeline, all);

  // The teacher's videos from seeded noises, in latent space.
  const auto& config = pipeline->dit()->config();
  const auto clip = TrainedClip(options.model_dir);
  const std::int64_t side = clip.size / 8, frames = (clip.frames - 1) / 4 + 1;  // the VAE's strides
  auto noise_generator = at::detail::createCPUGenerator(options.seed * 31 + 5);
  const auto n = static_cast<std::int64_t>(prompts.size());
  const auto noise = torch::randn({n, config.out_dim, frames, side, side}, noise_generator, torch::kFloat);
  std::vector<at::Tensor> targets;
  for (std::int64_t i = 0; i < n; i += options.teacher_batch) {
    const auto end = std::min(n, i + options.teacher_batch);
    std::vector<at::Tensor> chunk;
    for (auto j = i; j < end; ++j) chunk.push_back(contexts.at(prompts[static_cast<std::size_t>(j)]));
    targets.push_back(TeacherSamples(pipeline->dit(), noise.slice(0, i, end), chunk, contexts.at(""), options));
    if (progress) progress({"teacher", static_cast<int>(end), static_cast<int>(n), 0});
  }
  const auto teacher = torch::cat(targets);

  // The student's noise levels: those of its schedule.
  const auto schedule = schedulers::MakeFlowScheduler({schedulers::Solver::kEuler,
                                                       static_cast<int>(options.timesteps.size()), options.shift,
                                                       /*integer_timesteps=*/true, options.timesteps});
  const auto& sigmas = schedule->sigmas();
  const auto levels = torch::tensor(std::vector<double>(sigmas.begin(), sigmas.end() - 1), torch::kFloat);
  auto draw = [&](int step, at::Generator& generator) {
    auto picker = Picker(options, step);
    std::vector<std::int64_t> indices;
    Batch batch;
    for (int i = 0; i < options.batch; ++i) {
      indices.push_back(static_cast<std::int64_t>(picker() % static_cast<std::uint64_t>(n)));
      batch.contexts.push_back(contexts.at(prompts[static_cast<std::size_t>(indices.back())]));
    }
    const auto rows = torch::tensor(indices, torch::kLong);
    batch.x0 = teacher.index_select(0, rows);
    batch.noise = noise.index_select(0, rows);
    batch.sigmas = levels.index_select(0, torch::randint(levels.size(0), {options.batch}, generator, torch::kLong));
    return batch;
  };
  std::vector<int> timesteps;  // a request's schedule is training timesteps: integers
  for (const double timestep : options.timesteps) timesteps.push_back(static_cast<int>(std::lround(timestep)));
  const nlohmann::json defaults = {
      {"timesteps", timesteps}, {"shift", options.shift}, {"solver", "euler"}, {"guidance", 1.0}};
  const nlohmann::json about = {
      {"trained_by", "vidgen-train distill"},
      {"teacher", {{"solver", "unipc"}, {"steps", options.teacher_steps}, {"guidance", options.teacher_guidance}}},
      {"steps", options.steps},
      {"rank", options.rank}};
  TrainAdapter(*pipeline, {options.rank, options.alpha, options.seed, {}}, options, draw,
               {{"vidgen_defaults", defaults.dump()}, {"vidgen_adapter", about.dump()}}, progress);
}

}  // namespace vidgen::demo
