#include "cache/calibration.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json.h"

namespace vidgen::cache {
namespace {

constexpr std::uintmax_t kMaxFileBytes = 1 << 20;
constexpr std::size_t kMaxSteps = 10000;
constexpr const char* kFormat = "vidgen-cache-calibration";

void Check(const GuidanceCalibration& c, const std::string& what) {
  const auto n = c.sigmas.size();
  if (n < 2 || n > kMaxSteps || c.difference_rms.size() != n) {
    Fail(ErrorCode::kInvalidArgument,
         "{}: 'sigmas' and 'difference_rms' must hold the same number of steps, 2 to {} (they hold {} and {})", what,
         kMaxSteps, n, c.difference_rms.size());
  }
  for (std::size_t i = 0; i < n; ++i) {
    const double sigma = c.sigmas[i], rms = c.difference_rms[i];
    if (!(sigma >= 0 && sigma <= 1) || (i > 0 && !(sigma < c.sigmas[i - 1]))) {
      Fail(ErrorCode::kInvalidArgument, "{}: sigmas[{}] = {} is not in [0, 1] below the one before", what, i, sigma);
    }
    if (!std::isfinite(rms) || !(rms > 0)) {
      Fail(ErrorCode::kInvalidArgument, "{}: difference_rms[{}] = {} is not a finite positive number", what, i, rms);
    }
  }
}

}  // namespace

double GuidanceCalibration::DifferenceRmsAt(double sigma) const {
  if (sigma >= sigmas.front()) return difference_rms.front();
  if (sigma <= sigmas.back()) return difference_rms.back();
  // Sigmas fall: j is the first step below `sigma`, i the one before it.
  const auto j = static_cast<std::size_t>(std::upper_bound(sigmas.begin(), sigmas.end(), sigma, std::greater<>()) -
                                          sigmas.begin());
  const auto i = j - 1;
  const double w = (sigmas[i] - sigma) / (sigmas[i] - sigmas[j]);
  return std::exp((1 - w) * std::log(difference_rms[i]) + w * std::log(difference_rms[j]));
}

GuidanceCalibration LoadCalibration(const std::string& path) {
  const std::string what = fmt::format("cache calibration '{}'", path);
  const auto json = ReadJsonFile(path, "cache calibration", kMaxFileBytes);
  GuidanceCalibration c;
  try {
    if (json.at("format").get<std::string>() != kFormat || json.at("version").get<int>() != 1) {
      Fail(ErrorCode::kInvalidArgument, "{} is not a version 1 '{}' file", what, kFormat);
    }
    c.solver = json.at("solver").get<std::string>();
    c.steps = json.at("steps").get<int>();
    c.shift = json.at("shift").get<double>();
    c.guidance = json.at("guidance").get<double>();
    c.prompts = json.at("prompts").get<int>();
    // Sizes are checked before the arrays are copied.
    const auto& sigmas = json.at("sigmas");
    const auto& rms = json.at("difference_rms");
    if (!sigmas.is_array() || !rms.is_array() || sigmas.size() > kMaxSteps || rms.size() > kMaxSteps) {
      Fail(ErrorCode::kInvalidArgument, "{}: 'sigmas' and 'difference_rms' must be arrays of at most {} numbers", what,
           kMaxSteps);
    }
    c.sigmas = sigmas.get<std::vector<double>>();
    c.difference_rms = rms.get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "{}: {}", what, JsonErrorReason(e));
  }
  Check(c, what);
  return c;
}

void SaveCalibration(const GuidanceCalibration& c, const std::string& path) {
  Check(c, fmt::format("cache calibration for '{}'", path));
  const nlohmann::json json = {{"format", kFormat},    {"version", 1},       {"solver", c.solver},
                               {"steps", c.steps},     {"shift", c.shift},   {"guidance", c.guidance},
                               {"prompts", c.prompts}, {"sigmas", c.sigmas}, {"difference_rms", c.difference_rms}};
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << json.dump(1) << '\n';
    if (!out.flush()) Fail(ErrorCode::kFailedPrecondition, "cannot write the cache calibration '{}'", temporary);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    Fail(ErrorCode::kFailedPrecondition, "cannot write the cache calibration '{}': {}", path, error.message());
  }
}

}  // namespace vidgen::cache
