#include "spec/json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "common/json.h"

namespace vidgen::spec {
namespace {

// A number that is a whole number (1000, or 1000.0 as Python and others may write it); none otherwise.
std::optional<std::int64_t> WholeNumber(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (!value.is_number_float()) return std::nullopt;
  const double number = value.get<double>();
  if (!std::isfinite(number) || number != std::floor(number) || std::abs(number) > 9e15) return std::nullopt;
  return static_cast<std::int64_t>(number);
}

// One JSON object's fields, read by name: each read consumes its key, and Finish() refuses what is left.
class Fields {
 public:
  Fields(const nlohmann::json& json, std::string what) : json_(json), what_(std::move(what)) {
    if (!json.is_object()) Fail(ErrorCode::kInvalidArgument, "{} is not a JSON object", what_);
  }

  template <typename T>
  void Read(const char* key, T& field) {
    const auto* it = Take(key);
    if (it == nullptr) return;
    const bool fits = std::is_same_v<T, std::string> ? it->is_string()
                      : std::is_same_v<T, bool>      ? it->is_boolean()
                      : std::is_integral_v<T>        ? WholeNumber(*it).has_value()
                                                     : it->is_number();
    if (!fits) Fail(ErrorCode::kInvalidArgument, "{}.{} has the wrong type ({})", what_, key, JsonExcerpt(*it));
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      const auto value = *WholeNumber(*it);
      if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) {
        Fail(ErrorCode::kInvalidArgument, "{}.{} is out of range ({})", what_, key, value);
      }
      field = static_cast<T>(value);
    } else {
      field = it->get<T>();
    }
  }
  template <typename T>
  void Read(const char* key, std::optional<T>& field) {
    T value{};
    if (json_.contains(key) && !json_.at(key).is_null()) {
      Read(key, value);
      field = value;
    }
  }
  // An array of at most `max_count` integers.
  void Read(const char* key, std::vector<int>& field, std::size_t max_count) {
    const auto* it = Take(key);
    if (it == nullptr) return;
    if (!it->is_array() || it->size() > max_count) {
      Fail(ErrorCode::kInvalidArgument, "{}.{} is not an array of at most {} integers ({})", what_, key, max_count,
           JsonExcerpt(*it));
    }
    field.clear();
    for (const auto& value : *it) {
      const auto whole = WholeNumber(value);
      if (!whole || *whole < std::numeric_limits<int>::min() || *whole > std::numeric_limits<int>::max()) {
        Fail(ErrorCode::kInvalidArgument, "{}.{} holds {}, not an integer", what_, key, JsonExcerpt(value));
      }
      field.push_back(static_cast<int>(*whole));
    }
  }
  // An array of at most `max_count` objects, each read by `read`.
  template <typename Reader>
  void Objects(const char* key, std::size_t max_count, Reader&& read) {
    const auto* it = Take(key);
    if (it == nullptr) return;
    if (!it->is_array() || it->size() > max_count) {
      Fail(ErrorCode::kInvalidArgument, "{}.{} is not an array of at most {} objects ({})", what_, key, max_count,
           JsonExcerpt(*it));
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      Fields inner((*it)[i], fmt::format("{}.{}[{}]", what_, key, i));
      read(inner);
      inner.Finish();
    }
  }
  // A nested object, read by `read`.
  template <typename Reader>
  void Object(const char* key, Reader&& read) {
    const auto* it = Take(key);
    if (it == nullptr) return;
    Fields inner(*it, what_ + "." + key);
    read(inner);
    inner.Finish();
  }
  void Finish() const {
    for (const auto& [key, value] : json_.items()) {
      if (std::find(read_.begin(), read_.end(), key) == read_.end()) {
        Fail(ErrorCode::kInvalidArgument, "{} has an unknown field '{}'", what_, key);
      }
    }
  }

 private:
  // The key's value, marked read; null when it is absent or null.
  const nlohmann::json* Take(const char* key) {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return nullptr;
    read_.push_back(key);
    return &*it;
  }

  const nlohmann::json& json_;
  std::string what_;
  std::vector<std::string> read_;
};

