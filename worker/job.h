// A leased job as the pipeline and the encoder take it.
#pragma once

#include <string>

#include "models/generation.h"
#include "vidgen/v1/video_service.pb.h"
#include "worker/video_encoder.h"

namespace vidgen::worker {

// Throws Error(INVALID_ARGUMENT) naming a field the server let through but this worker cannot take.
GenerationRequest ToGenerationRequest(const v1::JobSpec& spec);
VideoOptions ToVideoOptions(const v1::OutputSettings& output);

// The defaults a checkpoint declares for the jobs it serves: the "vidgen_defaults" object of <dir>/config.json in
// JobSpec's JSON form (the demo model: {"width": 32, "height": 32, "frames": 17, "negative_prompt": " "}). Returns
// false when there are none; throws Error(INVALID_ARGUMENT) naming the file when they do not parse.
bool ReadCheckpointDefaults(const std::string& dir, v1::JobSpec& defaults);

}  // namespace vidgen::worker
