#include "models/families.h"

#include <algorithm>
#include <array>

#include "common/error.h"
#include "models/io/json_config.h"
#include "models/job_request.h"
#include "models/hunyuan/pipeline.h"
#include "models/wan/pipeline.h"

namespace vidgen {

bool IsDiffusersTransformer(const std::filesystem::path& dir, std::string_view class_name) {
  const auto config = dir / "transformer" / "config.json";
  return std::filesystem::is_regular_file(config) &&
         io::JsonConfig(config.string(), "diffusers transformer config").json().value("_class_name", "") == class_name;
}

std::span<const FamilyEntry> Families() {
  // HunyuanVideo first: a diffusers folder is Wan's only when it is not HunyuanVideo's.
  static const std::array<FamilyEntry, 2> families = {{
      {spec::Family::kHunyuanVideo, hunyuan::IsHunyuanCheckpoint, hunyuan::LoadHunyuanPipeline},
      {spec::Family::kWan, wan::IsWanCheckpoint, wan::LoadWanPipeline},
  }};
  return families;
}

const FamilyEntry& Family(spec::Family family) {
  const auto families = Families();
  return *std::find_if(families.begin(), families.end(), [&](const auto& entry) { return entry.family == family; });
}

spec::Family DetectFamily(const std::string& dir) {
  for (const auto& entry : Families()) {
    if (entry.recognizes(dir)) return entry.family;
  }
  Fail(ErrorCode::kNotFound, "'{}' holds no checkpoint of a family vidgen serves (wan2.1, hunyuanvideo)", dir);
}

std::unique_ptr<VideoPipeline> LoadPipeline(const std::string& dir, spec::Family family, const PipelineOptions& options) {
  return Family(family).load(dir, options);
}

GenerationRequest FamilyDefaults(spec::Family family) {
  return ToGenerationRequest(spec::FamilyDefaults(family));
}

c10::ScalarType ParseModelDType(const std::string& name) {
  if (name == "fp32" || name == "float32") return c10::ScalarType::Float;
  if (name == "bf16" || name == "bfloat16") return c10::ScalarType::BFloat16;
  if (name == "fp16" || name == "float16") return c10::ScalarType::Half;
  Fail(ErrorCode::kInvalidArgument, "invalid value for 'dtype': '{}', expected fp32, bf16 or fp16", name);
}

}  // namespace vidgen
