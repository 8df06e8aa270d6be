#include "worker/job.h"

#include <filesystem>

#include "common/error.h"
#include "models/io/json_config.h"
#include "proto/spec_proto.h"
#include "spec/json.h"

namespace vidgen::worker {

GenerationRequest ToGenerationRequest(const v1::JobSpec& spec) {
  const auto job = rpc::FromProto(spec);
  GenerationRequest request;
  request.prompt = job.prompt;
  request.negative_prompt = job.negative_prompt;
  request.width = job.width;
  request.height = job.height;
  request.frames = job.frames;
  request.steps = job.steps;
  request.guidance_scale = job.guidance;
  request.shift = job.shift;
  request.seed = static_cast<std::uint64_t>(job.seed);
  request.solver = schedulers::ParseSolver(job.solver);
  request.cache = spec::CacheConfigOf(job.cache);
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

std::optional<spec::JobRequest> ReadCheckpointDefaults(const std::string& dir) {
  const auto path = dir + "/config.json";
  if (!std::filesystem::is_regular_file(path)) return std::nullopt;
  const io::JsonConfig config(path, "checkpoint config");
  const auto it = config.json().find("vidgen_defaults");
  if (it == config.json().end()) return std::nullopt;
  return spec::JobRequestFromJson(*it, fmt::format("'{}': vidgen_defaults", path));
}

}  // namespace vidgen::worker
