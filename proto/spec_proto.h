// The request spec at the protobuf edge: v1::JobSpec <-> spec::JobRequest, and what a v1::Model tells of a model.
#pragma once

#include "spec/spec.h"
#include "vidgen/v1/video_service.pb.h"

namespace vidgen::rpc {

spec::JobRequest FromProto(const v1::JobSpec& proto);
v1::JobSpec ToProto(const spec::JobRequest& request);
// Throws Error(INVALID_ARGUMENT) for an unknown family.
spec::ModelInfo ModelInfoFromProto(const v1::Model& model);

}  // namespace vidgen::rpc
