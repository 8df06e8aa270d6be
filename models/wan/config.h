// The Wan2.1 DiT's configuration (its defaults are the released 1.3B T2V's) and its config.json.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace vidgen::wan {

enum class WanModelType { kT2V, kI2V, kFLF2V };

struct WanDitConfig {
  WanModelType model_type = WanModelType::kT2V;
  std::array<std::int64_t, 3> patch_size = {1, 2, 2};
  std::int64_t text_len = 512;
  std::int64_t in_dim = 16;
  std::int64_t dim = 1536;
  std::int64_t ffn_dim = 8960;
  std::int64_t freq_dim = 256;
  std::int64_t text_dim = 4096;
  std::int64_t out_dim = 16;
  std::int64_t num_heads = 12;
  std::int64_t num_layers = 30;
  bool qk_norm = true;
  bool cross_attn_norm = true;
  double eps = 1e-6;
  // I2V/FLF2V: the CLIP features' width (ViT-H/14: 1280) and, FLF2V, the rows of `img_emb.emb_pos` (both images'
  // tokens: 2·257). Not in the released config.json: the loader reads them from the weights' shapes.
  std::int64_t image_dim = 1280;
  std::int64_t image_tokens = 2 * 257;

  std::int64_t head_dim() const { return dim / num_heads; }
  bool has_image_input() const { return model_type != WanModelType::kT2V; }

  // Checks sizes and throws Error(INVALID_ARGUMENT) naming the field.
  void Validate() const;
};

// Reads a Wan DiT config.json (the released keys: model_type, dim, ffn_dim, num_heads, ...; keys it lacks keep the
// reference's defaults). Throws Error naming the file and the key on a value vidgen does not support.
WanDitConfig ReadWanDitConfig(const std::string& path);

}  // namespace vidgen::wan
