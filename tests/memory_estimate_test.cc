// The memory estimate the server admits and places jobs by (spec/memory.h): the fit recovers what it was probed
// from, the cache's share follows the group's layout, and a hostile profile is refused field by field.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "cache/config.h"
#include "spec/memory.h"
#include "tests/support/expect_error.h"

namespace vidgen::spec {
namespace {

ModelInfo Wan() {
  return {"wan", Family::kWan, std::nullopt, 16};
}

JobRequest Job(int width, int height, int frames, double guidance = 5) {
  JobRequest job;
  job.model = "wan";
  job.width = width;
  job.height = height;
  job.frames = frames;
  job.guidance = guidance;
  return job;
}

// Probes whose peaks follow known coefficients exactly.
std::vector<MemoryProbe> Probes(double a, double b, double c, double e, double f, double g) {
  std::vector<MemoryProbe> probes;
  for (const auto& [tokens, pixels, frames] : {std::tuple{32, 4096, 5}, {576, 16384, 33}, {768, 65536, 9}}) {
    const double n = tokens, p = pixels;
    probes.push_back(
        {tokens, pixels, frames, std::llround(a + b * n + c * n * n), std::llround(e + f * p + g * p * frames)});
  }
  return probes;
}

TEST(MemoryEstimateTest, TheFitRecoversTheCoefficientsItWasProbedWith) {
  MemoryProfile profile;
  FitProfile(profile, Probes(8e6, 30000, 2, 5e6, 7500, 8));
  EXPECT_NEAR(profile.denoise_base, 8e6, 10);
  EXPECT_NEAR(profile.denoise_per_token, 30000, 0.1);
  EXPECT_NEAR(profile.denoise_per_token_squared, 2, 1e-3);
  EXPECT_NEAR(profile.decode_base, 5e6, 10);
  EXPECT_NEAR(profile.decode_per_pixel, 7500, 0.01);
  EXPECT_NEAR(profile.decode_per_pixel_frame, 8, 1e-3);
}

TEST(MemoryEstimateTest, AFitThatWouldBendDownIsTheLineThroughTheLargestProbes) {
  MemoryProfile profile;
  FitProfile(profile, Probes(8e6, 30000, -5, 5e6, 7500, -3));
  EXPECT_EQ(profile.denoise_per_token_squared, 0);
  EXPECT_EQ(profile.decode_per_pixel_frame, 0);
  EXPECT_GE(profile.denoise_per_token, 0);
  EXPECT_GE(profile.decode_per_pixel, 0);
  // The line passes through the largest probe, so the estimate there is what was measured.
  const auto probes = Probes(8e6, 30000, -5, 5e6, 7500, -3);
  const double n = 768;
  EXPECT_NEAR(profile.denoise_base + profile.denoise_per_token * n, static_cast<double>(probes[2].denoise_bytes), 1);
}

TEST(MemoryEstimateTest, TheEstimateAddsItsPartsAndTheCacheFollowsTheLayout) {
  MemoryProfile profile;
  profile.device_bytes = std::int64_t{80} << 30;
  profile.resident_bytes = std::int64_t{30} << 30;
  profile.denoise_base = 1e9;
  profile.denoise_per_token = 1e5;
  profile.decode_base = 2e9;
  profile.decode_per_pixel = 1e4;
  profile.cache_branches = 120;
  profile.cache_values_per_token = 120 * 5120;
  profile.lite_values_per_token = 64;

  auto job = Job(832, 480, 81);
  job.cache.preset = "taylorseer-wan";  // order 1, fp32 factors
  const std::int64_t tokens = VideoTokens(job, Wan());
  EXPECT_EQ(tokens, 21 * 52 * 30);
  const auto one = EstimateJobMemory(profile, {1, 1, false}, job, Wan());
  EXPECT_EQ(one.resident, profile.resident_bytes);
  EXPECT_EQ(one.denoise, std::llround(1e9 + 1e5 * static_cast<double>(tokens)));
  EXPECT_EQ(one.decode, std::llround(2e9 + 1e4 * 832 * 480));
  // Two guidance streams × 120 branches × 2 terms × 4 bytes × 5120 values of every token.
  EXPECT_EQ(one.cache, 2 * 120 * 2 * 4 * std::int64_t{5120} * tokens);
  EXPECT_EQ(one.peak(), one.resident + std::max(one.denoise + one.cache, one.decode));

  // Each rank caches its shard; CFG parallel leaves one stream per rank; unguided runs have one.
  EXPECT_EQ(EstimateJobMemory(profile, {4, 2, false}, job, Wan()).cache, one.cache / 8);
  EXPECT_EQ(EstimateJobMemory(profile, {1, 1, true}, job, Wan()).cache, one.cache / 2);
  EXPECT_EQ(EstimateJobMemory(profile, {1, 1, false}, Job(832, 480, 81, 1), Wan()).cache, 0);  // no cache asked
  job.cache.preset = "lite";  // order 2: 3 terms of the output
  EXPECT_EQ(EstimateJobMemory(profile, {1, 1, false}, job, Wan()).cache, 2 * 3 * 4 * 64 * tokens);
  EXPECT_NE(one.Describe().find("resident 30.0 GiB"), std::string::npos) << one.Describe();

  // A bounded attention kernel's quadratic term stops at its bound.
  profile.denoise_per_token_squared = 2;
  const double n = static_cast<double>(tokens);
  EXPECT_EQ(EstimateJobMemory(profile, {1, 1, false}, job, Wan()).denoise, std::llround(1e9 + 1e5 * n + 2 * n * n));
  profile.denoise_squared_bound = 1 << 20;
  EXPECT_EQ(EstimateJobMemory(profile, {1, 1, false}, job, Wan()).denoise, std::llround(1e9 + 1e5 * n) + (1 << 20));
}

TEST(MemoryEstimateTest, AHostileProfileIsRefusedNamingItsField) {
  using testing::FailsWith;
  MemoryProfile profile;
  EXPECT_NO_THROW(Validate(profile));
  auto bad = profile;
  bad.device_bytes = -1;
  EXPECT_TRUE(FailsWith([&] { Validate(bad); }, ErrorCode::kInvalidArgument, "memory.device_bytes"));
  bad = profile;
  bad.denoise_per_token_squared = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(FailsWith([&] { Validate(bad); }, ErrorCode::kInvalidArgument, "memory.denoise_per_token_squared"));
  bad = profile;
  bad.decode_per_pixel = 1e300;
  EXPECT_TRUE(FailsWith([&] { Validate(bad); }, ErrorCode::kInvalidArgument, "memory.decode_per_pixel"));
  bad = profile;
  bad.cache_values_per_token = std::int64_t{1} << 40;
  EXPECT_TRUE(FailsWith([&] { Validate(bad); }, ErrorCode::kInvalidArgument, "memory.cache_values_per_token"));
  // The largest profile Validate lets through cannot overflow an estimate of the largest job.
  MemoryProfile largest;
  largest.device_bytes = largest.resident_bytes = std::int64_t{1} << 50;
  largest.denoise_base = largest.denoise_per_token = largest.denoise_per_token_squared = 0x1p50;
  largest.cache_branches = 1 << 20;
  largest.cache_values_per_token = largest.lite_values_per_token = 1 << 24;
  auto job = Job(2048, 2048, 257);
  job.cache.preset = "taylorseer-wan";
  const auto estimate = EstimateJobMemory(largest, {1, 1, false}, job, Wan());
  EXPECT_GT(estimate.peak(), 0);
}

}  // namespace
}  // namespace vidgen::spec
