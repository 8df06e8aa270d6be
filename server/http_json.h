// The HTTP API's JSON: job objects, models, submit bodies and errors, mapped to and from the service's messages.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "vidgen/v1/video_service.pb.h"

namespace vidgen::server {

// A job as the HTTP API shows it: {"id", "object": "video", "model", "status" (queued, running, succeeded, failed,
// cancelled), "stage", "step", "total_steps", "progress" (0 to 1), "eta_seconds", "queue_position", "attempts",
// "created_at", "started_at", "finished_at" (Unix seconds, null until then), "error" (null or {"message"}), "spec",
// "video" (null until it succeeded, then {"bytes", "sha256", "mime_type", "url"})}.
nlohmann::json JobJson(const v1::Job& job);
nlohmann::json ModelsJson(const v1::ListModelsResponse& models);

// A POST /v1/videos body: the request spec's fields (spec/json.h, "loras" among them) and "size": "WxH", "seconds"
// (with "fps": frames at the model's 4k+1), "priority", "image" and "last_image" (base64, or a data URL of it). Throws
// Error(INVALID_ARGUMENT) naming the field.
v1::SubmitJobRequest SubmitRequestFromJson(const std::string& body, const std::string& idempotency_key);
// "queued", ... -> the state; INVALID_ARGUMENT naming `field` otherwise.
v1::JobState StateFromName(const std::string& name, const std::string& field);

// The HTTP status of an error (400, 401, 403, 404, 409, 413, 416, 429, 500, 501, 503, 504).
int HttpStatus(const Error& error);
// {"error": {"code": "invalid_argument", "message": ..., "field": "width" or null}}; internal errors lose their
// details here (the log has them).
nlohmann::json ErrorJson(const Error& error);

}  // namespace vidgen::server
