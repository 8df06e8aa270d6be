#include "server/spec.h"

#include <algorithm>

#include <fmt/ranges.h>

#include "common/error.h"
#include "media/image_decoder.h"
#include "proto/spec_proto.h"

namespace vidgen::server {

v1::JobSpec NormalizeSpec(const v1::JobSpec& spec, const spec::Limits& limits, const v1::ListModelsResponse& models) {
  if (spec.model().empty()) Fail(ErrorCode::kInvalidArgument, "spec.model is required");
  const auto model = std::find_if(models.models().begin(), models.models().end(),
                                  [&](const v1::Model& m) { return m.name() == spec.model(); });
  if (model == models.models().end()) {
    std::vector<std::string> names;
    for (const auto& m : models.models()) names.push_back(m.name());
    Fail(ErrorCode::kNotFound, "model '{}' is not served here (served: {})", spec.model(),
         names.empty() ? "none yet" : fmt::format("{}", fmt::join(names, ", ")));
  }
  auto request = rpc::FromProto(spec);
  spec::Normalize(request, rpc::ModelInfoFromProto(*model), limits);
  // Decoded here only to refuse a bad image at submit; the worker decodes it again.
  if (!request.image.empty()) media::DecodeImage(request.image, limits.max_image_pixels, "spec.image");
  if (!request.last_image.empty()) media::DecodeImage(request.last_image, limits.max_image_pixels, "spec.last_image");
  return rpc::ToProto(request);
}

}  // namespace vidgen::server
