#include "spec/memory.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "cache/config.h"
#include "common/bytes.h"
#include "common/error.h"

namespace vidgen::spec {
namespace {

// x such that m·x = y, by Cramer's rule; nullopt when m is singular.
std::optional<std::array<double, 3>> Solve(const std::array<std::array<double, 3>, 3>& m, std::array<double, 3> y) {
  const auto det = [](const std::array<std::array<double, 3>, 3>& a) {
    return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
           a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  };
  const double d = det(m);
  if (std::abs(d) < 1e-12) return std::nullopt;
  std::array<double, 3> x{};
  for (std::size_t column = 0; column < 3; ++column) {
    auto replaced = m;
    for (std::size_t row = 0; row < 3; ++row) replaced[row][column] = y[row];
    x[column] = det(replaced) / d;
  }
  return x;
}

// Fits peak = x0 + x1·u + x2·v through the three probes; where x2 comes out negative (or the probes do not tell the
// terms apart), the line in u through the two probes of largest u, with x2 = 0.
std::array<double, 3> Fit(std::span<const MemoryProbe> probes, double (*u)(const MemoryProbe&),
                          double (*v)(const MemoryProbe&), std::int64_t MemoryProbe::*peak) {
  std::array<std::array<double, 3>, 3> m{};
  std::array<double, 3> y{};
  for (std::size_t i = 0; i < 3; ++i) {
    m[i] = {1.0, u(probes[i]), v(probes[i])};
    y[i] = static_cast<double>(probes[i].*peak);
  }
  if (const auto x = Solve(m, y); x && (*x)[2] >= 0 && (*x)[1] >= 0) return *x;
  std::vector<MemoryProbe> by_u(probes.begin(), probes.end());
  std::sort(by_u.begin(), by_u.end(), [&](const auto& a, const auto& b) { return u(a) < u(b); });
  const auto& low = by_u[1];
  const auto& high = by_u[2];
  const double slope =
      u(high) > u(low) ? std::max(0.0, static_cast<double>(high.*peak - low.*peak) / (u(high) - u(low))) : 0.0;
  return {static_cast<double>(high.*peak) - slope * u(high), slope, 0.0};
}

// Whole bytes of a non-negative estimate, held below 2^62 so that sums of them cannot overflow.
std::int64_t Bytes(double value) {
  return static_cast<std::int64_t>(std::ceil(std::clamp(value, 0.0, 0x1p62)));
}

}  // namespace

void Validate(const MemoryProfile& profile) {
  constexpr std::int64_t kMaxBytes = std::int64_t{1} << 50;  // a PiB per rank
  const auto check_bytes = [](std::string_view field, std::int64_t value, std::int64_t max) {
    if (value < 0 || value > max) Fail(ErrorCode::kInvalidArgument, "memory.{} {} is out of range", field, value);
  };
  check_bytes("device_bytes", profile.device_bytes, kMaxBytes);
  check_bytes("resident_bytes", profile.resident_bytes, kMaxBytes);
  check_bytes("denoise_squared_bound", profile.denoise_squared_bound, kMaxBytes);
  check_bytes("cache_branches", profile.cache_branches, 1 << 20);
  check_bytes("cache_values_per_token", profile.cache_values_per_token, 1 << 24);
  check_bytes("lite_values_per_token", profile.lite_values_per_token, 1 << 24);
  for (const auto& [field, value] : {std::pair{"denoise_base", profile.denoise_base},
                                     {"denoise_per_token", profile.denoise_per_token},
                                     {"denoise_per_token_squared", profile.denoise_per_token_squared},
                                     {"decode_base", profile.decode_base},
                                     {"decode_per_pixel", profile.decode_per_pixel},
                                     {"decode_per_pixel_frame", profile.decode_per_pixel_frame}}) {
    // A base may be negative (a line fitted above its probes), never past a rank's bytes either way.
    if (!std::isfinite(value) || std::abs(value) > static_cast<double>(kMaxBytes)) {
      Fail(ErrorCode::kInvalidArgument, "memory.{} {} is out of range", field, value);
    }
  }
}

std::int64_t MemoryEstimate::peak() const {
  return resident + std::max(denoise + cache, decode);
}

std::string MemoryEstimate::Describe() const {
  return fmt::format("{} (resident {}, denoising {} + cache {}, decoding {})", ByteSize(peak()), ByteSize(resident),
                     ByteSize(denoise), ByteSize(cache), ByteSize(decode));
}

std::int64_t VideoTokens(const JobRequest& job, const ModelInfo& model) {
  const std::int64_t side = std::max(1, model.side_multiple);
  return std::int64_t{(job.frames - 1) / 4 + 1} * (job.width / side) * (job.height / side);
}

MemoryEstimate EstimateJobMemory(const MemoryProfile& profile, const ParallelRequest& layout, const JobRequest& job,
                                 const ModelInfo& model) {
  const auto n = static_cast<double>(VideoTokens(job, model));
  MemoryEstimate estimate;
  estimate.resident = profile.resident_bytes;
  double squared = profile.denoise_per_token_squared * n * n;
  if (profile.denoise_squared_bound > 0)
    squared = std::min(squared, static_cast<double>(profile.denoise_squared_bound));
  estimate.denoise = Bytes(profile.denoise_base + profile.denoise_per_token * n + squared);
  const double pixels = static_cast<double>(job.width) * job.height;
  estimate.decode = Bytes(profile.decode_base + profile.decode_per_pixel * pixels +
                          profile.decode_per_pixel_frame * pixels * job.frames);

  // Each rank caches its own token shard; Wan's guidance keeps two streams (or a batch of two) per rank unless the
  // group splits the passes, HunyuanVideo's is embedded in one pass.
  const auto config = CacheConfigOf(job.cache);
  const std::int64_t shard = VideoTokens(job, model) / (std::int64_t{layout.ulysses} * layout.ring);
  cache::CacheFootprint footprint;
  footprint.streams = model.family == Family::kWan && job.guidance > 1 && !layout.cfg_parallel ? 2 : 1;
  if (profile.cache_branches > 0) {
    footprint.branch_numels.assign(static_cast<std::size_t>(profile.cache_branches),
                                   profile.cache_values_per_token / profile.cache_branches * shard);
  }
  footprint.output_numel = profile.lite_values_per_token * shard;
  estimate.cache = cache::EstimateBytes(config, footprint);
  return estimate;
}

void FitProfile(MemoryProfile& profile, std::span<const MemoryProbe> probes) {
  if (probes.size() != 3) Fail(ErrorCode::kInternal, "a memory profile needs 3 probes, not {}", probes.size());
  const auto denoise = Fit(
      probes, [](const MemoryProbe& p) { return static_cast<double>(p.tokens); },
      [](const MemoryProbe& p) { return static_cast<double>(p.tokens) * static_cast<double>(p.tokens); },
      &MemoryProbe::denoise_bytes);
  const auto decode = Fit(
      probes, [](const MemoryProbe& p) { return static_cast<double>(p.pixels); },
      [](const MemoryProbe& p) { return static_cast<double>(p.pixels) * static_cast<double>(p.frames); },
      &MemoryProbe::decode_bytes);
  std::tie(profile.denoise_base, profile.denoise_per_token, profile.denoise_per_token_squared) =
      std::tuple{denoise[0], denoise[1], denoise[2]};
  std::tie(profile.decode_base, profile.decode_per_pixel, profile.decode_per_pixel_frame) =
      std::tuple{decode[0], decode[1], decode[2]};
}

}  // namespace vidgen::spec
