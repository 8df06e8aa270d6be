#include "spec/spec.h"

#include <algorithm>
#include <initializer_list>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/error.h"

namespace vidgen::spec {
namespace {

template <typename T>
void Default(T& field, T fallback) {
  if (field == T{}) field = fallback;
}

// The generation fields a request leaves unset, from `defaults`.
void ApplyDefaults(JobRequest& request, const JobRequest& defaults) {
  Default(request.negative_prompt, defaults.negative_prompt);
  Default(request.width, defaults.width);
  Default(request.height, defaults.height);
  Default(request.frames, defaults.frames);
  // A model's own schedule only for a request that names neither steps nor a schedule.
  if (request.timesteps.empty() && request.steps == 0) request.timesteps = defaults.timesteps;
  if (!request.timesteps.empty()) Default(request.steps, static_cast<int>(request.timesteps.size()));
  Default(request.steps, defaults.steps);
  Default(request.guidance, defaults.guidance);
  Default(request.shift, defaults.shift);
  Default(request.solver, defaults.solver);
  Default(request.output.container, defaults.output.container);
  Default(request.output.fps, defaults.output.fps);
}

bool OneOf(std::string_view value, std::initializer_list<std::string_view> choices) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

void CheckText(std::string_view field, const std::string& text, int max_bytes) {
  if (static_cast<int>(text.size()) > max_bytes) {
    Fail(ErrorCode::kInvalidArgument, "spec.{} is {} bytes; the limit is {}", field, text.size(), max_bytes);
  }
  if (!IsUtf8(text)) Fail(ErrorCode::kInvalidArgument, "spec.{} is not valid UTF-8", field);
}

// That the request brings the images the model's task takes, each within the byte limit.
void CheckImages(const JobRequest& request, const ModelInfo& model, const Limits& limits) {
  const int wanted = model.task == Task::kTextToVideo ? 0 : model.task == Task::kImageToVideo ? 1 : 2;
  const std::string_view what = model.task == Task::kTextToVideo    ? "text-to-video"
                                : model.task == Task::kImageToVideo ? "image-to-video"
                                                                    : "first-last-frame-to-video";
  for (const auto& [field, bytes, needed] :
       {std::tuple{"image", &request.image, wanted >= 1}, {"last_image", &request.last_image, wanted >= 2}}) {
    if (!bytes->empty() && !needed) {
      Fail(ErrorCode::kInvalidArgument, "spec.{}: model '{}' is {} and takes {}", field, model.name, what,
           wanted == 0 ? "no image" : "one image");
    }
    if (bytes->empty() && needed) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} is required: model '{}' is {}", field, model.name, what);
    }
    if (static_cast<std::int64_t>(bytes->size()) > limits.max_image_bytes) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} is {} bytes; the limit is {}", field, bytes->size(),
           limits.max_image_bytes);
    }
  }
}

// That every LoRA is one the model's groups advertise, once, at a finite scale.
void CheckLoras(const JobRequest& request, const ModelInfo& model, const Limits& limits) {
  if (static_cast<int>(request.loras.size()) > limits.max_loras) {
    Fail(ErrorCode::kInvalidArgument, "spec.loras has {} entries; the limit is {}", request.loras.size(),
         limits.max_loras);
  }
  for (std::size_t i = 0; i < request.loras.size(); ++i) {
    const auto& lora = request.loras[i];
    if (std::find(model.loras.begin(), model.loras.end(), lora.name) == model.loras.end()) {
      // A status message must stay small: name the first few.
      constexpr std::size_t kNamed = 20;
      const auto named = std::min(model.loras.size(), kNamed);
      const auto has =
          model.loras.empty()
              ? std::string("none")
              : fmt::format("{}{}", fmt::join(model.loras.begin(), model.loras.begin() + named, ", "),
                            model.loras.size() > named ? fmt::format(" and {} more", model.loras.size() - named)
                                                       : std::string());
      Fail(ErrorCode::kInvalidArgument, "spec.loras[{}]: model '{}' has no LoRA '{}' (it has: {})", i, model.name,
           lora.name.substr(0, 200), has);
    }
    if (!(lora.scale >= -10 && lora.scale <= 10)) {
      Fail(ErrorCode::kInvalidArgument, "spec.loras[{}].scale {} must be between -10 and 10", i, lora.scale);
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (request.loras[j].name == lora.name) {
        Fail(ErrorCode::kInvalidArgument, "spec.loras[{}]: LoRA '{}' is named twice", i, lora.name);
      }
    }
  }
}

}  // namespace

