#include "models/demo/trainer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "models/demo/train.h"
#include "models/io/tensor_file.h"
#include "models/text/sentencepiece.h"
#include "models/text/t5_tokenizer.h"

namespace vidgen::demo {
namespace {

namespace fs = std::filesystem;

// The stage checkpoint: a module's and its optimiser's state, and the step reached.
template <typename Module>
int Resume(const fs::path& dir, const std::string& name, Module& module, torch::optim::Optimizer& optimizer) {
  const auto step_file = dir / (name + ".step");
  if (!fs::exists(step_file)) return 0;
  torch::load(module, (dir / (name + ".pt")).string());
  torch::load(optimizer, (dir / (name + ".optim.pt")).string());
  int step = 0;
  std::ifstream(step_file) >> step;
  return step;
}

template <typename Module>
void Save(const fs::path& dir, const std::string& name, Module& module, torch::optim::Optimizer& optimizer, int step) {
  torch::save(module, (dir / (name + ".pt")).string());
  torch::save(optimizer, (dir / (name + ".optim.pt")).string());
  std::ofstream(dir / (name + ".step.tmp")) << step;
  fs::rename(dir / (name + ".step.tmp"), dir / (name + ".step"));  // the step names a complete state
}

io::NamedTensors Named(torch::nn::Module& module, c10::ScalarType dtype) {
  io::NamedTensors tensors;
  for (const auto& item : module.named_parameters()) tensors.emplace_back(item.key(), item.value().detach().to(dtype));
  return tensors;
}

}  // namespace

void TrainDemoModel(const TrainOptions& options, const std::function<void(const TrainProgress&)>& progress) {
  const fs::path out = options.out, work = options.work_dir.empty() ? out / ".train" : fs::path(options.work_dir);
  fs::create_directories(work);
  fs::create_directories(out / "google" / "umt5-xxl");
  auto report = [&](const char* stage, int step, int total, double loss) {
    if (progress) progress({stage, step, total, loss});
  };

  // 1. The tokenizer, on every prompt of the grammar (the held-out ones use the same words).
  const auto spiece = out / "google" / "umt5-xxl" / "spiece.model";
  if (!fs::exists(spiece)) {
    std::vector<std::string> prompts;
    for (const auto& spec : AllClips()) prompts.push_back(Prompt(spec));
    text::SentencePieceTraining training;
    training.vocab_size = options.vocab_size;
    training.model_type = "bpe";  // on this tiny corpus unigram stops near the characters; BPE reaches whole words
    text::TrainSentencePiece(prompts, spiece.string(), training);
  }
  report("tokenizer", 1, 1, 0);
  const text::T5Tokenizer tokenizer(spiece.string(), options.text_len);
  // Every prompt must fit the text length whole, or generation would refuse what training saw cut.
  for (const auto& spec : AllClips()) {
    const auto tokens = static_cast<std::int64_t>(tokenizer.Ids(Prompt(spec)).size());
    if (tokens > options.text_len) {
      Fail(ErrorCode::kInvalidArgument, "'{}' is {} tokens, more than the text length {}: raise it or the vocabulary",
           Prompt(spec), tokens, options.text_len);
    }
  }

  torch::manual_seed(options.seed);
  std::vector<ClipSpec> training;
  for (const auto& spec : AllClips()) {
    if (!HeldOut(spec)) training.push_back(spec);
  }
  const auto clips = RenderClips(training, options.clips_per_combination, options.seed * 1000003, options.clip);
  const std::int64_t count = clips.videos.size(0);
  // Every step draws from generators seeded by (seed, stage, step): a resumed run takes the same steps.
  auto batch_indices = [&](std::uint64_t stage, int step) {
    std::mt19937_64 picker(options.seed * 7919 + stage * 104729 + static_cast<std::uint64_t>(step));
    std::vector<std::int64_t> indices;
    for (int i = 0; i < options.batch; ++i) indices.push_back(static_cast<std::int64_t>(picker() % count));
    return torch::tensor(indices, torch::kLong);
  };
  auto step_generator = [&](std::uint64_t stage, int step) {
    return at::detail::createCPUGenerator(options.seed * 7919 + stage * 104729 + static_cast<std::uint64_t>(step) + 17);
  };

  // 2. The VAE.
  wan::WanVaeConfig vae_config;
  vae_config.dim = options.vae_dim;  // narrow, with the released structure (the loader reads only the widths)
  torch::manual_seed(options.seed + 2);
  wan::WanVae vae(vae_config);
  {
    torch::optim::Adam optimizer(vae->parameters(), torch::optim::AdamOptions(options.vae_lr));
    int step = Resume(work, "vae", vae, optimizer);
    while (step < options.vae_steps) {
      SetLearningRate(optimizer, options.vae_lr, step, options.vae_steps, options.vae_decay_steps);
      auto generator = step_generator(1, step);
      const auto indices = batch_indices(1, step);
      const auto weights = 1 + options.vae_object_weight * clips.objects.index_select(0, indices).to(torch::kFloat);
      const auto losses =
          VaeStep(vae, clips.videos.index_select(0, indices), weights, options.kl_weight, optimizer, generator);
      ++step;
      report("vae", step, options.vae_steps, losses.reconstruction);
      if (step % options.checkpoint_every == 0 || step == options.vae_steps) Save(work, "vae", vae, optimizer, step);
    }
  }

  // 3. The text encoder and the DiT on the VAE's latents, encoded once.
  const auto latents = EncodeClips(vae, clips.videos);
  encoders::UmT5Config t5_config;
  t5_config.vocab = tokenizer.vocab_size();
  t5_config.dim = t5_config.dim_attn = options.t5_dim;
  t5_config.dim_ffn = 2 * options.t5_dim;
  t5_config.num_heads = options.t5_heads;
  t5_config.num_layers = options.t5_layers;
  t5_config.num_buckets = 32;
  t5_config.max_distance = 128;
  wan::WanDitConfig dit_config;
  dit_config.dim = options.dit_dim;
  dit_config.ffn_dim = 2 * options.dit_dim;
  dit_config.freq_dim = 64;
  dit_config.text_dim = options.t5_dim;
  dit_config.num_heads = options.dit_heads;
  dit_config.num_layers = options.dit_layers;
  dit_config.text_len = options.text_len;
  torch::manual_seed(options.seed + 4);
  encoders::UmT5Encoder t5(t5_config);
  wan::WanDit dit(dit_config);
  {
    auto parameters = dit->parameters();
    for (const auto& p : t5->parameters()) parameters.push_back(p);
    torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(options.dit_lr).weight_decay(0.0));
    torch::nn::ModuleDict both;
    both->update({{"dit", dit.ptr()}, {"t5", t5.ptr()}});
    int step = Resume(work, "dit", both, optimizer);
    while (step < options.dit_steps) {
      SetLearningRate(optimizer, options.dit_lr, step, options.dit_steps, options.dit_decay_steps);
      auto generator = step_generator(2, step);
      const auto indices = batch_indices(2, step);
      std::vector<std::string> prompts;
      std::mt19937_64 dropper(options.seed * 7919 + 3 * 104729 + static_cast<std::uint64_t>(step));
      std::bernoulli_distribution empty(options.empty_prompt_fraction);
      for (std::int64_t i = 0; i < indices.size(0); ++i) {
        const auto& prompt = clips.prompts[static_cast<std::size_t>(indices[i].item<std::int64_t>())];
        prompts.push_back(empty(dropper) ? std::string() : prompt);
      }
      const FlowMatchingBatch batch{latents.index_select(0, indices), tokenizer.Encode(prompts)};
      const double loss = FlowMatchingStep(dit, t5, batch, optimizer, options.shift, generator);
      ++step;
      report("dit", step, options.dit_steps, loss);
      if (step % options.checkpoint_every == 0 || step == options.dit_steps) Save(work, "dit", both, optimizer, step);
    }
  }

