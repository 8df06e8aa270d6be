// Reading a Wan2.1 checkpoint folder, released or diffusers layout, into vidgen's modules.
#pragma once

#include <memory>
#include <string>

#include <c10/core/ScalarType.h>

#include "models/encoders/clip_vision.h"
#include "models/encoders/umt5.h"
#include "models/io/weight_store.h"
#include "models/text/t5_tokenizer.h"
#include "models/wan/dit.h"
#include "models/wan/vae.h"

namespace vidgen::wan {

enum class WanLayout { kReleased, kDiffusers };

struct WanCheckpoint {
  WanLayout layout = WanLayout::kReleased;
  std::unique_ptr<text::T5Tokenizer> tokenizer;
  encoders::UmT5Encoder t5{nullptr};
  WanDit dit{nullptr};
  WanVae vae{nullptr};
  encoders::ClipVisionEncoder clip{nullptr};  // I2V/FLF2V only
};

// Detects the layout of `dir` and loads every part onto `device`, tensor by tensor from the mapped files: the DiT's
// matrix products and the T5 in `dtype`, norms, modulation and time embedding in fp32, the VAE in fp32. Throws
// Error naming the missing file or tensor. An I2V/FLF2V checkpoint's CLIP image encoder runs in `dtype` too.
WanCheckpoint LoadWanCheckpoint(const std::string& dir, c10::ScalarType dtype,
                                c10::Device device = c10::Device(c10::DeviceType::CPU));

// diffusers names -> Wan names (models.md A.6, B.3; the text encoder's are encoders::TransformersUmT5KeyMap).
const io::KeyMap& DiffusersDitKeyMap();
std::string DiffusersVaeKeyToWan(const std::string& name);

// The DiT config from a diffusers transformer/config.json.
WanDitConfig ReadDiffusersDitConfig(const std::string& path);

}  // namespace vidgen::wan
