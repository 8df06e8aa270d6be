#include "tools/bench_load.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/bytes.h"
#include "common/error.h"
#include "models/encoders/clip_text.h"
#include "models/encoders/llama.h"
#include "models/encoders/umt5.h"
#include "models/families.h"
#include "models/hunyuan/dit.h"
#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"
#include "models/layers/deferred.h"
#include "models/wan/dit.h"

namespace vidgen::tools {
namespace {

namespace fs = std::filesystem;

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
std::int64_t StatusBytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    std::int64_t kib = 0;
    if (line.starts_with(field + ":") && std::sscanf(line.c_str() + field.size() + 1, "%ld", &kib) == 1) {
      return kib * 1024;
    }
  }
  Fail(ErrorCode::kInternal, "/proc/self/status has no {}", field);
}

// Starts the peak resident size (VmHWM) again from the current one.
void ResetPeakRss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

std::int64_t Bytes(const torch::nn::Module& module) {
  std::int64_t bytes = 0;
  for (const auto& p : module.parameters()) bytes += p.numel() * p.element_size();
  return bytes;
}

// Random weights of a trained model's scale for every parameter of `module` (built deferred: nothing allocated),
// in `dtype`, named with `prefix`.
io::NamedTensors RandomWeights(const torch::nn::Module& module, c10::ScalarType dtype, const std::string& prefix) {
  io::NamedTensors tensors;
  for (const auto& item : module.named_parameters()) {
    tensors.emplace_back(prefix + item.key(), (torch::randn(item.value().sizes()) * 0.02).to(dtype));
  }
  return tensors;
}

void WriteJson(const fs::path& path, const nlohmann::json& json) {
  std::ofstream(path) << json.dump(2);
}

// Wan2.1's released layout: config.json and diffusion_pytorch_model.safetensors (fp32, as released) at the 1.3B
// block width with as many layers as fill `bytes`; the umT5 (with its tokenizer) and the VAE from `parts`.
void WriteSyntheticWan(const fs::path& dir, const fs::path& parts, std::int64_t bytes) {
  io::WeightStore t5;
  t5.AddFile((parts / "models_t5_umt5-xxl-enc-bf16.pth").string());
  wan::WanDitConfig config;  // the released 1.3B sizes
  config.text_dim = encoders::InferUmT5Config(t5).dim;
  auto size_of = [&](std::int64_t layers) {
    layers::DeferredInit deferred;
    auto sized = config;
    sized.num_layers = layers;
    return Bytes(*wan::WanDit(sized));
  };
  const std::int64_t per_layer = size_of(2) - size_of(1), base = size_of(1) - per_layer;
  config.num_layers = std::max<std::int64_t>(1, (bytes - base + per_layer / 2) / per_layer);
  WriteJson(dir / "config.json", {{"model_type", "t2v"},
                                  {"dim", config.dim},
                                  {"ffn_dim", config.ffn_dim},
                                  {"freq_dim", config.freq_dim},
                                  {"text_dim", config.text_dim},
                                  {"in_dim", config.in_dim},
                                  {"out_dim", config.out_dim},
                                  {"num_heads", config.num_heads},
                                  {"num_layers", config.num_layers},
                                  {"eps", config.eps}});
  {
    layers::DeferredInit deferred;
    const wan::WanDit dit(config);
    io::WriteSafetensors((dir / "diffusion_pytorch_model.safetensors").string(),
                         RandomWeights(*dit, torch::kFloat, ""));
  }
  for (const char* part : {"models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth"})
    fs::copy_file(parts / part, dir / part);
  fs::create_directories(dir / "google" / "umt5-xxl");
  fs::copy_file(parts / "google" / "umt5-xxl" / "spiece.model", dir / "google" / "umt5-xxl" / "spiece.model");
}

