// A leased job as the pipeline and the encoder take it.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "media/video_encoder.h"
#include "models/generation.h"
#include "models/job_request.h"
#include "models/lora/adapter.h"
#include "spec/spec.h"
#include "vidgen/v1/video_service.pb.h"

namespace vidgen::worker {

// A group's LoRAs by the names jobs use.
using LoraLibrary = std::map<std::string, lora::Adapter>;

// Throws Error(INVALID_ARGUMENT) naming a field the server let through but this worker cannot take (a LoRA it does
// not have, an image that does not decode).
GenerationRequest ToGenerationRequest(const v1::JobSpec& spec, const LoraLibrary& loras);
media::VideoOptions ToVideoOptions(const v1::OutputSettings& output);

}  // namespace vidgen::worker
