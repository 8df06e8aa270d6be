// A leased job as the pipeline and the encoder take it.
#pragma once

#include <optional>
#include <string>

#include "media/video_encoder.h"
#include "models/generation.h"
#include "spec/spec.h"
#include "vidgen/v1/video_service.pb.h"

namespace vidgen::worker {

// Throws Error(INVALID_ARGUMENT) naming a field the server let through but this worker cannot take.
GenerationRequest ToGenerationRequest(const v1::JobSpec& spec);
media::VideoOptions ToVideoOptions(const v1::OutputSettings& output);

// The defaults a checkpoint declares for the jobs it serves: the "vidgen_defaults" object of <dir>/config.json with
// the API's field names (the demo model: {"width": 32, "height": 32, "frames": 17, "negative_prompt": " "}); none
// when it has none. Throws Error(INVALID_ARGUMENT) naming the file and field when they do not parse.
std::optional<spec::JobRequest> ReadCheckpointDefaults(const std::string& dir);

}  // namespace vidgen::worker
