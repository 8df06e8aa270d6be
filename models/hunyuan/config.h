// HunyuanVideo DiT configuration (models.md D.1): the released "HYVideo-T/2-cfgdistill" sizes, or a config.json
// with the reference's HUNYUAN_VIDEO_CONFIG keys (hidden_size, heads_num, mm_double_blocks_depth, ...).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace vidgen::hunyuan {

// The defaults are the released 13B transformer's (its checkpoint has no config).
struct HunyuanDitConfig {
  std::array<std::int64_t, 3> patch_size = {1, 2, 2};
  std::int64_t in_channels = 16;
  std::int64_t out_channels = 16;
  std::int64_t hidden_size = 3072;
  std::int64_t heads_num = 24;
  double mlp_width_ratio = 4.0;
  std::int64_t double_blocks = 20;
  std::int64_t single_blocks = 40;
  std::int64_t refiner_blocks = 2;
  std::array<std::int64_t, 3> rope_dim_list = {16, 56, 56};
  double rope_theta = 256.0;
  std::int64_t text_states_dim = 4096;    // LLaMA hidden states
  std::int64_t text_states_dim_2 = 768;   // CLIP-L pooled output
  bool guidance_embed = true;
  bool qkv_bias = true;

  std::int64_t head_dim() const { return hidden_size / heads_num; }
  std::int64_t mlp_hidden() const { return static_cast<std::int64_t>(hidden_size * mlp_width_ratio); }

  // Throws Error(INVALID_ARGUMENT) naming the field.
  void Validate() const;
};

// Reads a config.json; keys it lacks keep the released values. Throws Error naming the file and the key.
HunyuanDitConfig ReadHunyuanDitConfig(const std::string& path);

// Reads diffusers' transformer/config.json (num_attention_heads, attention_head_dim, num_layers, num_single_layers,
// num_refiner_layers, mlp_ratio, patch_size, patch_size_t, rope_theta, rope_axes_dim, text_embed_dim,
// pooled_projection_dim, guidance_embeds, in_channels, out_channels).
HunyuanDitConfig ReadDiffusersHunyuanConfig(const std::string& path);

}  // namespace vidgen::hunyuan