// HunyuanVideo's released layout: transformers/mp_rank_00_model_states.pt ({"module": ...}, bf16 as released) and
// its config.json at the released width with a double block and as many single blocks as fill `bytes`; vae/,
// text_encoder/ and text_encoder_2/ from `parts`.
void WriteSyntheticHunyuan(const fs::path& dir, const fs::path& parts, std::int64_t bytes) {
  hunyuan::HunyuanDitConfig config;  // the released widths
  config.text_states_dim = encoders::ReadLlamaConfig((parts / "text_encoder" / "config.json").string()).hidden_size;
  config.text_states_dim_2 =
      encoders::ReadClipTextConfig((parts / "text_encoder_2" / "config.json").string()).hidden_size;
  auto size_of = [&](std::int64_t doubles, std::int64_t singles) {
    layers::DeferredInit deferred;
    auto sized = config;
    sized.double_blocks = doubles;
    sized.single_blocks = singles;
    return Bytes(*hunyuan::HunyuanDit(sized)) / 2;  // bf16
  };
  const std::int64_t base = size_of(1, 0), per_single = size_of(1, 1) - base;
  config.double_blocks = 1;
  config.single_blocks = std::max<std::int64_t>(0, (bytes - base + per_single / 2) / per_single);
  fs::create_directories(dir / "transformers");
  WriteJson(dir / "transformers" / "config.json", {{"hidden_size", config.hidden_size},
                                                   {"heads_num", config.heads_num},
                                                   {"mlp_width_ratio", config.mlp_width_ratio},
                                                   {"mm_double_blocks_depth", config.double_blocks},
                                                   {"mm_single_blocks_depth", config.single_blocks},
                                                   {"rope_dim_list", config.rope_dim_list},
                                                   {"text_states_dim", config.text_states_dim},
                                                   {"text_states_dim_2", config.text_states_dim_2}});
  {
    layers::DeferredInit deferred;
    const hunyuan::HunyuanDit dit(config);
    io::WriteTorchCheckpoint((dir / "transformers" / "mp_rank_00_model_states.pt").string(),
                             RandomWeights(*dit, torch::kBFloat16, "module."));
  }
  for (const char* part : {"vae", "text_encoder", "text_encoder_2"}) {
    fs::copy(parts / part, dir / part, fs::copy_options::recursive);
  }
}

int MeasureLoad(const LoadBenchOptions& options) {
  torch::NoGradGuard no_grad;
  const auto family = options.family.empty() ? DetectFamily(options.model_dir) : spec::ParseFamily(options.family);
  PipelineOptions load;
  load.dtype = ParseModelDType(options.dtype);
  load.device = c10::Device(options.device);
  const std::int64_t before = StatusBytes("VmRSS");
  ResetPeakRss();
  const auto start = std::chrono::steady_clock::now();
  const auto pipeline = LoadPipeline(options.model_dir, family, load);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Weights used straight from the mapped file are resident only once read: read them all, as a first step would.
  std::int64_t weights = 0;
  for (const auto& tensor : pipeline->weights()) {
    weights += tensor.numel() * tensor.element_size();
    if (tensor.device().is_cpu()) tensor.sum().item();
  }
  const std::int64_t peak = StatusBytes("VmHWM") - before;
  const double ratio = static_cast<double>(peak) / static_cast<double>(weights);
  if (options.json) {
    fmt::print("{}\n", nlohmann::json{{"benchmark", "load"},
                                      {"model_dir", options.model_dir},
                                      {"family", spec::FamilyName(family)},
                                      {"dtype", options.dtype},
                                      {"device", options.device},
                                      {"torch_version", TORCH_VERSION},
                                      {"load_seconds", seconds},
                                      {"weight_bytes", weights},
                                      {"peak_rss_bytes", peak},
                                      {"peak_rss_over_weights", ratio}}
                           .dump(2));
  } else {
    fmt::print("load {} ({}, {} on {}): {:.2f} s, weights {}, peak resident {} above the start ({:.2f}x the weights)\n",
               options.model_dir, spec::FamilyName(family), options.dtype, options.device, seconds, ByteSize(weights),
               ByteSize(peak), ratio);
  }
  return 0;
}

}  // namespace

int RunLoadBench(const LoadBenchOptions& options) {
  if (options.synthetic_gib <= 0) {
    if (options.model_dir.empty())
      Fail(ErrorCode::kInvalidArgument, "load: --model-dir or --synthetic-gib is required");
    return MeasureLoad(options);
  }
  if (options.family.empty()) Fail(ErrorCode::kInvalidArgument, "load: --synthetic-gib needs --family");
  const auto family = spec::ParseFamily(options.family);
  const bool wan = family == spec::Family::kWan;
  const fs::path parts = !options.parts_from.empty() ? fs::path(options.parts_from)
                         : wan                       ? fs::path("tests/data/golden/wan2.1-t2v-tiny")
                                                     : fs::path("tests/data/golden/hunyuan-video-t2v-tiny");
  const fs::path dir = fs::temp_directory_path() / fmt::format("vidgen-load-bench-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto bytes = static_cast<std::int64_t>(options.synthetic_gib * (1 << 30));
  try {
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    spdlog::info("writing a synthetic {} checkpoint of about {} in {}", spec::FamilyName(family), ByteSize(bytes),
                 dir.string());
    wan ? WriteSyntheticWan(dir, parts, bytes) : WriteSyntheticHunyuan(dir, parts, bytes);
    // Measured in a process of its own: this one's heap still holds what writing the checkpoint used.
    const auto self = fs::read_symlink("/proc/self/exe").string();
    const auto command =
        fmt::format("'{}' load --model-dir '{}' --family {} --dtype {} --device {}{}", self, dir.string(),
                    options.family, options.dtype, options.device, options.json ? " --json" : "");
    const int status = std::system(command.c_str());
    fs::remove_all(dir);
    return status == 0 ? 0 : 1;
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
}

}  // namespace vidgen::tools
