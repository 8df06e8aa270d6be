#include "worker/job.h"

#include <filesystem>

#include <google/protobuf/util/json_util.h>

#include "common/error.h"
#include "models/io/json_config.h"

namespace vidgen::worker {

GenerationRequest ToGenerationRequest(const v1::JobSpec& spec) {
  GenerationRequest request;
  request.prompt = spec.prompt();
  request.negative_prompt = spec.negative_prompt();
  request.width = spec.width();
  request.height = spec.height();
  request.frames = spec.frames();
  request.steps = spec.steps();
  request.guidance_scale = spec.guidance();
  request.shift = spec.shift();
  request.seed = static_cast<std::uint64_t>(spec.seed());
  request.solver = schedulers::ParseSolver(spec.solver());
  const auto& cache = spec.cache();
  request.cache = cache::Preset(cache.preset().empty() ? "none" : cache.preset());
  if (cache.has_interval()) request.cache.interval = cache.interval();
  if (cache.has_order()) request.cache.order = cache.order();
  if (cache.has_warmup()) request.cache.warmup = cache.warmup();
  if (cache.has_tail()) request.cache.tail = cache.tail();
  request.cache.Validate();
  return request;
}

VideoOptions ToVideoOptions(const v1::OutputSettings& output) {
  VideoOptions options;
  if (!output.container().empty()) options.container = output.container();
  if (!output.codec().empty()) options.codec = output.codec();
  if (output.fps() > 0) options.fps = output.fps();
  options.quality = output.quality();
  return options;
}

bool ReadCheckpointDefaults(const std::string& dir, v1::JobSpec& defaults) {
  const auto path = dir + "/config.json";
  if (!std::filesystem::is_regular_file(path)) return false;
  const io::JsonConfig config(path, "checkpoint config");
  const auto it = config.json().find("vidgen_defaults");
  if (it == config.json().end()) return false;
  const auto status = google::protobuf::util::JsonStringToMessage(it->dump(), &defaults);
  if (!status.ok()) {
    Fail(ErrorCode::kInvalidArgument, "'{}': vidgen_defaults is not a JobSpec: {}", path, status.ToString());
  }
  return true;
}

}  // namespace vidgen::worker
