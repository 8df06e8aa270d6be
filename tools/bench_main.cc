// vidgen-bench: speed measurements. `dit` times Wan DiT forward passes at a chosen width, depth and token count.
#include <algorithm>
#include <chrono>
#include <numeric>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "models/wan/config.h"
#include "models/wan/dit.h"

namespace {

struct DitBenchOptions {
  std::int64_t dim = 1536, heads = 12, ffn_dim = 8960, layers = 2;
  std::int64_t latent_frames = 5, latent_height = 32, latent_width = 52;
  std::int64_t text_tokens = 512;
  std::string dtype = "bf16", device = "cpu";
  std::vector<int> threads = {1, 2};
  int repeats = 3;
  bool json = false;
};

// Forward FLOPs of the DiT blocks (matrix products and attention), per models.md G's accounting.
double DitFlops(const vidgen::wan::WanDitConfig& c, std::int64_t tokens, std::int64_t text_tokens) {
  const double L = static_cast<double>(tokens), T = static_cast<double>(text_tokens);
  const double D = static_cast<double>(c.dim), F = static_cast<double>(c.ffn_dim);
  const double self_attention = 2 * L * 4 * D * D + 4 * L * L * D;
  const double cross_attention = 2 * L * 2 * D * D + 2 * T * 2 * D * D + 4 * L * T * D;
  const double ffn = 2 * L * 2 * D * F;
  return static_cast<double>(c.num_layers) * (self_attention + cross_attention + ffn);
}

int RunDitBench(const DitBenchOptions& options) {
  torch::NoGradGuard no_grad;
  vidgen::wan::WanDitConfig config;
  config.dim = options.dim;
  config.num_heads = options.heads;
  config.ffn_dim = options.ffn_dim;
  config.num_layers = options.layers;
  const auto device = c10::Device(options.device);
  const auto dtype = vidgen::wan::ParseModelDType(options.dtype);
  torch::manual_seed(0);
  vidgen::wan::WanDit dit(config);
  // Weights of a trained model's scale keep activations finite; the values do not matter for speed.
  for (auto& p : dit->parameters()) p.normal_(0, 0.02);
  dit->SetComputeDType(dtype);
  dit->to(device);
  dit->eval();

  vidgen::wan::WanDitInput input;
  input.x = {torch::randn({config.in_dim, options.latent_frames, options.latent_height, options.latent_width},
                          torch::TensorOptions().device(device))};
  input.timesteps = torch::tensor({500.0}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  input.context = {torch::randn({options.text_tokens, config.text_dim}, torch::TensorOptions().device(device))};
  const std::int64_t tokens = options.latent_frames * (options.latent_height / 2) * (options.latent_width / 2);
  const double flops = DitFlops(config, tokens, config.text_len);

  nlohmann::json results = nlohmann::json::array();
  for (const int threads : options.threads) {
    torch::set_num_threads(threads);
    dit->forward(input);  // warm-up: allocator, oneDNN kernels
    std::vector<double> seconds;
    for (int r = 0; r < options.repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      const auto out = dit->forward(input);
      if (device.is_cuda()) torch::cuda::synchronize();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      TORCH_CHECK(torch::isfinite(out[0]).all().item<bool>(), "the benchmark DiT produced non-finite values");
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    results.push_back({{"threads", threads},
                       {"seconds_per_step", median},
                       {"seconds_per_step_min", seconds.front()},
                       {"tokens_per_second", static_cast<double>(tokens) / median},
                       {"gflops_per_second", flops / median / 1e9}});
    if (!options.json) {
      fmt::print("dit dim {} heads {} ffn {} layers {} tokens {} {} {} threads {}: {:.3f} s/step, {:.0f} tokens/s, "
                 "{:.1f} GFLOP/s\n",
                 config.dim, config.num_heads, config.ffn_dim, config.num_layers, tokens, options.dtype,
                 options.device, threads, median, static_cast<double>(tokens) / median, flops / median / 1e9);
    }
  }
  if (options.json) {
    nlohmann::json report = {{"benchmark", "dit"},
                             {"dim", config.dim},
                             {"heads", config.num_heads},
                             {"ffn_dim", config.ffn_dim},
                             {"layers", config.num_layers},
                             {"tokens", tokens},
                             {"text_tokens", config.text_len},
                             {"dtype", options.dtype},
                             {"device", options.device},
                             {"gflop_per_step", flops / 1e9},
                             {"torch_version", TORCH_VERSION},
                             {"results", results}};
    fmt::print("{}\n", report.dump(2));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vidgen benchmarks"};
  app.require_subcommand(1);
  DitBenchOptions dit;
  auto* dit_command = app.add_subcommand("dit", "Wan DiT forward latency and throughput (random weights)");
  dit_command->add_option("--dim", dit.dim, "block width")->capture_default_str();
  dit_command->add_option("--heads", dit.heads)->capture_default_str();
  dit_command->add_option("--ffn-dim", dit.ffn_dim)->capture_default_str();
  dit_command->add_option("--layers", dit.layers)->capture_default_str();
  dit_command->add_option("--latent-frames", dit.latent_frames)->capture_default_str();
  dit_command->add_option("--latent-height", dit.latent_height)->capture_default_str();
  dit_command->add_option("--latent-width", dit.latent_width)->capture_default_str();
  dit_command->add_option("--dtype", dit.dtype, "fp32, bf16 or fp16")->capture_default_str();
  dit_command->add_option("--device", dit.device, "cpu or cuda[:N]")->capture_default_str();
  dit_command->add_option("--threads", dit.threads, "thread counts to measure")->capture_default_str();
  dit_command->add_option("--repeats", dit.repeats)->capture_default_str();
  dit_command->add_flag("--json", dit.json, "print one JSON report");
  CLI11_PARSE(app, argc, argv);

  try {
    if (dit_command->parsed()) return RunDitBench(dit);
  } catch (const vidgen::Error& e) {
    fmt::print(stderr, "vidgen-bench: {}: {}\n", vidgen::ErrorCodeName(e.code()), e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "vidgen-bench: INTERNAL: {}\n", e.what_without_backtrace());
    return 1;
  }
  return 0;
}
