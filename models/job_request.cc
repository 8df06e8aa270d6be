#include "models/job_request.h"

#include <filesystem>

#include <fmt/format.h>

#include "common/error.h"
#include "common/json.h"
#include "models/io/json_config.h"
#include "spec/json.h"

namespace vidgen {

GenerationRequest ToGenerationRequest(const spec::JobRequest& job) {
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
  request.timesteps.assign(job.timesteps.begin(), job.timesteps.end());
  request.cache = spec::CacheConfigOf(job.cache);
  return request;
}

namespace {

// Defaults fill a job's unset fields; which LoRAs it stacks is the job's own choice, never a default.
spec::JobRequest DefaultsFromJson(const nlohmann::json& json, const std::string& where) {
  auto defaults = spec::JobRequestFromJson(json, where);
  if (!defaults.loras.empty()) Fail(ErrorCode::kInvalidArgument, "{}.loras: defaults cannot name LoRAs", where);
  return defaults;
}

}  // namespace

std::optional<spec::JobRequest> ReadCheckpointDefaults(const std::string& dir) {
  const auto path = dir + "/config.json";
  if (!std::filesystem::is_regular_file(path)) return std::nullopt;
  const io::JsonConfig config(path, "checkpoint config");
  const auto it = config.json().find("vidgen_defaults");
  if (it == config.json().end()) return std::nullopt;
  return DefaultsFromJson(*it, fmt::format("'{}': vidgen_defaults", path));
}

std::optional<spec::JobRequest> LoraDefaults(const std::string& name, const lora::Adapter& adapter) {
  const auto it = adapter.metadata.find("vidgen_defaults");
  if (it == adapter.metadata.end()) return std::nullopt;
  const auto where = fmt::format("LoRA '{}': vidgen_defaults", name);
  return DefaultsFromJson(ParseJson(it->second, where), where);  // its size is the bounded header's
}

}  // namespace vidgen
