#include "worker/job.h"

#include <filesystem>

#include <torch/torch.h>

#include "common/error.h"
#include "common/json.h"
#include "media/image_decoder.h"
#include "models/io/json_config.h"
#include "proto/spec_proto.h"
#include "spec/json.h"

namespace vidgen::worker {
namespace {

// A job's image as the pipeline takes it: [H, W, 3] uint8; none when the job has none.
at::Tensor ImageOf(const std::string& bytes, std::string_view field) {
  if (bytes.empty()) return {};
  auto image = media::DecodeImage(bytes, spec::Limits{}.max_image_pixels, field);
  return torch::from_blob(image.rgb.data(), {image.height, image.width, 3}, torch::kUInt8).clone();
}

}  // namespace

GenerationRequest ToGenerationRequest(const v1::JobSpec& spec, const LoraLibrary& loras) {
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
  request.timesteps.assign(job.timesteps.begin(), job.timesteps.end());
  request.cache = spec::CacheConfigOf(job.cache);
  request.image = ImageOf(job.image, "spec.image");
  request.last_image = ImageOf(job.last_image, "spec.last_image");
  for (std::size_t i = 0; i < job.loras.size(); ++i) {
    const auto it = loras.find(job.loras[i].name);
    if (it == loras.end()) {
      Fail(ErrorCode::kInvalidArgument, "spec.loras[{}]: this worker group has no LoRA '{}'", i,
           job.loras[i].name.substr(0, 200));
    }
    request.loras.emplace_back(&it->second, job.loras[i].scale);
  }
  return request;
}

media::VideoOptions ToVideoOptions(const v1::OutputSettings& output) {
  media::VideoOptions options;
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

std::optional<spec::JobRequest> LoraDefaults(const std::string& name, const lora::Adapter& adapter) {
  const auto it = adapter.metadata.find("vidgen_defaults");
  if (it == adapter.metadata.end()) return std::nullopt;
  const auto where = fmt::format("LoRA '{}': vidgen_defaults", name);
  return spec::JobRequestFromJson(ParseJson(it->second, where), where);  // its size is the bounded header's
}

}  // namespace vidgen::worker
