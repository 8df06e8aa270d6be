// A leased job as the pipeline and the encoder take it.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "media/video_encoder.h"
#include "models/generation.h"
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

// The defaults a checkpoint declares for the jobs it serves: the "vidgen_defaults" object of <dir>/config.json with
// the API's field names (the demo model: {"width": 32, "height": 32, "frames": 17, "negative_prompt": " "}); none
// when it has none. Throws Error(INVALID_ARGUMENT) naming the file and field when they do not parse.
std::optional<spec::JobRequest> ReadCheckpointDefaults(const std::string& dir);
// What a LoRA declares for the jobs that name it: the JSON object under "vidgen_defaults" in its file's metadata
// (a step-distilled LoRA: {"timesteps": [1000, 750, 500, 250], "solver": "euler", "guidance": 1}); none when it has
// none. Throws Error(INVALID_ARGUMENT) naming the LoRA when it does not parse.
std::optional<spec::JobRequest> LoraDefaults(const std::string& name, const lora::Adapter& adapter);

}  // namespace vidgen::worker
