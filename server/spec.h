// JobSpec defaults and validation at the door: every field a client can get wrong is named in an INVALID_ARGUMENT
// (or NOT_FOUND for a model nobody serves), before anything is queued.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vidgen/v1/video_service.pb.h"
#include "vidgen/v1/worker_service.pb.h"

namespace vidgen::server {

struct SpecLimits {
  int max_prompt_bytes = 4096;
  std::int64_t max_pixel_frames = std::int64_t{1280} * 720 * 129;  // width × height × frames
  int max_side = 2048;
  int max_frames = 257;
  int max_steps = 200;
};

// Fills unset fields with the model's own defaults (Model.defaults), then the family's (wan2.1: 832×480, 81
// frames, guidance 5, shift 5, unipc; hunyuanvideo: 1280×720, 129 frames, embedded guidance 6, shift 7, euler) and
// checks every field; throws vidgen::Error naming the first bad one. `models`: what worker groups serve or the
// configuration announces.
void NormalizeSpec(v1::JobSpec& spec, const SpecLimits& limits, const v1::ListModelsResponse& models);

// The MIME type of a spec's container.
std::string MimeType(const v1::OutputSettings& output);

}  // namespace vidgen::server
