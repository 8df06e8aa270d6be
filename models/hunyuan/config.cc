#include "models/hunyuan/config.h"

#include "common/error.h"
#include "models/io/json_config.h"

namespace vidgen::hunyuan {

void HunyuanDitConfig::Validate() const {
  auto positive = [](const char* name, std::int64_t value) {
    if (value < 1) Fail(ErrorCode::kInvalidArgument, "HunyuanVideo config: {} must be positive, got {}", name, value);
  };
  positive("hidden_size", hidden_size);
  positive("heads_num", heads_num);
  positive("in_channels", in_channels);
  positive("out_channels", out_channels);
  positive("text_states_dim", text_states_dim);
  positive("text_states_dim_2", text_states_dim_2);
  if (hidden_size % heads_num != 0) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo config: hidden_size {} does not divide by heads_num {}",
         hidden_size, heads_num);
  }
  if (rope_dim_list[0] + rope_dim_list[1] + rope_dim_list[2] != head_dim() || rope_dim_list[0] % 2 ||
      rope_dim_list[1] % 2 || rope_dim_list[2] % 2) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo config: rope_dim_list [{}, {}, {}] must be even and sum to the "
         "head dim {}", rope_dim_list[0], rope_dim_list[1], rope_dim_list[2], head_dim());
  }
  if (double_blocks < 0 || single_blocks < 0 || refiner_blocks < 0) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo config: block counts must not be negative");
  }
  if (!(rope_theta > 0) || !(mlp_width_ratio > 0)) {
    Fail(ErrorCode::kInvalidArgument, "HunyuanVideo config: rope_theta and mlp_width_ratio must be positive");
  }
}

HunyuanDitConfig ReadDiffusersHunyuanConfig(const std::string& path) {
  const io::JsonConfig file(path, "HunyuanVideo config");
  const auto read = [&](const char* key, auto& field) { file.Read(key, field); };
  HunyuanDitConfig config;
  std::int64_t head_dim = config.head_dim(), patch = config.patch_size[1], patch_t = config.patch_size[0];
  read("num_attention_heads", config.heads_num);
  read("attention_head_dim", head_dim);
  config.hidden_size = config.heads_num * head_dim;
  read("num_layers", config.double_blocks);
  read("num_single_layers", config.single_blocks);
  read("num_refiner_layers", config.refiner_blocks);
  read("mlp_ratio", config.mlp_width_ratio);
  read("patch_size", patch);
  read("patch_size_t", patch_t);
  config.patch_size = {patch_t, patch, patch};
  read("rope_theta", config.rope_theta);
  read("rope_axes_dim", config.rope_dim_list);
  read("text_embed_dim", config.text_states_dim);
  read("pooled_projection_dim", config.text_states_dim_2);
  read("guidance_embeds", config.guidance_embed);
  read("in_channels", config.in_channels);
  read("out_channels", config.out_channels);
  config.Validate();
  return config;
}

HunyuanDitConfig ReadHunyuanDitConfig(const std::string& path) {
  const io::JsonConfig file(path, "HunyuanVideo config");
  const auto read = [&](const char* key, auto& field) { file.Read(key, field); };
  const auto& json = file.json();
  HunyuanDitConfig config;
  read("patch_size", config.patch_size);
  read("in_channels", config.in_channels);
  read("out_channels", config.out_channels);
  read("hidden_size", config.hidden_size);
  read("heads_num", config.heads_num);
  read("mlp_width_ratio", config.mlp_width_ratio);
  read("mm_double_blocks_depth", config.double_blocks);
  read("mm_single_blocks_depth", config.single_blocks);
  read("rope_dim_list", config.rope_dim_list);
  read("rope_theta", config.rope_theta);
  read("text_states_dim", config.text_states_dim);
  read("text_states_dim_2", config.text_states_dim_2);
  read("guidance_embed", config.guidance_embed);
  read("qkv_bias", config.qkv_bias);
  for (const char* key : {"mlp_act_type", "qk_norm_type", "text_projection"}) {
    const auto it = json.find(key);
    const std::string expected = key == std::string("mlp_act_type")   ? "gelu_tanh"
                                 : key == std::string("qk_norm_type") ? "rms"
                                                                      : "single_refiner";
    if (it != json.end() && it->is_string() && it->get<std::string>() != expected) {
      Fail(ErrorCode::kUnimplemented, "HunyuanVideo config '{}': {} '{}' is not supported (only '{}')", path, key,
           it->get<std::string>(), expected);
    }
  }
  config.Validate();
  return config;
}

}  // namespace vidgen::hunyuan
