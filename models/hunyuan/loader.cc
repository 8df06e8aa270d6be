#include "models/hunyuan/loader.h"

#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/layers/deferred.h"

namespace vidgen::hunyuan {
namespace {

namespace fs = std::filesystem;

// diffusers names -> released names, for the names that map one to one.
const io::KeyMap& DiffusersNames() {
  static const auto map = io::KeyTable(R"(
      x_embedder.proj.                                              img_in.proj.
      time_text_embed.timestep_embedder.linear_1.                   time_in.mlp.0.
      time_text_embed.timestep_embedder.linear_2.                   time_in.mlp.2.
      time_text_embed.guidance_embedder.linear_1.                   guidance_in.mlp.0.
      time_text_embed.guidance_embedder.linear_2.                   guidance_in.mlp.2.
      time_text_embed.text_embedder.linear_1.                       vector_in.in_layer.
      time_text_embed.text_embedder.linear_2.                       vector_in.out_layer.
      context_embedder.proj_in.                                     txt_in.input_embedder.
      context_embedder.time_text_embed.timestep_embedder.linear_1.  txt_in.t_embedder.mlp.0.
      context_embedder.time_text_embed.timestep_embedder.linear_2.  txt_in.t_embedder.mlp.2.
      context_embedder.time_text_embed.text_embedder.linear_1.      txt_in.c_embedder.linear_1.
      context_embedder.time_text_embed.text_embedder.linear_2.      txt_in.c_embedder.linear_2.
      context_embedder.token_refiner.refiner_blocks.                txt_in.individual_token_refiner.blocks.
      transformer_blocks.                                           double_blocks.
      single_transformer_blocks.                                    single_blocks.
      proj_out.                                                     final_layer.linear.
      norm_out.linear.                                              final_layer.adaLN_modulation.1.
      # inside blocks
      .attn.to_out.0.                                               .self_attn_proj.  # refiner; double blocks are renamed below
      .ff.net.0.proj.                                               .mlp.fc1.
      .ff.net.2.                                                    .mlp.fc2.
      .norm_out.linear.                                             .adaLN_modulation.1.
  )");
  return map;
}

// Concatenates `in`<part>.weight (and .bias) over the parts into `out`.weight (and .bias), when the store has them:
// a concatenation that loading writes part by part, never made in host memory.
void Fuse(io::WeightStore& store, const std::string& in, std::initializer_list<const char*> parts,
          const std::string& out) {
  for (const char* kind : {".weight", ".bias"}) {
    if (!store.Contains(in + *parts.begin() + kind)) continue;
    std::vector<at::Tensor> tensors;
    for (const char* part : parts) tensors.push_back(store.Get(in + part + kind));
    for (const char* part : parts) store.Erase(in + part + kind);
    store.AddConcatenation(out + kind, std::move(tensors), in);
  }
}

}  // namespace

void DiffusersToReleased(io::WeightStore& store, const HunyuanDitConfig& config) {
  // Block-level names first, while the diffusers spellings are still there to tell the streams apart; single
  // blocks before double blocks, whose names are a suffix of theirs.
  for (std::int64_t i = 0; i < config.single_blocks; ++i) {
    const std::string in = fmt::format("single_transformer_blocks.{}.", i), out = fmt::format("single_blocks.{}.", i);
    Fuse(store, in, {"attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"}, out + "linear1");
    store.Rename(io::KeyMap{{in + "attn.norm_q.", out + "q_norm."},
                            {in + "attn.norm_k.", out + "k_norm."},
                            {in + "proj_out.", out + "linear2."},
                            {in + "norm.linear.", out + "modulation.linear."}});
  }
  for (std::int64_t i = 0; i < config.double_blocks; ++i) {
    const std::string in = fmt::format("transformer_blocks.{}.", i), out = fmt::format("double_blocks.{}.", i);
    Fuse(store, in, {"attn.to_q", "attn.to_k", "attn.to_v"}, out + "img_attn_qkv");
    Fuse(store, in, {"attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"}, out + "txt_attn_qkv");
    store.Rename(io::KeyMap{{in + "norm1.linear.", out + "img_mod.linear."},
                            {in + "norm1_context.linear.", out + "txt_mod.linear."},
                            {in + "attn.norm_q.", out + "img_attn_q_norm."},
                            {in + "attn.norm_k.", out + "img_attn_k_norm."},
                            {in + "attn.norm_added_q.", out + "txt_attn_q_norm."},
                            {in + "attn.norm_added_k.", out + "txt_attn_k_norm."},
                            {in + "attn.to_out.0.", out + "img_attn_proj."},
                            {in + "attn.to_add_out.", out + "txt_attn_proj."},
                            {in + "ff.net.0.proj.", out + "img_mlp.fc1."},
                            {in + "ff.net.2.", out + "img_mlp.fc2."},
                            {in + "ff_context.net.0.proj.", out + "txt_mlp.fc1."},
                            {in + "ff_context.net.2.", out + "txt_mlp.fc2."}});
  }
  for (std::int64_t i = 0; i < config.refiner_blocks; ++i) {
    const std::string in = fmt::format("context_embedder.token_refiner.refiner_blocks.{}.", i);
    Fuse(store, in, {"attn.to_q", "attn.to_k", "attn.to_v"}, in + "self_attn_qkv");
  }
  store.Rename(DiffusersNames());
  // diffusers keeps the final modulation as [scale; shift]; the released layout is [shift; scale].
  for (const char* kind : {"weight", "bias"}) {
    const std::string name = std::string("final_layer.adaLN_modulation.1.") + kind;
    if (!store.Contains(name)) continue;
    const auto halves = store.Get(name).chunk(2, 0);
    const auto swapped = torch::cat({halves[1], halves[0]}, 0);
    store.Erase(name);
    store.Add(name, swapped, "diffusers (halves swapped)");
  }
}

HunyuanDit LoadHunyuanDit(const std::string& dir, c10::ScalarType dtype, c10::Device device) {
  fs::path folder = dir;
  for (const char* child : {"transformers", "transformer"}) {
    if (fs::is_directory(folder / child)) {
      folder /= child;
      break;
    }
  }
  io::WeightStore store;
  bool diffusers = false;
  if (fs::exists(folder / "mp_rank_00_model_states.pt")) {
    store.AddFile((folder / "mp_rank_00_model_states.pt").string());
    store.SelectPrefix("module.");
  } else {
    store.AddSafetensors(folder.string(), "diffusion_pytorch_model");
    diffusers = true;
  }
  if (store.size() == 0) Fail(ErrorCode::kNotFound, "no HunyuanVideo transformer weights in '{}'", folder.string());
  const auto config_path = folder / "config.json";
  HunyuanDitConfig config;  // the release's, which ships none
  if (fs::exists(config_path)) {
    config = diffusers ? ReadDiffusersHunyuanConfig(config_path.string()) : ReadHunyuanDitConfig(config_path.string());
  }
  if (diffusers) DiffusersToReleased(store, config);
  // Check the sizes against the weights before building anything.
  if (!store.Contains("img_in.proj.weight") || !store.Contains("final_layer.linear.weight")) {
    Fail(ErrorCode::kNotFound, "'{}' holds no HunyuanVideo transformer (no img_in.proj / final_layer weights)",
         folder.string());
  }
  const auto& embed = store.Get("img_in.proj.weight");
  if (embed.size(0) != config.hidden_size || embed.size(1) != config.in_channels) {
    Fail(ErrorCode::kInvalidArgument,
         "HunyuanVideo transformer in '{}': its config says width {} and {} input channels, the weights have {} and {}",
         folder.string(), config.hidden_size, config.in_channels, embed.size(0), embed.size(1));
  }
  HunyuanDit dit(nullptr);
  {
    layers::DeferredInit deferred;  // built without memory, filled tensor by tensor in `dtype` on `device`
    dit = HunyuanDit(config);
  }
  dit->SetComputeDType(dtype);
  store.LoadInto(*dit, {.allow_unexpected = false, .what = "the HunyuanVideo transformer", .device = device});
  spdlog::info("loaded HunyuanVideo transformer from '{}' ({} double, {} single blocks, width {})", folder.string(),
               config.double_blocks, config.single_blocks, config.hidden_size);
  return dit;
}

}  // namespace vidgen::hunyuan
