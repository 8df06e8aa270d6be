// vidgen-train's work: the demo model trained from the synthetic world in stages — a sentencepiece tokenizer on the
// prompt grammar, the Wan-VAE on rendered clips, then the umT5 encoder and the DiT jointly on the VAE's latents —
// and written in the released Wan2.1 layout, so that every loader path is the real one. Each stage checkpoints its
// modules, optimiser and step in the work folder and resumes from there; a seed fixes the whole run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "models/demo/world.h"

namespace vidgen::demo {

struct TrainOptions {
  std::string out;       // the checkpoint folder written at the end
  std::string work_dir;  // stage checkpoints (default: <out>/.train)
  std::uint64_t seed = 0;
  RenderOptions clip;             // frames and size of the rendered clips
  int clips_per_combination = 4;  // rendered training clips per training combination (different seeds)
  int batch = 8;
  // Tokenizer
  int vocab_size = 128;  // about every word of the grammar whole
  std::int64_t text_len = 32;
  // VAE
  std::int64_t vae_dim = 8;
  int vae_steps = 400;
  double vae_lr = 2e-3, kl_weight = 1e-5;
  int vae_decay_steps = 300;  // the learning rate falls linearly to 0 over a stage's last steps
  // The object covers a few per cent of the pixels: its squared error counts this much more than the background's,
  // or the VAE learns the background and blurs the object away (colour read back at chance).
  double vae_object_weight = 10;
  // Text encoder and DiT
  std::int64_t t5_dim = 64, t5_layers = 2, t5_heads = 4;
  std::int64_t dit_dim = 128, dit_layers = 4, dit_heads = 4;
  int dit_steps = 2000;
  double dit_lr = 1e-3, shift = 5.0;
  int dit_decay_steps = 2000;
  // The share of training prompts replaced by the empty prompt, so that the model also learns the unconditional
  // velocity that classifier-free guidance subtracts (a negative prompt of " " or "" asks for it).
  double empty_prompt_fraction = 0.1;
  int checkpoint_every = 100;
};

struct TrainProgress {
  std::string stage;  // "tokenizer", "vae", "dit", "write"
  int step = 0, total = 0;
  double loss = 0;
};

// Runs (or resumes) every stage and writes the checkpoint. Throws vidgen::Error on what it cannot read or write.
void TrainDemoModel(const TrainOptions& options, const std::function<void(const TrainProgress&)>& progress = {});

}  // namespace vidgen::demo
