// vidgen-train: trains the demo model (Wan2.1's architecture at small size) on the synthetic world and writes it in
// the released layout (stages resume from the work folder; the seed fixes the run); `vidgen-train lora` and
// `vidgen-train distill` train adapters for a trained one.
#include <unistd.h>

#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/tool_main.h"
#include "models/demo/adapters.h"
#include "models/demo/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"vidgen-train: the demo model, trained from the synthetic world with vidgen's own modules"};
  vidgen::demo::TrainOptions options;
  int threads = 0;
  app.add_option("--out", options.out, "checkpoint folder (released Wan2.1 layout)");
  app.add_option("--work-dir", options.work_dir, "stage checkpoints (default: <out>/.train)");
  app.add_option("--seed", options.seed)->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (default: all cores)");
  app.add_option("--frames", options.clip.frames, "frames per clip (4k+1)")->capture_default_str();
  app.add_option("--size", options.clip.size, "clip side in pixels (multiple of 16)")->capture_default_str();
  app.add_option("--clips", options.clips_per_combination, "clips rendered per training combination")
      ->capture_default_str();
  app.add_option("--batch", options.batch)->capture_default_str();
  app.add_option("--vocab", options.vocab_size, "sentencepiece vocabulary")->capture_default_str();
  app.add_option("--text-len", options.text_len)->capture_default_str();
  app.add_option("--vae-dim", options.vae_dim)->capture_default_str();
  app.add_option("--vae-steps", options.vae_steps)->capture_default_str();
  app.add_option("--vae-lr", options.vae_lr)->capture_default_str();
  app.add_option("--vae-object-weight", options.vae_object_weight, "weight of the object's pixels in the VAE loss")
      ->capture_default_str();
  app.add_option("--t5-dim", options.t5_dim)->capture_default_str();
  app.add_option("--t5-layers", options.t5_layers)->capture_default_str();
  app.add_option("--dit-dim", options.dit_dim)->capture_default_str();
  app.add_option("--dit-layers", options.dit_layers)->capture_default_str();
  app.add_option("--dit-heads", options.dit_heads)->capture_default_str();
  app.add_option("--dit-steps", options.dit_steps)->capture_default_str();
  app.add_option("--dit-lr", options.dit_lr)->capture_default_str();
  app.add_option("--vae-decay-steps", options.vae_decay_steps, "the VAE's learning rate falls to 0 over its last steps")
      ->capture_default_str();
  app.add_option("--dit-decay-steps", options.dit_decay_steps, "the DiT's learning rate falls to 0 over its last steps")
      ->capture_default_str();
  app.add_option("--empty-prompts", options.empty_prompt_fraction,
                 "share of training prompts left empty (for classifier-free guidance)")
      ->capture_default_str();
  app.add_option("--checkpoint-every", options.checkpoint_every)->capture_default_str();

  vidgen::demo::DiagonalLoraOptions lora;
  vidgen::demo::DistillOptions distill;
  auto* lora_command = app.add_subcommand("lora", "a LoRA teaching a motion the base world lacks (diagonals)");
  auto* distill_command =
      app.add_subcommand("distill", "a LoRA sampling in a few Euler steps without guidance, from the model's sampler");
  for (auto [command, adapter] :
       {std::pair<CLI::App*, vidgen::demo::AdapterTrainOptions*>{lora_command, &lora}, {distill_command, &distill}}) {
    command->add_option("--model-dir", adapter->model_dir, "the trained demo model")->required();
    command->add_option("--out", adapter->out, "the adapter (.safetensors)")->required();
    command->add_option("--seed", adapter->seed)->capture_default_str();
    command->add_option("--rank", adapter->rank)->capture_default_str();
    command->add_option("--alpha", adapter->alpha)->capture_default_str();
    command->add_option("--steps", adapter->steps)->capture_default_str();
    command->add_option("--batch", adapter->batch)->capture_default_str();
    command->add_option("--lr", adapter->lr)->capture_default_str();
    command->add_option("--decay-steps", adapter->decay_steps)->capture_default_str();
  }
  lora_command->add_option("--clips", lora.clips_per_combination, "clips per diagonal training combination")
      ->capture_default_str();
  lora_command->add_option("--base-fraction", lora.base_fraction, "share of each batch from the base world")
      ->capture_default_str();
  distill_command->add_option("--timesteps", distill.timesteps, "the student's schedule")
      ->delimiter(',')
      ->capture_default_str();
  distill_command->add_option("--shift", distill.shift)->capture_default_str();
  distill_command->add_option("--teacher-steps", distill.teacher_steps)->capture_default_str();
  distill_command->add_option("--teacher-guidance", distill.teacher_guidance)->capture_default_str();
  distill_command->add_option("--samples", distill.samples_per_prompt, "teacher videos per training prompt")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const bool training_adapter = app.got_subcommand(lora_command) || app.got_subcommand(distill_command);
  if (!training_adapter && options.out.empty()) {  // the base model's folder
    fmt::print(stderr, "vidgen-train: --out is required\n{}", app.help());
    return 2;
  }

  torch::set_num_threads(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  const bool tty = ::isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  double smoothed = 0;
  std::string stage;
  auto show = [&](const vidgen::demo::TrainProgress& p) {
    if (p.stage != stage) {
      if (!stage.empty() && tty) fmt::print(stderr, "\n");
      stage = p.stage;
      smoothed = p.loss;
    }
    smoothed = 0.95 * smoothed + 0.05 * p.loss;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int width = 30, done = p.total > 0 ? width * p.step / p.total : width;
    const auto line = fmt::format("{:<9} [{}{}] {}/{} loss {:.4f}  {:.0f} s", p.stage, std::string(done, '#'),
                                  std::string(width - done, '.'), p.step, p.total, smoothed, seconds);
    if (tty) {
      fmt::print(stderr, "\r\033[K{}", line);
    } else if (p.step == p.total || p.step % 50 == 0 || p.stage == "teacher") {
      fmt::print(stderr, "{}\n", line);
    }
  };
  return vidgen::RunTool("vidgen-train", [&] {
    std::string written = options.out;
    if (app.got_subcommand(lora_command)) {
      vidgen::demo::TrainDiagonalLora(lora, show);
      written = lora.out;
    } else if (app.got_subcommand(distill_command)) {
      vidgen::demo::DistillSteps(distill, show);
      written = distill.out;
    } else {
      vidgen::demo::TrainDemoModel(options, show);
    }
    if (tty) fmt::print(stderr, "\n");
    fmt::print(stderr, "vidgen-train: wrote {}\n", written);
    return 0;
  });
}
