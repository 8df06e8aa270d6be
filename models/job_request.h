// A job's request (spec/) as a pipeline takes it, and the defaults a checkpoint or a LoRA declares for the jobs
// they serve: what the worker and vidgen-generate share, so that both run the same request the same way.
#pragma once

#include <optional>
#include <string>

#include "models/generation.h"
#include "models/lora/adapter.h"
#include "spec/spec.h"

namespace vidgen {

// The generation fields of a normalized request. Its images and LoRAs are the caller's to fill: they are decoded and
// looked up where the request came from.
GenerationRequest ToGenerationRequest(const spec::JobRequest& job);

// The defaults a checkpoint declares for the jobs it serves: the "vidgen_defaults" object of <dir>/config.json with
// the API's field names (the demo model: {"width": 32, "height": 32, "frames": 17, "negative_prompt": " "}); none
// when it has none. Throws Error(INVALID_ARGUMENT) naming the file and field when they do not parse.
std::optional<spec::JobRequest> ReadCheckpointDefaults(const std::string& dir);
// What a LoRA declares for the jobs that name it: the JSON object under "vidgen_defaults" in its file's metadata
// (a step-distilled LoRA: {"timesteps": [1000, 750, 500, 250], "solver": "euler", "guidance": 1}); none when it has
// none. Throws Error(INVALID_ARGUMENT) naming the LoRA when it does not parse.
std::optional<spec::JobRequest> LoraDefaults(const std::string& name, const lora::Adapter& adapter);

}  // namespace vidgen
