#include "models/pipelines.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "models/hunyuan/pipeline.h"
#include "models/wan/pipeline.h"
#include "spec/spec.h"

namespace vidgen {

std::string FamilyName(ModelFamily family) {
  return family == ModelFamily::kHunyuanVideo ? "hunyuanvideo" : "wan2.1";
}

ModelFamily ParseFamily(const std::string& name) {
  if (name == "wan2.1" || name == "wan") return ModelFamily::kWan;
  if (name == "hunyuanvideo" || name == "hunyuan") return ModelFamily::kHunyuanVideo;
  Fail(ErrorCode::kInvalidArgument, "unknown model family '{}' (wan2.1 or hunyuanvideo)", name);
}

ModelFamily DetectFamily(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root = dir;
  if (fs::exists(root / "transformers" / "mp_rank_00_model_states.pt") || fs::is_directory(root / "hunyuan-video-t2v-720p")) {
    return ModelFamily::kHunyuanVideo;
  }
  // diffusers: HunyuanVideoTransformer3DModel in transformer/config.json
  std::ifstream config(root / "transformer" / "config.json");
  const std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  return text.find("HunyuanVideo") != std::string::npos ? ModelFamily::kHunyuanVideo : ModelFamily::kWan;
}

GenerationRequest FamilyDefaults(ModelFamily family) {
  const auto defaults =
      spec::FamilyDefaults(family == ModelFamily::kHunyuanVideo ? spec::Family::kHunyuanVideo : spec::Family::kWan);
  GenerationRequest request;
  request.width = defaults.width;
  request.height = defaults.height;
  request.frames = defaults.frames;
  request.steps = defaults.steps;
  request.guidance_scale = defaults.guidance;
  request.shift = defaults.shift;
  request.solver = schedulers::ParseSolver(defaults.solver);
  return request;
}

std::unique_ptr<VideoPipeline> LoadPipeline(const std::string& dir, ModelFamily family,
                                            const PipelineOptions& options) {
  if (family == ModelFamily::kHunyuanVideo) {
    hunyuan::HunyuanLoadOptions load;
    load.dtype = options.dtype;
    load.device = options.device;
    load.world = options.world;
    return hunyuan::HunyuanPipeline::Load(dir, load);
  }
  wan::WanLoadOptions load;
  load.dtype = options.dtype;
  load.device = options.device;
  load.world = options.world;
  return wan::WanPipeline::Load(dir, load);
}

}  // namespace vidgen
