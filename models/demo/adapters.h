// Adapters for the trained demo model, trained as LoRAs on its frozen DiT (the text encoder and VAE untouched):
//   - a motion LoRA: flow matching on clips moving diagonally ("a red circle moving northwest ..."), a motion the
//     base model never saw (world.h's DiagonalClips, held-out combinations left out), mixed with clips of its own
//     world so that the rest stays as it was. (Not a new colour or size: the demo VAE draws colours outside its
//     palette as the nearest one it knows, cyan as yellow, and blurs sizes together at 32×32; the LoRA adapts only
//     the DiT);
//   - a step distillation: the base model's own guided sampler (UniPC, 50 steps, guidance 5) draws a video from each
//     noise for the training prompts, and the student learns the straight path from that noise to that video at
//     the few noise levels it will sample (reflow, Liu et al. 2022): on x_σ = (1−σ)·x0 + σ·ε its velocity is
//     ε − x0 everywhere, so Euler steps at any of those levels stay on the path, and one pass a step (guidance 1)
//     replaces the teacher's two.
// Each writes a PEFT safetensors adapter; the distillation also declares the schedule it was trained for in the
// file's metadata ("vidgen_defaults"), which jobs that name it take.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/demo/trainer.h"

namespace vidgen::demo {

struct AdapterTrainOptions {
  std::string model_dir;  // the base checkpoint (released layout)
  std::string out;        // the adapter written (.safetensors)
  std::uint64_t seed = 0;
  std::int64_t rank = 8;
  double alpha = 8;
  int steps = 1500, batch = 16;
  double lr = 1e-3;
  int decay_steps = 500;  // the learning rate falls linearly to 0 over the last steps
};

struct DiagonalLoraOptions : AdapterTrainOptions {
  int clips_per_combination = 2;  // of each diagonal training combination
  double base_fraction = 0.5;     // the share of each batch drawn from the base world's clips
  double empty_prompt_fraction = 0.1;
};

// Teaches the DiT the diagonals (DiagonalClips()).
void TrainDiagonalLora(const DiagonalLoraOptions& options,
                       const std::function<void(const TrainProgress&)>& progress = {});

struct DistillOptions : AdapterTrainOptions {
  // The student's schedule: training timesteps, Euler, guidance 1.
  std::vector<double> timesteps = {1000, 750, 500, 250};
  double shift = 5;
  // The teacher: the model's own sampler.
  int teacher_steps = 50;
  double teacher_guidance = 5;
  int samples_per_prompt = 4;  // noises per training prompt
  int teacher_batch = 64;
};

void DistillSteps(const DistillOptions& options, const std::function<void(const TrainProgress&)>& progress = {});

}  // namespace vidgen::demo
