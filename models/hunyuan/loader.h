// Loading HunyuanVideo's transformer: the released layout (`transformers/mp_rank_00_model_states.pt`, a torch.save
// archive with the state dict under "module", sizes of HYVideo-T/2-cfgdistill or a config.json beside it) and the
// diffusers layout (`transformer/*.safetensors` with its names, q/k/v split and the final [scale; shift] swapped).
#pragma once

#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "models/hunyuan/dit.h"
#include "models/io/weight_store.h"

namespace vidgen::hunyuan {

// Renames a diffusers HunyuanVideoTransformer3DModel state into the released names (models.md D.9): fuses the
// split q/k/v (and single blocks' proj_mlp) back into one matrix and swaps the final modulation's halves.
void DiffusersToReleased(io::WeightStore& store, const HunyuanDitConfig& config);

// Reads the transformer of a checkpoint folder (the folder itself, its `transformers/` or its `transformer/`).
// Throws Error naming the file or the tensors that do not fit.
HunyuanDit LoadHunyuanDit(const std::string& dir, c10::ScalarType dtype = c10::kFloat,
                          c10::Device device = c10::Device(c10::DeviceType::CPU));

}  // namespace vidgen::hunyuan
