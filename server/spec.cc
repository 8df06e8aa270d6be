#include "server/spec.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/error.h"

namespace vidgen::server {
namespace {

template <typename T>
void Default(T value, T fallback, void (v1::JobSpec::*set)(T), v1::JobSpec& spec) {
  if (value == T{}) (spec.*set)(fallback);
}

// The generation fields a job leaves unset, from the model's own defaults.
void ApplyModelDefaults(const v1::JobSpec& defaults, v1::JobSpec& spec) {
  if (spec.negative_prompt().empty()) spec.set_negative_prompt(defaults.negative_prompt());
  Default(spec.width(), defaults.width(), &v1::JobSpec::set_width, spec);
  Default(spec.height(), defaults.height(), &v1::JobSpec::set_height, spec);
  Default(spec.frames(), defaults.frames(), &v1::JobSpec::set_frames, spec);
  Default(spec.steps(), defaults.steps(), &v1::JobSpec::set_steps, spec);
  Default(spec.guidance(), defaults.guidance(), &v1::JobSpec::set_guidance, spec);
  Default(spec.shift(), defaults.shift(), &v1::JobSpec::set_shift, spec);
  if (spec.solver().empty()) spec.set_solver(defaults.solver());
}

bool OneOf(const std::string& value, std::initializer_list<const char*> choices) {
  return std::any_of(choices.begin(), choices.end(), [&](const char* choice) { return value == choice; });
}

}  // namespace

void NormalizeSpec(v1::JobSpec& spec, const SpecLimits& limits, const v1::ListModelsResponse& models) {
  if (spec.model().empty()) Fail(ErrorCode::kInvalidArgument, "spec.model is required");
  const auto model = std::find_if(models.models().begin(), models.models().end(),
                                  [&](const v1::Model& m) { return m.name() == spec.model(); });
  if (model == models.models().end()) {
    std::vector<std::string> names;
    for (const auto& m : models.models()) names.push_back(m.name());
    Fail(ErrorCode::kNotFound, "model '{}' is not served here (served: {})", spec.model(),
         names.empty() ? "none yet" : fmt::format("{}", fmt::join(names, ", ")));
  }
  if (model->has_defaults()) ApplyModelDefaults(model->defaults(), spec);
  const bool hunyuan = model->family() == "hunyuanvideo";
  if (spec.prompt().empty()) Fail(ErrorCode::kInvalidArgument, "spec.prompt is empty");
  for (const auto& [name, text] : {std::pair{"prompt", &spec.prompt()}, {"negative_prompt", &spec.negative_prompt()}}) {
    if (static_cast<int>(text->size()) > limits.max_prompt_bytes) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} is {} bytes; the limit is {}", name, text->size(),
           limits.max_prompt_bytes);
    }
  }

  Default(spec.width(), hunyuan ? 1280 : 832, &v1::JobSpec::set_width, spec);
  Default(spec.height(), hunyuan ? 720 : 480, &v1::JobSpec::set_height, spec);
  Default(spec.frames(), hunyuan ? 129 : 81, &v1::JobSpec::set_frames, spec);
  Default(spec.steps(), 50, &v1::JobSpec::set_steps, spec);
  Default(spec.guidance(), hunyuan ? 6.0 : 5.0, &v1::JobSpec::set_guidance, spec);
  Default(spec.shift(), hunyuan ? 7.0 : 5.0, &v1::JobSpec::set_shift, spec);
  if (spec.solver().empty()) spec.set_solver(hunyuan ? "euler" : "unipc");
  for (const auto& [name, side] : {std::pair{"width", spec.width()}, {"height", spec.height()}}) {
    if (side < 16 || side % 16 != 0 || side > limits.max_side) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} {} must be a multiple of 16 between 16 and {}", name, side,
           limits.max_side);
    }
  }
  if (spec.frames() < 1 || spec.frames() % 4 != 1 || spec.frames() > limits.max_frames) {
    Fail(ErrorCode::kInvalidArgument, "spec.frames {} must be 4k+1 (1, 5, 9, ...) and at most {}", spec.frames(),
         limits.max_frames);
  }
  const std::int64_t pixel_frames = std::int64_t{spec.width()} * spec.height() * spec.frames();
  if (pixel_frames > limits.max_pixel_frames) {
    Fail(ErrorCode::kInvalidArgument, "spec.width × height × frames = {}×{}×{} exceeds this server's limit of {}",
         spec.width(), spec.height(), spec.frames(), limits.max_pixel_frames);
  }
  if (spec.steps() < 1 || spec.steps() > limits.max_steps) {
    Fail(ErrorCode::kInvalidArgument, "spec.steps {} must be between 1 and {}", spec.steps(), limits.max_steps);
  }
  if (!(spec.guidance() >= 0 && spec.guidance() <= 50)) {
    Fail(ErrorCode::kInvalidArgument, "spec.guidance {} must be between 0 and 50", spec.guidance());
  }
  if (!(spec.shift() > 0 && spec.shift() <= 100)) {
    Fail(ErrorCode::kInvalidArgument, "spec.shift {} must be above 0 and at most 100", spec.shift());
  }
  if (spec.seed() < 0) Fail(ErrorCode::kInvalidArgument, "spec.seed {} must not be negative", spec.seed());
  if (!OneOf(spec.solver(), {"unipc", "dpm++", "euler"})) {
    Fail(ErrorCode::kInvalidArgument, "spec.solver '{}' is not one of unipc, dpm++, euler", spec.solver());
  }

  auto& cache = *spec.mutable_cache();
  if (cache.preset().empty()) cache.set_preset("none");
  if (!OneOf(cache.preset(), {"none", "taylorseer-wan", "taylorseer-hunyuan", "taylorseer-flux", "fora", "lite"})) {
    Fail(ErrorCode::kInvalidArgument,
         "spec.cache.preset '{}' is not one of none, taylorseer-wan, taylorseer-hunyuan, taylorseer-flux, fora, lite",
         cache.preset());
  }
  if (cache.has_interval() && (cache.interval() < 1 || cache.interval() > 50)) {
    Fail(ErrorCode::kInvalidArgument, "spec.cache.interval {} must be between 1 and 50", cache.interval());
  }
  if (cache.has_order() && (cache.order() < 0 || cache.order() > 4)) {
    Fail(ErrorCode::kInvalidArgument, "spec.cache.order {} must be between 0 and 4", cache.order());
  }
  for (const auto& [name, set, value] : {std::tuple{"warmup", cache.has_warmup(), cache.warmup()},
                                         std::tuple{"tail", cache.has_tail(), cache.tail()}}) {
    if (set && (value < 0 || value > spec.steps())) {
      Fail(ErrorCode::kInvalidArgument, "spec.cache.{} {} must be between 0 and the {} steps", name, value,
           spec.steps());
    }
  }

  const auto& parallel = spec.parallel();
  for (const auto& [name, degree] : {std::pair{"ulysses", parallel.ulysses()}, {"ring", parallel.ring()}}) {
    if (degree < 0 || degree > 64) {
      Fail(ErrorCode::kInvalidArgument, "spec.parallel.{} {} must be between 0 (any) and 64", name, degree);
    }
  }

  auto& output = *spec.mutable_output();
  if (output.container().empty()) output.set_container("mp4");
  if (!OneOf(output.container(), {"mp4", "webm"})) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.container '{}' is not mp4 or webm", output.container());
  }
  if (output.codec().empty()) output.set_codec(output.container() == "mp4" ? "h264" : "vp9");
  const bool fits = output.container() == "mp4" ? OneOf(output.codec(), {"h264", "av1"})
                                                : OneOf(output.codec(), {"vp9", "av1"});
  if (!fits) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.codec '{}' does not go in {} (mp4: h264, av1; webm: vp9, av1)",
         output.codec(), output.container());
  }
  if (output.fps() == 0) output.set_fps(16);
  if (output.fps() < 1 || output.fps() > 120) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.fps {} must be between 1 and 120", output.fps());
  }
  if (output.quality() < 0 || output.quality() > 63) {
    Fail(ErrorCode::kInvalidArgument, "spec.output.quality {} must be between 0 (default) and 63", output.quality());
  }
}

std::string MimeType(const v1::OutputSettings& output) {
  return output.container() == "webm" ? "video/webm" : "video/mp4";
}

}  // namespace vidgen::server
