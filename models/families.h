// The model families, one entry each: how a checkpoint folder is recognised and how it loads. Adding a family is an
// entry in Families(), its folder under models/ (config, blocks, key tables, encoders and VAE), and its defaults
// in spec/.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "models/generation.h"
#include "spec/spec.h"

namespace vidgen {

namespace parallel {
class World;
}

struct PipelineOptions {
  c10::ScalarType dtype = c10::kBFloat16;
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  parallel::World* world = nullptr;  // not owned; must outlive the pipeline
};

// A family's own load options with the registry's dtype, device and world, the rest at the family's defaults.
template <typename Options>
Options FamilyOptions(const PipelineOptions& options) {
  Options family;
  family.dtype = options.dtype;
  family.device = options.device;
  family.world = options.world;
  return family;
}

struct FamilyEntry {
  spec::Family family;
  // True when `dir` holds a checkpoint of this family, in any layout its loader reads.
  bool (*recognizes)(const std::filesystem::path& dir);
  // Throws Error naming the folder, file or tensor that does not fit.
  std::unique_ptr<VideoPipeline> (*load)(const std::string& dir, const PipelineOptions& options);
};

// For an entry's `recognizes`: `dir` is a diffusers folder whose transformer/config.json names `class_name`.
bool IsDiffusersTransformer(const std::filesystem::path& dir, std::string_view class_name);

// In the order they are asked to recognise a folder.
std::span<const FamilyEntry> Families();
const FamilyEntry& Family(spec::Family family);
// The family whose checkpoint `dir` holds; Error(NOT_FOUND) naming it when no family recognises it.
spec::Family DetectFamily(const std::string& dir);
std::unique_ptr<VideoPipeline> LoadPipeline(const std::string& dir, spec::Family family, const PipelineOptions& options);

// The family's defaults (spec::FamilyDefaults) as a request.
GenerationRequest FamilyDefaults(spec::Family family);

// "fp32", "bf16", "fp16" -> the dtype of the matrix products; throws Error(INVALID_ARGUMENT) otherwise.
c10::ScalarType ParseModelDType(const std::string& name);

}  // namespace vidgen
