#include "models/wan/config.h"

#include "common/error.h"
#include "models/io/json_config.h"

namespace vidgen::wan {

void WanDitConfig::Validate() const {
  auto positive = [](const char* field, std::int64_t value) {
    if (value <= 0)
      Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': {}, expected a positive size", field, value);
  };
  positive("dim", dim);
  positive("ffn_dim", ffn_dim);
  positive("freq_dim", freq_dim);
  positive("text_dim", text_dim);
  positive("text_len", text_len);
  positive("in_dim", in_dim);
  positive("out_dim", out_dim);
  positive("num_heads", num_heads);
  positive("num_layers", num_layers);
  positive("image_dim", image_dim);
  positive("image_tokens", image_tokens);
  for (const auto p : patch_size) positive("patch_size", p);
  if (dim % num_heads != 0 || head_dim() % 2 != 0) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for 'num_heads': {} does not split dim {} into even head sizes",
         num_heads, dim);
  }
  if (head_dim() < 6) Fail(ErrorCode::kInvalidArgument, "invalid head size {}: 3D RoPE needs at least 6", head_dim());
  if (freq_dim % 2 != 0) Fail(ErrorCode::kInvalidArgument, "invalid value for 'freq_dim': {}, expected even", freq_dim);
}

WanDitConfig ReadWanDitConfig(const std::string& path) {
  const io::JsonConfig file(path, "Wan config");
  const auto read = [&](const char* key, auto& field) { file.Read(key, field); };
  WanDitConfig config;
  std::string model_type = "t2v";
  read("model_type", model_type);
  if (model_type == "t2v") {
    config.model_type = WanModelType::kT2V;
  } else if (model_type == "i2v") {
    config.model_type = WanModelType::kI2V;
  } else if (model_type == "flf2v") {
    config.model_type = WanModelType::kFLF2V;
  } else {
    Fail(ErrorCode::kInvalidArgument, "Wan config '{}': model_type '{}' is not supported (t2v, i2v, flf2v)", path,
         model_type);
  }
  read("patch_size", config.patch_size);
  read("text_len", config.text_len);
  read("in_dim", config.in_dim);
  read("dim", config.dim);
  read("ffn_dim", config.ffn_dim);
  read("freq_dim", config.freq_dim);
  read("text_dim", config.text_dim);
  read("out_dim", config.out_dim);
  read("num_heads", config.num_heads);
  read("num_layers", config.num_layers);
  read("qk_norm", config.qk_norm);
  read("cross_attn_norm", config.cross_attn_norm);
  read("eps", config.eps);
  std::array<std::int64_t, 2> window = {-1, -1};
  read("window_size", window);
  if (window != std::array<std::int64_t, 2>{-1, -1}) {
    Fail(ErrorCode::kInvalidArgument, "Wan config '{}': window_size [{}, {}] is not supported (only global attention)",
         path, window[0], window[1]);
  }
  try {
    config.Validate();
  } catch (const Error& e) {
    Fail(e.code(), "Wan config '{}': {}", path, e.what());
  }
  return config;
}

}  // namespace vidgen::wan
