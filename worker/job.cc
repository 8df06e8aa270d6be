#include "worker/job.h"

#include <torch/torch.h>

#include "common/error.h"
#include "media/image_decoder.h"
#include "proto/spec_proto.h"

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
  auto request = vidgen::ToGenerationRequest(job);
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

}  // namespace vidgen::worker
