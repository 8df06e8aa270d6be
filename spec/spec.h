// The request of a video job, as the server accepts it and the worker runs it: field names, ranges, presets,
// solvers, per-family and per-model defaults. LibTorch-free and protobuf-free; the server and the worker link the
// same rules, so any job the server accepts is a job the worker can run.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/config.h"

namespace vidgen::spec {

enum class Family { kWan, kHunyuanVideo };

// "wan2.1" / "hunyuanvideo", the names the service and its clients use.
std::string_view FamilyName(Family family);
// Also accepts "wan" and "hunyuan"; throws Error(INVALID_ARGUMENT) otherwise.
Family ParseFamily(std::string_view name);

// What a model makes a video from: a prompt, a prompt and an image (its first frame), or a prompt and the first
// and last frames.
enum class Task { kTextToVideo, kImageToVideo, kFirstLastFrame };

// "t2v", "i2v", "flf2v": the names of the released configs.
std::string_view TaskName(Task task);
// Throws Error(INVALID_ARGUMENT) on another name.
Task ParseTask(std::string_view name);

// The solvers a request may name; the core's schedulers parse exactly these (tested).
inline constexpr std::array<std::string_view, 3> kSolvers = {"unipc", "dpm++", "euler"};

struct CacheRequest {
  std::string preset;  // cache::Preset's names; empty: none
  std::optional<int> interval, order, warmup, tail;
  std::optional<std::string> expansion;  // cache::ParseExpansion's names
  std::optional<std::string> guidance;   // cache::ParseGuidanceCache's names
  std::optional<bool> calibrated;
  bool operator==(const CacheRequest&) const = default;
};

struct ParallelRequest {
  int ulysses = 0, ring = 0;  // 0: any
  bool cfg_parallel = false;
  bool operator==(const ParallelRequest&) const = default;
};

struct OutputRequest {
  std::string container, codec;
  int fps = 0, quality = 0;
  bool operator==(const OutputRequest&) const = default;
};

// A LoRA the job's model advertises, added to its weights at `scale`.
struct LoraRequest {
  std::string name;
  double scale = 1.0;
  bool operator==(const LoraRequest&) const = default;
};

// Zero and empty fields are unset: Normalize gives them the model's or the family's values.
struct JobRequest {
  std::string model, prompt, negative_prompt;
  int width = 0, height = 0, frames = 0, steps = 0;
  double guidance = 0, shift = 0;
  std::int64_t seed = 0;
  std::string solver;
  CacheRequest cache;
  ParallelRequest parallel;
  OutputRequest output;
  // An image-to-video model's first frame and a first-last-frame model's last one: PNG or JPEG bytes. Such a
  // model's width × height is the video's area, its sides following the first image's aspect ratio.
  std::string image, last_image;
  std::vector<LoraRequest> loras{};  // stacked in order
  // A given schedule (step-distilled models): training timesteps, descending in [1, 1000]; steps is their count.
  std::vector<int> timesteps{};

  bool operator==(const JobRequest&) const = default;
};

// What the server knows of a model from the groups that serve it (or its configuration).
struct ModelInfo {
  std::string name;
  Family family = Family::kWan;
  // The checkpoint's own values for unset generation fields (size, frames, steps, guidance, shift, solver,
  // negative prompt), applied before the family's.
  std::optional<JobRequest> defaults;
  int side_multiple = 16;  // width and height: multiples of the VAE's stride × the DiT's patch
  Task task = Task::kTextToVideo;
  std::vector<std::string> loras{};  // the LoRAs its groups can apply
  // A LoRA's own values for unset fields of jobs that name it, applied before the model's, in the job's order.
  std::map<std::string, JobRequest> lora_defaults{};
};

// The server's limits on what one job may ask for.
struct Limits {
  int max_prompt_bytes = 4096;
  std::int64_t max_pixel_frames = std::int64_t{1280} * 720 * 129;  // width × height × frames
  int max_side = 2048;
  int max_frames = 257;
  int max_steps = 200;
  std::int64_t max_image_bytes = 16 << 20;                    // each of image and last_image
  std::int64_t max_image_pixels = std::int64_t{4096} * 4096;  // width × height of each
  int max_loras = 8;
};

// The family's values for unset fields: Wan2.1 832×480, 81 frames, 50 steps, guidance 5, shift 5, unipc;
// HunyuanVideo 1280×720, 129 frames, 50 steps, embedded guidance 6, shift 7, euler. Both: mp4/h264 at 16 fps.
JobRequest FamilyDefaults(Family family);

// Fills unset fields (its LoRAs' defaults, the model's own, then the family's) and checks every field (images: that the model's
// task takes them and their byte counts; decoding them is the caller's); throws Error(INVALID_ARGUMENT) naming the
// first bad one ("spec.width ...").
void Normalize(JobRequest& request, const ModelInfo& model, const Limits& limits);

// The cache configuration a request names: its preset, then its overrides. Throws Error(INVALID_ARGUMENT) naming
// the field ("spec.cache.warmup ...").
cache::CacheConfig CacheConfigOf(const CacheRequest& cache);

// The MIME type of a normalized request's container.
std::string_view MimeType(const OutputRequest& output);

// True when `text` is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsUtf8(std::string_view text);

}  // namespace vidgen::spec
