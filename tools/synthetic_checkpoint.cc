#include "tools/synthetic_checkpoint.h"

#include <atomic>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/encoders/clip_text.h"
#include "models/encoders/llama.h"
#include "models/encoders/umt5.h"
#include "models/hunyuan/dit.h"
#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"
#include "models/layers/deferred.h"
#include "models/wan/dit.h"

namespace vidgen::tools {
namespace {

namespace fs = std::filesystem;

std::atomic<int> next_id = 0;

std::int64_t Bytes(const torch::nn::Module& module, std::int64_t element_size) {
  std::int64_t numel = 0;
  for (const auto& p : module.parameters()) numel += p.numel();
  return numel * element_size;
}

// How many repeated blocks (at least `least`) make about `bytes` of weights of `element_size` bytes each, for a
// model that `build(n)` makes with n of them (built deferred: nothing allocated).
template <typename Build>
std::int64_t BlocksFilling(std::int64_t bytes, std::int64_t element_size, std::int64_t least, Build build) {
  auto size_of = [&](std::int64_t blocks) {
    layers::DeferredInit deferred;
    return Bytes(*build(blocks), element_size);
  };
  const std::int64_t one = size_of(1), per_block = size_of(2) - one, base = one - per_block;
  return std::max(least, (bytes - base + per_block / 2) / per_block);
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

// Wan2.1's released layout: config.json and diffusion_pytorch_model.safetensors (fp32, as released); the umT5 (with
// its tokenizer) and the VAE from `parts`.
void WriteWan(const fs::path& dir, const fs::path& parts, const SyntheticDit& sizes) {
  io::WeightStore t5;
  t5.AddFile((parts / "models_t5_umt5-xxl-enc-bf16.pth").string());
  wan::WanDitConfig config;  // the released 1.3B sizes
  config.text_dim = encoders::InferUmT5Config(t5).dim;
  const auto resolved = Resolved(spec::Family::kWan, sizes);
  config.dim = resolved.dim;
  config.num_heads = resolved.heads;
  config.ffn_dim = resolved.ffn_dim;
  config.num_layers = sizes.layers;
  if (sizes.bytes > 0) {
    config.num_layers = BlocksFilling(sizes.bytes, 4, 1, [&](std::int64_t layers) {
      auto sized = config;
      sized.num_layers = layers;
      return wan::WanDit(sized);
    });
  }
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
  for (const char* part : {"models_t5_umt5-xxl-enc-bf16.pth", "Wan2.1_VAE.pth"}) {
    fs::copy_file(parts / part, dir / part);
  }
  fs::create_directories(dir / "google" / "umt5-xxl");
  fs::copy_file(parts / "google" / "umt5-xxl" / "spiece.model", dir / "google" / "umt5-xxl" / "spiece.model");
}

// HunyuanVideo's released layout: transformers/mp_rank_00_model_states.pt ({"module": ...}, bf16 as released) and
// its config.json; vae/, text_encoder/ and text_encoder_2/ from `parts`.
void WriteHunyuan(const fs::path& dir, const fs::path& parts, const SyntheticDit& sizes) {
  hunyuan::HunyuanDitConfig config;  // the released widths
  config.text_states_dim = encoders::ReadLlamaConfig((parts / "text_encoder" / "config.json").string()).hidden_size;
  config.text_states_dim_2 =
      encoders::ReadClipTextConfig((parts / "text_encoder_2" / "config.json").string()).hidden_size;
  const auto resolved = Resolved(spec::Family::kHunyuanVideo, sizes);
  config.hidden_size = resolved.dim;
  config.heads_num = resolved.heads;
  config.mlp_width_ratio = static_cast<double>(resolved.ffn_dim) / static_cast<double>(resolved.dim);
  config.double_blocks = std::max<std::int64_t>(1, (sizes.layers + 2) / 3);
  config.single_blocks = std::max<std::int64_t>(0, sizes.layers - config.double_blocks);
  if (sizes.bytes > 0) {
    config.double_blocks = 1;
    config.single_blocks = BlocksFilling(sizes.bytes, 2, 0, [&](std::int64_t singles) {
      auto sized = config;
      sized.single_blocks = singles;
      return hunyuan::HunyuanDit(sized);
    });
  }
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

}  // namespace

SyntheticDit Resolved(spec::Family family, const SyntheticDit& dit) {
  // A width of one's own needs its heads and FFN width too; the released width comes with the released ones.
  auto resolved = dit;
  auto release = [&](std::int64_t dim, std::int64_t heads, std::int64_t ffn_dim) {
    if (dit.dim != 0) return;
    resolved.dim = dim;
    if (resolved.heads == 0) resolved.heads = heads;
    if (resolved.ffn_dim == 0) resolved.ffn_dim = ffn_dim;
  };
  if (family == spec::Family::kWan) {
    const wan::WanDitConfig released;
    release(released.dim, released.num_heads, released.ffn_dim);
  } else {
    const hunyuan::HunyuanDitConfig released;
    release(released.hidden_size, released.heads_num, released.mlp_hidden());
  }
  if (resolved.heads == 0 || resolved.ffn_dim == 0) {
    Fail(ErrorCode::kInvalidArgument, "a synthetic DiT of width {} needs its heads and FFN width too", resolved.dim);
  }
  return resolved;
}

fs::path DefaultParts(spec::Family family) {
  const fs::path golden = fs::path("tests") / "data" / "golden";
  return family == spec::Family::kWan ? golden / "wan2.1-t2v-tiny" : golden / "hunyuan-video-t2v-tiny";
}

void WriteSyntheticCheckpoint(const fs::path& dir, spec::Family family, const fs::path& parts,
                              const SyntheticDit& dit) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  family == spec::Family::kWan ? WriteWan(dir, parts, dit) : WriteHunyuan(dir, parts, dit);
}

SyntheticCheckpoint::SyntheticCheckpoint(spec::Family family, const SyntheticDit& dit, fs::path parts)
    : dir_(fs::temp_directory_path() / fmt::format("vidgen-bench-model-{}-{}", ::getpid(), next_id++)) {
  try {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    spdlog::info("writing a synthetic {} checkpoint in {}", spec::FamilyName(family), dir_.string());
    WriteSyntheticCheckpoint(dir_, family, parts.empty() ? DefaultParts(family) : parts, dit);
  } catch (const fs::filesystem_error& e) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    Fail(ErrorCode::kFailedPrecondition, "cannot write a synthetic checkpoint in {}: {}", dir_.string(), e.what());
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    throw;
  }
}

SyntheticCheckpoint::~SyntheticCheckpoint() {
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

}  // namespace vidgen::tools
