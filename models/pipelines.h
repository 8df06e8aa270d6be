// One entry point for every model family: a checkpoint folder in, the right pipeline out.
#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "models/generation.h"

namespace vidgen {

namespace parallel {
class World;
}

enum class ModelFamily { kWan, kHunyuanVideo };

// "wan2.1" / "hunyuanvideo", the names the service and its clients use.
std::string FamilyName(ModelFamily family);
// Parses those names; throws Error(INVALID_ARGUMENT) otherwise.
ModelFamily ParseFamily(const std::string& name);
// HunyuanVideo when the folder has its transformer (transformers/, hunyuan-video-t2v-720p/ or a diffusers
// transformer with a token refiner), Wan2.1 otherwise.
ModelFamily DetectFamily(const std::string& dir);

struct PipelineOptions {
  c10::ScalarType dtype = c10::kBFloat16;
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  parallel::World* world = nullptr;
};

// The family's defaults for what a request leaves unset: Wan 832×480, 81 frames, guidance 5, shift 5; HunyuanVideo
// 1280×720, 129 frames, embedded guidance 6, shift 7 (models.md C.4, E.4).
GenerationRequest FamilyDefaults(ModelFamily family);

std::unique_ptr<VideoPipeline> LoadPipeline(const std::string& dir, ModelFamily family,
                                            const PipelineOptions& options);

}  // namespace vidgen