std::string_view FamilyName(Family family) {
  return family == Family::kHunyuanVideo ? "hunyuanvideo" : "wan2.1";
}

Family ParseFamily(std::string_view name) {
  if (name == "wan2.1" || name == "wan") return Family::kWan;
  if (name == "hunyuanvideo" || name == "hunyuan") return Family::kHunyuanVideo;
  Fail(ErrorCode::kInvalidArgument, "unknown model family '{}' (wan2.1 or hunyuanvideo)", name);
}

std::string_view TaskName(Task task) {
  switch (task) {
    case Task::kTextToVideo: return "t2v";
    case Task::kImageToVideo: return "i2v";
    case Task::kFirstLastFrame: return "flf2v";
  }
  return "t2v";
}

Task ParseTask(std::string_view name) {
  for (const auto task : {Task::kTextToVideo, Task::kImageToVideo, Task::kFirstLastFrame}) {
    if (name == TaskName(task)) return task;
  }
  Fail(ErrorCode::kInvalidArgument, "unknown model task '{}' (t2v, i2v or flf2v)", name);
}

JobRequest FamilyDefaults(Family family) {
  JobRequest defaults;
  const bool hunyuan = family == Family::kHunyuanVideo;
  defaults.width = hunyuan ? 1280 : 832;
  defaults.height = hunyuan ? 720 : 480;
  defaults.frames = hunyuan ? 129 : 81;
  defaults.steps = 50;
  defaults.guidance = hunyuan ? 6.0 : 5.0;
  defaults.shift = hunyuan ? 7.0 : 5.0;
  defaults.solver = hunyuan ? "euler" : "unipc";
  defaults.cache.preset = "none";
  defaults.output.container = "mp4";
  defaults.output.fps = 16;
  return defaults;
}

cache::CacheConfig CacheConfigOf(const CacheRequest& request) {
  auto config = cache::Preset(request.preset.empty() ? "none" : request.preset, "spec.cache.preset");
  if (request.interval) config.interval = *request.interval;
  if (request.order) config.order = *request.order;
  if (request.warmup) config.warmup = *request.warmup;
  if (request.tail) config.tail = *request.tail;
  if (request.expansion) config.expansion = cache::ParseExpansion(*request.expansion, "spec.cache.expansion");
  if (request.guidance) config.guidance = cache::ParseGuidanceCache(*request.guidance, "spec.cache.guidance");
  if (request.calibrated) config.calibrated = *request.calibrated;
  config.Validate("spec.cache");
  return config;
}

std::string_view MimeType(const OutputRequest& output) {
  return output.container == "webm" ? "video/webm" : "video/mp4";
}

