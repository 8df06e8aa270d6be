// JobRequest as JSON, with the API's field names ("width", "negative_prompt", "cache": {"preset", ...}): the
// "vidgen_defaults" a checkpoint declares in its config.json, and the HTTP API's bodies.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "spec/spec.h"

namespace vidgen::spec {

// Unset fields are left out.
nlohmann::json ToJson(const JobRequest& request);
// Reads the fields present; throws Error(INVALID_ARGUMENT) naming `what` and the field for an unknown field or a
// value of the wrong type.
JobRequest JobRequestFromJson(const nlohmann::json& json, std::string_view what);

}  // namespace vidgen::spec