  // 4. The released layout.
  report("write", 0, 1, 0);
  const nlohmann::json config = {{"_class_name", "WanModel"},
                                 {"model_type", "t2v"},
                                 {"patch_size", dit_config.patch_size},
                                 {"text_len", dit_config.text_len},
                                 {"in_dim", dit_config.in_dim},
                                 {"dim", dit_config.dim},
                                 {"ffn_dim", dit_config.ffn_dim},
                                 {"freq_dim", dit_config.freq_dim},
                                 {"text_dim", dit_config.text_dim},
                                 {"out_dim", dit_config.out_dim},
                                 {"num_heads", dit_config.num_heads},
                                 {"num_layers", dit_config.num_layers},
                                 {"window_size", {-1, -1}},
                                 {"qk_norm", true},
                                 {"cross_attn_norm", true},
                                 {"eps", dit_config.eps},
                                 // Not read by the loader: the clips the model was trained on, as the defaults a
                                 // worker announces for jobs that leave them unset (a JobSpec in JSON form).
                                 {"vidgen_defaults",
                                  {{"width", options.clip.size},
                                   {"height", options.clip.size},
                                   {"frames", options.clip.frames},
                                   {"negative_prompt", " "}}}};
  std::ofstream(out / "config.json") << config.dump(2) << "\n";
  io::WriteSafetensors((out / "diffusion_pytorch_model.safetensors").string(), Named(*dit, torch::kFloat));
  io::WriteTorchCheckpoint((out / "models_t5_umt5-xxl-enc-bf16.pth").string(), Named(*t5, torch::kBFloat16));
  io::WriteTorchCheckpoint((out / "Wan2.1_VAE.pth").string(), Named(*vae, torch::kFloat));
  report("write", 1, 1, 0);
}

}  // namespace vidgen::demo
