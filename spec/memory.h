// What a job needs in memory on one rank of a group, from what the group measured on its own device: the server
// admits a job at submit only when some group of its model could hold it, and leases it only to such a group.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "spec/spec.h"

namespace vidgen::spec {

// One rank's memory as a group measured it (vidgen-worker probes it at start; see worker/memory_probe.h).
struct MemoryProfile {
  std::int64_t device_bytes = 0;    // what one rank may use
  std::int64_t resident_bytes = 0;  // held once loaded: weights and runtime
  // Above resident while encoding the text and denoising, a + b·n + c·n² of the job's video tokens n on this
  // group's layout (the quadratic term is attention's score buffers where no fused kernel runs).
  double denoise_base = 0, denoise_per_token = 0, denoise_per_token_squared = 0;
  std::int64_t denoise_squared_bound = 0;  // the most the quadratic term can reach (a bounded kernel); 0: none
  // Above resident while decoding, a + b·p + d·p·f for frames of p pixels, f of them: the decoder works chunk by
  // chunk in time (b), the video it returns and its conversion to frames grow with all of it (d).
  double decode_base = 0, decode_per_pixel = 0, decode_per_pixel_frame = 0;
  // The feature cache per stream and per token of a rank's shard: TaylorSeer's branches, and lite's output.
  int cache_branches = 0;
  std::int64_t cache_values_per_token = 0;  // over all branches
  std::int64_t lite_values_per_token = 0;
};

// Throws Error(INVALID_ARGUMENT) naming the field of a profile with a negative, non-finite or absurd value (what a
// group sends is checked like a client's request).
void Validate(const MemoryProfile& profile);

// A job's peak on one rank, by part; bytes.
struct MemoryEstimate {
  std::int64_t resident = 0, denoise = 0, cache = 0, decode = 0;
  // The cache lives through denoising and is gone before decoding.
  std::int64_t peak() const;
  // "1.2 GiB (resident 1.0 GiB, denoising 120.0 MiB + cache 12.0 MiB, decoding 80.0 MiB)".
  std::string Describe() const;
};

// The video tokens of a normalized job: latent frames ((frames − 1) / 4 + 1) × the sides over the side multiple.
std::int64_t VideoTokens(const JobRequest& job, const ModelInfo& model);

// A normalized job's peak on one rank of a group with `layout` (degrees ≥ 1) and `profile`.
MemoryEstimate EstimateJobMemory(const MemoryProfile& profile, const ParallelRequest& layout, const JobRequest& job,
                                 const ModelInfo& model);

// One probe generation: its size and the peaks above resident it reached.
struct MemoryProbe {
  std::int64_t tokens = 0, pixels = 0, frames = 0;
  std::int64_t denoise_bytes = 0, decode_bytes = 0;
};

// Fits the profile's denoise and decode terms exactly through three probes of distinct token counts and distinct
// frame sizes: where a fit would bend down (a negative quadratic or per-frame term), the line through the two
// largest instead. Slopes never go below zero, so an estimate never shrinks as a job grows.
void FitProfile(MemoryProfile& profile, std::span<const MemoryProbe> probes);

}  // namespace vidgen::spec