void Normalize(JobRequest& request, const ModelInfo& model, const Limits& limits) {
  if (request.model.empty()) Fail(ErrorCode::kInvalidArgument, "spec.model is required");
  if (request.model != model.name) {
    Fail(ErrorCode::kInternal, "spec.model '{}' was checked against model '{}'", request.model, model.name);
  }
  for (const auto& lora : request.loras) {
    if (const auto it = model.lora_defaults.find(lora.name); it != model.lora_defaults.end()) {
      ApplyDefaults(request, it->second);
    }
  }
  if (model.defaults) ApplyDefaults(request, *model.defaults);
  ApplyDefaults(request, FamilyDefaults(model.family));
  if (request.cache.preset.empty()) request.cache.preset = "none";

  if (request.prompt.empty()) Fail(ErrorCode::kInvalidArgument, "spec.prompt is empty");
  CheckText("prompt", request.prompt, limits.max_prompt_bytes);
  CheckText("negative_prompt", request.negative_prompt, limits.max_prompt_bytes);
  CheckImages(request, model, limits);
  CheckLoras(request, model, limits);
  const int side = model.side_multiple;
  for (const auto& [name, value] : {std::pair{"width", request.width}, {"height", request.height}}) {
    if (value < side || value % side != 0 || value > limits.max_side) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} {} must be a multiple of {} between {} and {}", name, value, side,
           side, limits.max_side);
    }
  }
  if (request.frames < 1 || request.frames % 4 != 1 || request.frames > limits.max_frames) {
    Fail(ErrorCode::kInvalidArgument, "spec.frames {} must be 4k+1 (1, 5, 9, ...) and at most {}", request.frames,
         limits.max_frames);
  }
  const std::int64_t pixel_frames = std::int64_t{request.width} * request.height * request.frames;
  if (pixel_frames > limits.max_pixel_frames) {
    Fail(ErrorCode::kInvalidArgument, "spec.width × height × frames = {}×{}×{} exceeds this server's limit of {}",
         request.width, request.height, request.frames, limits.max_pixel_frames);
  }
  if (request.steps < 1 || request.steps > limits.max_steps) {
    Fail(ErrorCode::kInvalidArgument, "spec.steps {} must be between 1 and {}", request.steps, limits.max_steps);
  }
  if (!request.timesteps.empty()) {
    const auto& t = request.timesteps;
    if (static_cast<int>(t.size()) != request.steps) {
      Fail(ErrorCode::kInvalidArgument, "spec.timesteps has {} values for {} steps", t.size(), request.steps);
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t[i] < 1 || t[i] > 1000 || (i > 0 && t[i] >= t[i - 1])) {
        Fail(ErrorCode::kInvalidArgument, "spec.timesteps [{}] must descend within [1, 1000]", fmt::join(t, ", "));
      }
    }
  }
  // HunyuanVideo's guidance is embedded in the model: 0 would mean nothing there.
  const double min_guidance = model.family == Family::kHunyuanVideo ? 1e-3 : 0.0;
  if (!(request.guidance >= min_guidance && request.guidance <= 50)) {
    Fail(ErrorCode::kInvalidArgument, "spec.guidance {} must be between {} and 50", request.guidance, min_guidance);
  }
  if (!(request.shift > 0 && request.shift <= 100)) {
    Fail(ErrorCode::kInvalidArgument, "spec.shift {} must be above 0 and at most 100", request.shift);
  }
  if (request.seed < 0) Fail(ErrorCode::kInvalidArgument, "spec.seed {} must not be negative", request.seed);
  if (std::find(kSolvers.begin(), kSolvers.end(), request.solver) == kSolvers.end()) {
    Fail(ErrorCode::kInvalidArgument, "spec.solver '{}' is not one of {}", request.solver, fmt::join(kSolvers, ", "));
  }
  const auto cache = CacheConfigOf(request.cache);
  if (cache.enabled() && (cache.warmup > request.steps || cache.tail > request.steps)) {
    Fail(ErrorCode::kInvalidArgument, "spec.cache.warmup {} and tail {} must not exceed the {} steps", cache.warmup,
         cache.tail, request.steps);
  }

  for (const auto& [name, degree] : {std::pair{"ulysses", request.parallel.ulysses}, {"ring", request.parallel.ring}}) {
    if (degree < 0 || degree > 64) {
      Fail(ErrorCode::kInvalidArgument, "spec.parallel.{} {} must be between 0 (any) and 64", name, degree);
    }
  }

  auto& output = request.output;
  if (!OneOf(output.container, {"mp4", "webm"})) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.container '{}' is not mp4 or webm", output.container);
  }
  if (output.codec.empty()) output.codec = output.container == "mp4" ? "h264" : "vp9";
  const bool fits =
      output.container == "mp4" ? OneOf(output.codec, {"h264", "av1"}) : OneOf(output.codec, {"vp9", "av1"});
  if (!fits) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.codec '{}' does not go in {} (mp4: h264, av1; webm: vp9, av1)",
         output.codec, output.container);
  }
  if (output.fps < 1 || output.fps > 120) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.fps {} must be between 1 and 120", output.fps);
  }
  if (output.quality < 0 || output.quality > 63) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.quality {} must be between 0 (default) and 63", output.quality);
  }
}

bool IsUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2, code = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3, code = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4, code = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

}  // namespace vidgen::spec
