// How a generation caches features: the policy, its schedule of full and predicted steps, factor storage and the
// memory budget. The schedule is a pure function of the step index and this config, so every rank of a group
// takes the same decisions without talking.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vidgen::cache {

enum class Policy {
  kNone,        // every step full
  kTaylorSeer,  // forecast every cacheable branch of every block (order 0 is plain reuse, i.e. FORA)
  kLite,        // forecast only the model's final output and skip all blocks on predicted steps
};

// What the Taylor expansion steps in: the step index (as published) or the scheduler's sigma.
enum class Distance { kStep, kSigma };

// How factors are stored: fp32, bf16, or fp8-e4m3 with one fp32 scale per tensor.
enum class FactorDType { kFloat32, kBFloat16, kFloat8E4M3 };

// How factors extrapolate: Σ Δ^k·x^k/k! as published, or Newton's backward form Σ Δ^k·Π_{j<k}(x + j·d)/k!, which is
// exact for polynomials of degree ≤ order when full steps are evenly spaced (the published form is exact only up to
// degree 1, because its differences are backward differences, not derivatives).
enum class Expansion { kTaylor, kNewton };

// What a predicted step does with classifier-free guidance's two passes. Guidance multiplies the error of
// cond − uncond by its scale, and that difference is small and fast-turning where each pass is large and smooth: so
// forecasting both passes (as published) fails at guidance 5 where reusing the difference holds.
enum class GuidanceCache {
  kSeparate,         // both passes forecast on their own
  kReuseDifference,  // only the unconditional pass is forecast; cond − uncond of the last full step is reused
};

// What happens when the estimated cache bytes exceed the budget.
enum class OverBudget { kRefuse, kFallBackToLite };

struct CacheConfig {
  Policy policy = Policy::kNone;
  int interval = 5;  // one full step every `interval` after the warm-up (TaylorSeer's fresh_threshold)
  int order = 1;     // Taylor order, 0 to 4 (max_order)
  int warmup = 1;    // the first `warmup` steps are full (first_enhance)
  int tail = 0;      // the last `tail` steps are full
  Distance distance = Distance::kStep;
  Expansion expansion = Expansion::kTaylor;
  FactorDType factor_dtype = FactorDType::kFloat32;
  GuidanceCache guidance = GuidanceCache::kSeparate;
  // kReuseDifference: scale the reused difference by how its size changes from step to step along uncached runs, as
  // the model's calibration file (kCalibrationFile, beside the checkpoint) measured it.
  bool calibrated = false;
  std::int64_t budget_bytes = 0;  // 0: no limit
  OverBudget over_budget = OverBudget::kRefuse;

  // Throws Error(INVALID_ARGUMENT) naming the field as `<prefix>.interval` and so on.
  void Validate(std::string_view prefix = "cache") const;
  bool enabled() const { return policy != Policy::kNone; }
};

// Named presets: "none"; "taylorseer-wan" and "taylorseer-hunyuan" (the official N=5, O=1, first_enhance=1);
// "taylorseer-flux" (N=6, O=1, first_enhance=3); "fora" (order 0, N=5); "lite" (N=5, O=2, first_enhance=3, as
// TaylorSeer-Lite); "taylorseer-cfg" (N=5, O=2, the guidance difference reused) and "taylorseer-cfg-calibrated"
// (the same, its size from the calibration). Throws Error(INVALID_ARGUMENT) naming `field` for other names.
CacheConfig Preset(std::string_view name, std::string_view field = "cache");
// Every preset's name, for help texts and error messages.
const std::vector<std::string_view>& PresetNames();

// Parses "none", "taylorseer", "lite" (policy names) and the enum spellings used in flags and JSON.
Policy ParsePolicy(std::string_view name);
Distance ParseDistance(std::string_view name);
Expansion ParseExpansion(std::string_view name, std::string_view field = "cache.expansion");
FactorDType ParseFactorDType(std::string_view name);
// "separate" or "reuse-difference"; errors name `field`.
GuidanceCache ParseGuidanceCache(std::string_view name, std::string_view field = "cache.guidance");
std::string PolicyName(Policy policy);
std::string GuidanceCacheName(GuidanceCache guidance);

// True when `step` (0-based) of `steps` is computed in full.
bool IsFullStep(const CacheConfig& config, int step, int steps);
// The whole plan: one entry per step.
std::vector<bool> Plan(const CacheConfig& config, int steps);

// The bytes one stored factor of `numel` values takes.
std::int64_t StoredBytes(std::int64_t numel, FactorDType dtype);

// What a model will ask the cache to keep, per stream.
struct CacheFootprint {
  int streams = 1;
  // TaylorSeer: the elements of every branch of every block; or, for a folded stack, of each of its sums.
  std::vector<std::int64_t> branch_numels;
  std::int64_t output_numel = 0;  // lite: the elements of the model's output
  // ≥ 0: the model's block stack is folded (see FeatureCache): its branches' gates are a per-block constant plus
  // one of `shared_gates` per-step gates that every block shares, and the cache keeps 1 + shared_gates sums.
  int shared_gates = -1;
};

// Bytes held once every factor is built: streams × Σ branches (order + 1) × stored bytes of the branch; for a
// folded stack also one forward's fp32 sums of its gated branches while they are added up.
std::int64_t EstimateBytes(const CacheConfig& config, const CacheFootprint& footprint);

}  // namespace vidgen::cache
