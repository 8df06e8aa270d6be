// The request spec at the protobuf edge: v1::JobSpec <-> spec::JobRequest, and what a v1::Model tells of a model.
#pragma once

#include "spec/memory.h"
#include "spec/spec.h"
#include "vidgen/v1/video_service.pb.h"
#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::rpc {

spec::JobRequest FromProto(const v1::JobSpec& proto);
v1::JobSpec ToProto(const spec::JobRequest& request);
// Throws Error(INVALID_ARGUMENT) for an unknown family.
spec::ModelInfo ModelInfoFromProto(const v1::Model& model);
// Unchecked: spec::Validate checks a profile a group sends.
spec::MemoryProfile FromProto(const v1::MemoryProfile& proto);
v1::MemoryProfile ToProto(const spec::MemoryProfile& profile);

}  // namespace vidgen::rpc
