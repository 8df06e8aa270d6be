// What jobs of a model need in memory on this process's device, measured: a few small generations (one step each),
// each one's peak above what the process holds once loaded read at the end of denoising and after decoding, fitted
// into a spec::MemoryProfile the server evaluates for any job (spec/memory.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "models/generation.h"
#include "spec/memory.h"

namespace vidgen {

// The probe jobs: three sizes of 2 to 8 side multiples and 5 or 17 frames (tokens, frame size and frames apart), one
// step, no cache, the model's defaults otherwise (its guidance, so that CFG's passes are measured as jobs run them);
// normalized. A model that takes images gets `image` (PNG or JPEG bytes of a square, so that each probe's video is
// the square of its area) as the first frame, and as the last frame too for first-last-frame; text-to-video, none.
std::vector<spec::JobRequest> MemoryProbeJobs(const spec::ModelInfo& model, const std::string& image);

// Runs each probe job through `generate` (which passes the callbacks on) on `device` and fits the profile; the cache
// terms come from `pipeline`'s footprint per token. Under sequence parallelism every rank must run the same probes.
using ProbeGenerate = std::function<GenerationResult(const spec::JobRequest&, const GenerationCallbacks&)>;
spec::MemoryProfile ProbeMemory(const VideoPipeline& pipeline, const spec::ModelInfo& model, const std::string& image,
                                const c10::Device& device, std::int64_t device_bytes, const ProbeGenerate& generate);

}  // namespace vidgen