template <typename T>
void Put(nlohmann::json& json, const char* key, const T& value) {
  if (value != T{}) json[key] = value;
}

}  // namespace

nlohmann::json ToJson(const JobRequest& r) {
  nlohmann::json json = nlohmann::json::object();
  Put(json, "model", r.model);
  Put(json, "prompt", r.prompt);
  Put(json, "negative_prompt", r.negative_prompt);
  Put(json, "width", r.width);
  Put(json, "height", r.height);
  Put(json, "frames", r.frames);
  Put(json, "steps", r.steps);
  Put(json, "guidance", r.guidance);
  Put(json, "shift", r.shift);
  Put(json, "seed", r.seed);
  Put(json, "solver", r.solver);
  nlohmann::json cache = nlohmann::json::object();
  Put(cache, "preset", r.cache.preset);
  for (const auto& [key, value] : {std::pair{"interval", r.cache.interval},
                                   {"order", r.cache.order},
                                   {"warmup", r.cache.warmup},
                                   {"tail", r.cache.tail}}) {
    if (value) cache[key] = *value;
  }
  if (r.cache.expansion) cache["expansion"] = *r.cache.expansion;
  if (r.cache.guidance) cache["guidance"] = *r.cache.guidance;
  if (r.cache.calibrated) cache["calibrated"] = *r.cache.calibrated;
  if (!cache.empty()) json["cache"] = cache;
  if (!r.timesteps.empty()) json["timesteps"] = r.timesteps;
  nlohmann::json parallel = nlohmann::json::object();
  Put(parallel, "ulysses", r.parallel.ulysses);
  Put(parallel, "ring", r.parallel.ring);
  Put(parallel, "cfg_parallel", r.parallel.cfg_parallel);
  if (!parallel.empty()) json["parallel"] = parallel;
  nlohmann::json output = nlohmann::json::object();
  Put(output, "container", r.output.container);
  Put(output, "codec", r.output.codec);
  Put(output, "fps", r.output.fps);
  Put(output, "quality", r.output.quality);
  if (!output.empty()) json["output"] = output;
  for (const auto& lora : r.loras) json["loras"].push_back({{"name", lora.name}, {"scale", lora.scale}});
  return json;
}

JobRequest JobRequestFromJson(const nlohmann::json& json, std::string_view what) {
  JobRequest r;
  Fields fields(json, std::string(what));
  fields.Read("model", r.model);
  fields.Read("prompt", r.prompt);
  fields.Read("negative_prompt", r.negative_prompt);
  fields.Read("width", r.width);
  fields.Read("height", r.height);
  fields.Read("frames", r.frames);
  fields.Read("steps", r.steps);
  fields.Read("guidance", r.guidance);
  fields.Read("shift", r.shift);
  fields.Read("seed", r.seed);
  fields.Read("solver", r.solver);
  fields.Read("timesteps", r.timesteps, 1000);
  fields.Object("cache", [&](Fields& cache) {
    cache.Read("preset", r.cache.preset);
    cache.Read("interval", r.cache.interval);
    cache.Read("order", r.cache.order);
    cache.Read("warmup", r.cache.warmup);
    cache.Read("tail", r.cache.tail);
    cache.Read("expansion", r.cache.expansion);
    cache.Read("guidance", r.cache.guidance);
    cache.Read("calibrated", r.cache.calibrated);
  });
  fields.Object("parallel", [&](Fields& parallel) {
    parallel.Read("ulysses", r.parallel.ulysses);
    parallel.Read("ring", r.parallel.ring);
    parallel.Read("cfg_parallel", r.parallel.cfg_parallel);
  });
  fields.Object("output", [&](Fields& output) {
    output.Read("container", r.output.container);
    output.Read("codec", r.output.codec);
    output.Read("fps", r.output.fps);
    output.Read("quality", r.output.quality);
  });
  // Bounded here only so that parsing is; a model's own limit on stacked LoRAs is checked at submit.
  fields.Objects("loras", 64, [&](Fields& lora) {
    auto& added = r.loras.emplace_back();
    lora.Read("name", added.name);
    lora.Read("scale", added.scale);
  });
  fields.Finish();
  return r;
}

}  // namespace vidgen::spec
