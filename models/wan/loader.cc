#include "models/wan/loader.h"

#include <filesystem>
#include <regex>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/layers/deferred.h"

namespace vidgen::wan {
namespace {

namespace fs = std::filesystem;

fs::path Require(const fs::path& path) {
  if (!fs::exists(path)) Fail(ErrorCode::kNotFound, "Wan checkpoint file '{}' does not exist", path.string());
  return path;
}

// The image embedding's sizes, which config.json does not state, from its weights.
void SizeImageEmbedding(const io::WeightStore& weights, WanDitConfig& config) {
  if (!config.has_image_input()) return;
  const auto& norm = weights.Get("img_emb.proj.0.weight");
  if (norm.dim() != 1)
    Fail(ErrorCode::kInvalidArgument, "img_emb.proj.0.weight is [{}], expected one dimension",
         fmt::join(norm.sizes(), ", "));
  config.image_dim = norm.size(0);
  if (config.model_type != WanModelType::kFLF2V) return;
  const auto& positions = weights.Get("img_emb.emb_pos");
  if (positions.dim() != 3)
    Fail(ErrorCode::kInvalidArgument, "img_emb.emb_pos is [{}], expected [1, tokens, {}]",
         fmt::join(positions.sizes(), ", "), config.image_dim);
  config.image_tokens = positions.size(1);
}

}  // namespace

const io::KeyMap& DiffusersDitKeyMap() {
  static const auto map = io::KeyTable(R"(
      condition_embedder.time_embedder.linear_1        time_embedding.0
      condition_embedder.time_embedder.linear_2        time_embedding.2
      condition_embedder.time_proj                     time_projection.1
      condition_embedder.text_embedder.linear_1        text_embedding.0
      condition_embedder.text_embedder.linear_2        text_embedding.2
      condition_embedder.image_embedder.norm1          img_emb.proj.0
      condition_embedder.image_embedder.ff.net.0.proj  img_emb.proj.1
      condition_embedder.image_embedder.ff.net.2       img_emb.proj.3
      condition_embedder.image_embedder.norm2          img_emb.proj.4
      condition_embedder.image_embedder.pos_embed      img_emb.emb_pos
      .scale_shift_table                               .modulation  # in blocks
      scale_shift_table                                head.modulation  # at the top
      proj_out                                         head.head
      attn1.to_q                                       self_attn.q
      attn1.to_k                                       self_attn.k
      attn1.to_v                                       self_attn.v
      attn1.to_out.0                                   self_attn.o
      attn1.norm_q                                     self_attn.norm_q
      attn1.norm_k                                     self_attn.norm_k
      attn2.to_q                                       cross_attn.q
      attn2.to_k                                       cross_attn.k
      attn2.to_v                                       cross_attn.v
      attn2.to_out.0                                   cross_attn.o
      attn2.norm_q                                     cross_attn.norm_q
      attn2.norm_k                                     cross_attn.norm_k
      attn2.add_k_proj                                 cross_attn.k_img
      attn2.add_v_proj                                 cross_attn.v_img
      attn2.norm_added_k                               cross_attn.norm_k_img
      norm2                                            norm3  # diffusers calls the affine cross-attention norm norm2
      ffn.net.0.proj                                   ffn.0
      ffn.net.2                                        ffn.2
  )");
  return map;
}

std::string DiffusersVaeKeyToWan(const std::string& name) {
  static const std::regex up_resnet(R"(^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.)");
  static const std::regex up_sampler(R"(^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.)");
  static const io::KeyMap parts = {
      {"post_quant_conv.", "conv2."},
      {"quant_conv.", "conv1."},
      {"encoder.conv_in.", "encoder.conv1."},
      {"decoder.conv_in.", "decoder.conv1."},
      {"down_blocks.", "downsamples."},
      // No trailing dot: the residual rules below start with one.
      {"mid_block.resnets.0", "middle.0"},
      {"mid_block.attentions.0", "middle.1"},
      {"mid_block.resnets.1", "middle.2"},
      {"norm_out.", "head.0."},
      {"conv_out.", "head.2."},
      {".norm1.", ".residual.0."},
      {".conv1.", ".residual.2."},
      {".norm2.", ".residual.3."},
      {".conv2.", ".residual.6."},
      {".conv_shortcut.", ".shortcut."},
  };
  std::smatch match;
  std::string renamed = name;
  // Decoder stage b holds resnets 4b..4b+2 and its upsampler at 4b+3 in Wan's flat list.
  if (std::regex_search(name, match, up_resnet)) {
    renamed =
        fmt::format("decoder.upsamples.{}.{}", 4 * std::stoi(match[1]) + std::stoi(match[2]), match.suffix().str());
  } else if (std::regex_search(name, match, up_sampler)) {
    renamed = fmt::format("decoder.upsamples.{}.{}", 4 * std::stoi(match[1]) + 3, match.suffix().str());
  }
  return io::ApplyKeyMap(parts, renamed);
}

WanDitConfig ReadDiffusersDitConfig(const std::string& path) {
  const io::JsonConfig file(path, "diffusers transformer config");
  const auto& json = file.json();
  WanDitConfig config;
  try {
    const auto heads = json.at("num_attention_heads").get<std::int64_t>();
    config.num_heads = heads;
    config.dim = heads * json.at("attention_head_dim").get<std::int64_t>();
    config.ffn_dim = json.at("ffn_dim").get<std::int64_t>();
    config.num_layers = json.at("num_layers").get<std::int64_t>();
    config.in_dim = json.value("in_channels", config.in_dim);
    config.out_dim = json.value("out_channels", config.out_dim);
    config.freq_dim = json.value("freq_dim", config.freq_dim);
    config.text_dim = json.value("text_dim", config.text_dim);
    config.eps = json.value("eps", config.eps);
    config.cross_attn_norm = json.value("cross_attn_norm", config.cross_attn_norm);
    // diffusers pads prompts to the pipeline's max_sequence_length (512); a config may state another.
    config.text_len = json.value("text_len", config.text_len);
    if (json.contains("patch_size")) json.at("patch_size").get_to(config.patch_size);
    const auto qk_norm = json.value("qk_norm", std::string("rms_norm_across_heads"));
    if (qk_norm != "rms_norm_across_heads") {
      Fail(ErrorCode::kInvalidArgument, "diffusers config '{}': qk_norm '{}' is not supported", path, qk_norm);
    }
    if (json.contains("image_dim") && !json.at("image_dim").is_null()) {
      config.model_type = json.contains("pos_embed_seq_len") && !json.at("pos_embed_seq_len").is_null()
                              ? WanModelType::kFLF2V
                              : WanModelType::kI2V;
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "diffusers config '{}': {}", path, e.what());
  }
  config.Validate();
  return config;
}

WanCheckpoint LoadWanCheckpoint(const std::string& dir_name, c10::ScalarType dtype, c10::Device device) {
  const fs::path dir(dir_name);
  if (!fs::is_directory(dir)) Fail(ErrorCode::kNotFound, "Wan checkpoint folder '{}' does not exist", dir_name);
  WanCheckpoint checkpoint;
  checkpoint.layout = fs::is_directory(dir / "transformer") ? WanLayout::kDiffusers : WanLayout::kReleased;
  const bool diffusers = checkpoint.layout == WanLayout::kDiffusers;
  spdlog::info("loading Wan2.1 from '{}' ({} layout)", dir_name, diffusers ? "diffusers" : "released");

  // DiT
  io::WeightStore dit_weights;
  WanDitConfig config;
  if (diffusers) {
    config = ReadDiffusersDitConfig(Require(dir / "transformer" / "config.json").string());
    dit_weights.AddSafetensors((dir / "transformer").string(), "diffusion_pytorch_model");
    dit_weights.Rename(DiffusersDitKeyMap());
  } else {
    config = ReadWanDitConfig(Require(dir / "config.json").string());
    dit_weights.AddSafetensors(dir.string(), "diffusion_pytorch_model");
  }
  SizeImageEmbedding(dit_weights, config);
  {
    layers::DeferredInit deferred;  // built without memory, filled tensor by tensor in its dtypes on `device`
    checkpoint.dit = WanDit(config);
  }
  checkpoint.dit->SetComputeDType(dtype);
  checkpoint.dit->FuseProjections(device);
  dit_weights.LoadInto(*checkpoint.dit, {.allow_unexpected = false, .what = "the Wan DiT", .device = device});
  checkpoint.dit->eval();

  // Text encoder
  io::WeightStore t5_weights;
  if (diffusers) {
    t5_weights.AddSafetensors((dir / "text_encoder").string(), "model");
  } else {
    t5_weights.AddFile(Require(dir / "models_t5_umt5-xxl-enc-bf16.pth").string());
  }
  checkpoint.t5 = encoders::LoadUmT5Encoder(t5_weights, dtype, device);

  // VAE (fp32)
  io::WeightStore vae_weights;
  if (diffusers) {
    vae_weights.AddSafetensors((dir / "vae").string(), "diffusion_pytorch_model");
    vae_weights.Rename(DiffusersVaeKeyToWan);
  } else {
    vae_weights.AddFile(Require(dir / "Wan2.1_VAE.pth").string());
  }
  {
    layers::DeferredInit deferred;
    checkpoint.vae = WanVae(InferWanVaeConfig(vae_weights));
  }
  vae_weights.LoadInto(*checkpoint.vae, {.allow_unexpected = false, .what = "the Wan VAE", .device = device});
  checkpoint.vae->eval();

  // CLIP image encoder (I2V/FLF2V)
  if (config.has_image_input()) {
    checkpoint.clip =
        diffusers
            ? encoders::LoadDiffusersClipVisionEncoder((dir / "image_encoder").string(), dtype, device)
            : encoders::LoadClipVisionEncoder(
                  Require(dir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth").string(), dtype, device);
  }

  const auto tokenizer_dir = diffusers ? dir / "tokenizer" : dir / "google" / "umt5-xxl";
  checkpoint.tokenizer =
      std::make_unique<text::T5Tokenizer>(Require(tokenizer_dir / "spiece.model").string(), config.text_len);
  return checkpoint;
}

}  // namespace vidgen::wan
