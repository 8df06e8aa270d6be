// The golden data itself: every case and every checkpoint file it names loads, and the comparison rule holds.
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/io/weight_store.h"
#include "tests/support/golden.h"

namespace vidgen::testing {
namespace {

TEST(GoldenDataTest, EveryCaseAndItsCheckpointLoad) {
  const auto cases = GoldenCases();
  ASSERT_FALSE(cases.empty()) << "no golden cases under " << GoldenDir();
  for (const auto& name : cases) {
    SCOPED_TRACE(name);
    const GoldenCase golden(name);
    EXPECT_FALSE(golden.file().entries().empty());
    EXPECT_FALSE(golden.Meta("note").empty());
    for (const auto& [tensor_name, tensor] : golden.file().Tensors()) {
      if (tensor.is_floating_point()) {
        EXPECT_TRUE(torch::isfinite(tensor).all().item<bool>()) << tensor_name;
      }
    }
    if (!golden.metadata().contains("checkpoint")) continue;
    const auto dir = golden.CheckpointDir();
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      const auto extension = entry.path().extension();
      if (extension != ".safetensors" && extension != ".pt" && extension != ".pth") continue;
      io::WeightStore store;
      store.AddFile(entry.path().string());
      EXPECT_GT(store.size(), 0u) << entry.path();
      ++files;
    }
    EXPECT_GT(files, 0u) << "no checkpoint files in " << dir;
  }
}

TEST(GoldenDataTest, EnvironmentVariableRedirectsTheGoldenFolder) {
  // Whatever the caller set (the suite may itself run redirected) is put back.
  const char* outer = std::getenv("VIDGEN_GOLDEN_DIR");
  const std::optional<std::string> saved = outer ? std::optional<std::string>(outer) : std::nullopt;
  const auto original = GoldenDir();
  ::setenv("VIDGEN_GOLDEN_DIR", "/nonexistent-golden", 1);
  EXPECT_EQ(GoldenDir(), std::filesystem::path("/nonexistent-golden"));
  EXPECT_TRUE(GoldenCases().empty());
  if (saved) {
    ::setenv("VIDGEN_GOLDEN_DIR", saved->c_str(), 1);
  } else {
    ::unsetenv("VIDGEN_GOLDEN_DIR");
  }
  EXPECT_EQ(GoldenDir(), original);
}

TEST(GoldenDataTest, ToleranceRuleScalesWithTheExpectedMagnitude) {
  const auto expected = torch::tensor({100.f, -2.f, 0.5f});
  EXPECT_TRUE(TensorsClose(expected + 0.009f, expected));  // 9e-3 <= 1e-4 * 100
  EXPECT_FALSE(TensorsClose(expected + torch::tensor({0.f, 0.011f, 0.f}), expected));
  const auto small = torch::tensor({0.5f});
  EXPECT_TRUE(TensorsClose(small + 9e-5f, small));  // the floor of the scale is 1
  EXPECT_FALSE(TensorsClose(small + 2e-4f, small));
  EXPECT_FALSE(TensorsClose(torch::zeros({2, 2}), torch::zeros({4})));
  auto nan = expected.clone();
  nan[1] = std::numeric_limits<float>::quiet_NaN();
  const auto result = TensorsClose(nan, expected);
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("[1]"), std::string::npos) << result.message();
}

}  // namespace
}  // namespace vidgen::testing
