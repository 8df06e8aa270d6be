#include "models/pipelines.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "models/hunyuan/pipeline.h"
#include "models/wan/pipeline.h"

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
  GenerationRequest request;
  if (family == ModelFamily::kHunyuanVideo) {
    request.width = 1280;
    request.height = 720;
    request.frames = 129;
    request.guidance_scale = 6.0;
    request.shift = 7.0;
    request.solver = schedulers::Solver::kEuler;
  }
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
