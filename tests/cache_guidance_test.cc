// The guidance cache's parts: presets and validation, the calibration file (round trip, hostile files,
// interpolation) and the reused difference.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cache/calibration.h"
#include "cache/config.h"
#include "cache/guidance.h"
#include "tests/support/expect_error.h"

namespace vidgen::cache {
namespace {

namespace fs = std::filesystem;

GuidanceCalibration Example() {
  GuidanceCalibration c;
  c.solver = "unipc";
  c.steps = 3;
  c.shift = 5;
  c.guidance = 5;
  c.prompts = 2;
  c.sigmas = {1.0, 0.8, 0.2};
  c.difference_rms = {4.0, 1.0, 0.5};
  return c;
}

class CalibrationFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vidgen-calibration-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& text) const {
    const auto path = (dir_ / kCalibrationFile).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  std::string Json(const std::string& sigmas, const std::string& rms) const {
    return R"({"format": "vidgen-cache-calibration", "version": 1, "solver": "unipc", "steps": 3, "shift": 5,
               "guidance": 5, "prompts": 2, "sigmas": )" +
           sigmas + R"(, "difference_rms": )" + rms + "}";
  }
  fs::path dir_;
};

TEST(GuidanceCachePresetTest, ReuseTheDifferenceAndValidate) {
  const auto plain = Preset("taylorseer-cfg");
  EXPECT_EQ(plain.policy, Policy::kTaylorSeer);
  EXPECT_EQ(plain.guidance, GuidanceCache::kReuseDifference);
  EXPECT_EQ(plain.order, 2);
  EXPECT_EQ(plain.interval, 5);
  EXPECT_FALSE(plain.calibrated);
  EXPECT_TRUE(Preset("taylorseer-cfg-calibrated").calibrated);
  EXPECT_EQ(Preset("taylorseer-wan").guidance, GuidanceCache::kSeparate);
  EXPECT_EQ(ParseGuidanceCache("reuse-difference"), GuidanceCache::kReuseDifference);
  EXPECT_EQ(GuidanceCacheName(ParseGuidanceCache("separate")), "separate");
  EXPECT_FAILS(ParseGuidanceCache("both"), kInvalidArgument, "cache.guidance");
  auto calibrated_alone = Preset("taylorseer-wan");
  calibrated_alone.calibrated = true;
  EXPECT_FAILS(calibrated_alone.Validate("spec.cache"), kInvalidArgument, "spec.cache.calibrated");
}

TEST_F(CalibrationFileTest, RoundTripsAndInterpolatesInLogSize) {
  const auto path = (dir_ / kCalibrationFile).string();
  SaveCalibration(Example(), path);
  const auto c = LoadCalibration(path);
  EXPECT_EQ(c.sigmas, Example().sigmas);
  EXPECT_EQ(c.difference_rms, Example().difference_rms);
  EXPECT_EQ(c.solver, "unipc");
  EXPECT_EQ(c.prompts, 2);
  EXPECT_DOUBLE_EQ(c.DifferenceRmsAt(0.8), 1.0);
  EXPECT_DOUBLE_EQ(c.DifferenceRmsAt(0.9), 2.0);  // halfway between 4 and 1 in log size
  EXPECT_NEAR(c.DifferenceRmsAt(0.5), std::sqrt(0.5), 1e-12);
  EXPECT_DOUBLE_EQ(c.DifferenceRmsAt(1.5), 4.0);  // the end values outside the measured sigmas
  EXPECT_DOUBLE_EQ(c.DifferenceRmsAt(0.0), 0.5);
}

TEST_F(CalibrationFileTest, RefusesHostileFilesWithTheFieldNamed) {
  EXPECT_FAILS(LoadCalibration((dir_ / "absent.json").string()), kNotFound, "cannot read");
  EXPECT_FAILS(LoadCalibration(Write(std::string(2 << 20, ' '))), kInvalidArgument, "over the");
  EXPECT_FAILS(LoadCalibration(Write(std::string(100000, '[') + std::string(100000, ']'))), kInvalidArgument, "deeper");
  EXPECT_FAILS(LoadCalibration(Write("{\"format\": \"other\", \"version\": 1}")), kInvalidArgument, "version 1");
  EXPECT_FAILS(LoadCalibration(Write(R"({"format": "vidgen-cache-calibration", "version": 1})")), kInvalidArgument,
               "solver");
  EXPECT_FAILS(LoadCalibration(Write(Json("[1, 0.5]", "[1, 2, 3]"))), kInvalidArgument, "same number of steps");
  EXPECT_FAILS(LoadCalibration(Write(Json("[1, 0.5, 0.7]", "[1, 2, 3]"))), kInvalidArgument, "sigmas[2]");
  EXPECT_FAILS(LoadCalibration(Write(Json("[1.5, 0.5]", "[1, 2]"))), kInvalidArgument, "sigmas[0]");
  EXPECT_FAILS(LoadCalibration(Write(Json("[1, 0.5]", "[1, -2]"))), kInvalidArgument, "difference_rms[1]");
  EXPECT_FAILS(LoadCalibration(Write(Json("[1, 0.5]", "[1, \"x\"]"))), kInvalidArgument, "cache calibration");
  std::string many = "[1";
  for (int i = 0; i < 20000; ++i) many += ",0";
  EXPECT_FAILS(LoadCalibration(Write(Json(many + "]", "[1]"))), kInvalidArgument, "at most 10000");
  EXPECT_TRUE(LoadCalibration(Write(Json("[1, 0.5]", "[1, 2]"))).difference_rms.size() == 2);
}

TEST(ReusedGuidanceTest, CarriesTheLastFullDifferenceScaledByTheCalibration) {
  const std::vector<double> sigmas = {1.0, 0.9, 0.8, 0.2, 0.0};
  const auto difference = torch::randn({4, 6});
  ReusedGuidance plain(sigmas, nullptr);
  EXPECT_FAILS(plain.At(1), kFailedPrecondition, "no guidance difference");
  plain.Remember(0, difference);
  EXPECT_TRUE(torch::equal(plain.At(1), difference));

  const auto calibration = Example();
  ReusedGuidance scaled(sigmas, &calibration);
  scaled.Remember(0, difference);
  EXPECT_TRUE(torch::allclose(scaled.At(1), difference * 0.5));   // 4 -> 2
  EXPECT_TRUE(torch::allclose(scaled.At(2), difference * 0.25));  // 4 -> 1
  scaled.Remember(2, difference);
  EXPECT_TRUE(torch::allclose(scaled.At(3), difference * 0.5));  // 1 -> 0.5
}

}  // namespace
}  // namespace vidgen::cache
