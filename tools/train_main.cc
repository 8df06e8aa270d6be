// vidgen-train: trains the demo model (Wan2.1's architecture at small size) on the synthetic world and writes it in
// the released layout. Stages resume from the work folder; the seed fixes the run.
#include <unistd.h>

#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/tool_main.h"
#include "models/demo/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"vidgen-train: the demo model, trained from the synthetic world with vidgen's own modules"};
  vidgen::demo::TrainOptions options;
  int threads = 0;
  app.add_option("--out", options.out, "checkpoint folder (released Wan2.1 layout)")->required();
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
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  const bool tty = ::isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  double smoothed = 0;
  std::string stage;
  return vidgen::RunTool("vidgen-train", [&] {
    vidgen::demo::TrainDemoModel(options, [&](const vidgen::demo::TrainProgress& p) {
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
      } else if (p.step == p.total || p.step % 50 == 0) {
        fmt::print(stderr, "{}\n", line);
      }
    });
    if (tty) fmt::print(stderr, "\n");
    fmt::print(stderr, "vidgen-train: wrote {}\n", options.out);
    return 0;
  });
}
