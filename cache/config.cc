#include "cache/config.h"

#include <fmt/ranges.h>

#include "common/error.h"

namespace vidgen::cache {

void CacheConfig::Validate(std::string_view prefix) const {
  // Every field, whatever the policy: a value out of range is a mistake even where it would not be used.
  if (interval < 1 || interval > 100) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for '{}.interval': {}, expected 1 to 100", prefix, interval);
  }
  if (order < 0 || order > 4) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for '{}.order': {}, expected 0 to 4", prefix, order);
  }
  // Step 0 has nothing to forecast from.
  if (warmup < 1) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for '{}.warmup': {}, expected at least 1", prefix, warmup);
  }
  if (tail < 0) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for '{}.tail': {}, expected 0 or more", prefix, tail);
  }
  if (calibrated && guidance != GuidanceCache::kReuseDifference) {
    Fail(ErrorCode::kInvalidArgument,
         "'{}.calibrated' scales the reused guidance difference: it needs '{}.guidance' "
         "reuse-difference",
         prefix, prefix);
  }
  if (budget_bytes < 0) {
    Fail(ErrorCode::kInvalidArgument, "invalid value for '{}.budget_bytes': {}, expected 0 (no limit) or more", prefix,
         budget_bytes);
  }
}

const std::vector<std::string_view>& PresetNames() {
  static const std::vector<std::string_view> names = {
      "none", "taylorseer-wan", "taylorseer-hunyuan", "taylorseer-flux",
      "fora", "lite",           "taylorseer-cfg",     "taylorseer-cfg-calibrated",
  };
  return names;
}

CacheConfig Preset(std::string_view name, std::string_view field) {
  CacheConfig config;
  if (name == "none") return config;
  config.policy = Policy::kTaylorSeer;
  if (name == "taylorseer-wan" || name == "taylorseer-hunyuan") return config;
  if (name == "taylorseer-flux") {
    config.interval = 6;
    config.warmup = 3;
    return config;
  }
  if (name == "fora") {
    config.order = 0;
    return config;
  }
  if (name == "lite") {
    config.policy = Policy::kLite;
    config.order = 2;
    config.warmup = 3;
    return config;
  }
  if (name == "taylorseer-cfg" || name == "taylorseer-cfg-calibrated") {
    config.order = 2;
    config.guidance = GuidanceCache::kReuseDifference;
    config.calibrated = name == "taylorseer-cfg-calibrated";
    return config;
  }
  Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': '{}', expected one of {}", field, name,
       fmt::join(PresetNames(), ", "));
}

Policy ParsePolicy(std::string_view name) {
  if (name == "none") return Policy::kNone;
  if (name == "taylorseer" || name == "reuse") return Policy::kTaylorSeer;
  if (name == "lite") return Policy::kLite;
  Fail(ErrorCode::kInvalidArgument, "invalid value for 'cache.policy': '{}', expected none, taylorseer or lite", name);
}

Distance ParseDistance(std::string_view name) {
  if (name == "step") return Distance::kStep;
  if (name == "sigma") return Distance::kSigma;
  Fail(ErrorCode::kInvalidArgument, "invalid value for 'cache.distance': '{}', expected step or sigma", name);
}

Expansion ParseExpansion(std::string_view name, std::string_view field) {
  if (name == "taylor") return Expansion::kTaylor;
  if (name == "newton") return Expansion::kNewton;
  Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': '{}', expected taylor or newton", field, name);
}

FactorDType ParseFactorDType(std::string_view name) {
  if (name == "fp32") return FactorDType::kFloat32;
  if (name == "bf16") return FactorDType::kBFloat16;
  if (name == "fp8" || name == "fp8-e4m3") return FactorDType::kFloat8E4M3;
  Fail(ErrorCode::kInvalidArgument, "invalid value for 'cache.factor_dtype': '{}', expected fp32, bf16 or fp8", name);
}

GuidanceCache ParseGuidanceCache(std::string_view name, std::string_view field) {
  if (name == "separate") return GuidanceCache::kSeparate;
  if (name == "reuse-difference") return GuidanceCache::kReuseDifference;
  Fail(ErrorCode::kInvalidArgument, "invalid value for '{}': '{}', expected separate or reuse-difference", field, name);
}

std::string GuidanceCacheName(GuidanceCache guidance) {
  return guidance == GuidanceCache::kReuseDifference ? "reuse-difference" : "separate";
}

std::string PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kNone: return "none";
    case Policy::kTaylorSeer: return "taylorseer";
    case Policy::kLite: return "lite";
  }
  return "unknown";
}

bool IsFullStep(const CacheConfig& config, int step, int steps) {
  if (!config.enabled()) return true;
  if (step < config.warmup || step >= steps - config.tail) return true;
  // One full step every `interval`, counted from the last warm-up step (the reference's cache_counter).
  return (step - (config.warmup - 1)) % config.interval == 0;
}

std::vector<bool> Plan(const CacheConfig& config, int steps) {
  std::vector<bool> plan(static_cast<std::size_t>(std::max(steps, 0)));
  for (int step = 0; step < steps; ++step) plan[static_cast<std::size_t>(step)] = IsFullStep(config, step, steps);
  return plan;
}

std::int64_t StoredBytes(std::int64_t numel, FactorDType dtype) {
  switch (dtype) {
    case FactorDType::kFloat32: return 4 * numel;
    case FactorDType::kBFloat16: return 2 * numel;
    case FactorDType::kFloat8E4M3: return numel + static_cast<std::int64_t>(sizeof(float));
  }
  return 0;
}

std::int64_t EstimateBytes(const CacheConfig& config, const CacheFootprint& footprint) {
  std::int64_t per_stream = 0;
  const std::int64_t terms = config.order + 1;
  if (config.policy == Policy::kTaylorSeer) {
    for (const auto numel : footprint.branch_numels) per_stream += terms * StoredBytes(numel, config.factor_dtype);
  } else if (config.policy == Policy::kLite) {
    per_stream = terms * StoredBytes(footprint.output_numel, config.factor_dtype);
  }
  std::int64_t bytes = footprint.streams * per_stream;
  // A folded stack's full step adds its gated branches into fp32 sums, one forward's at a time.
  if (config.policy == Policy::kTaylorSeer) {
    for (int s = 1; s <= footprint.shared_gates; ++s) {
      bytes += StoredBytes(footprint.branch_numels.at(static_cast<std::size_t>(s)), FactorDType::kFloat32);
    }
  }
  return bytes;
}

}  // namespace vidgen::cache
