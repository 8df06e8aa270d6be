// Job specs at the door: the request spec's rules (spec/) over what this server knows of its models, so every field
// a client can get wrong is named in an INVALID_ARGUMENT (NOT_FOUND for a model nobody serves) before anything is
// queued.
#pragma once

#include "spec/spec.h"
#include "vidgen/v1/video_service.pb.h"

namespace vidgen::server {

// The spec with its unset fields filled (the model's own defaults, then its family's), or an Error naming the first
// bad field. `models`: what worker groups serve or the configuration announces.
v1::JobSpec NormalizeSpec(const v1::JobSpec& spec, const spec::Limits& limits, const v1::ListModelsResponse& models);

}  // namespace vidgen::server
