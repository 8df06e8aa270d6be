// A leased job as the pipeline and the encoder take it.
#pragma once

#include "models/generation.h"
#include "vidgen/v1/video_service.pb.h"
#include "worker/video_encoder.h"

namespace vidgen::worker {

// Throws Error(INVALID_ARGUMENT) naming a field the server let through but this worker cannot take.
GenerationRequest ToGenerationRequest(const v1::JobSpec& spec);
VideoOptions ToVideoOptions(const v1::OutputSettings& output);

}  // namespace vidgen::worker
