// The golden data: reference outputs of the official model code on small configurations (tests/data/golden, or
// the folder of the same layout that VIDGEN_GOLDEN_DIR names). Tests discover cases by listing; no test assumes a
// variant name or a size.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <gtest/gtest.h>

#include "models/io/tensor_file.h"

namespace vidgen::testing {

std::filesystem::path GoldenDir();

// Where the golden tests run their models: VIDGEN_TEST_DEVICE ("cpu" by default, "cuda" on a GPU machine).
// On CUDA, TF32 is off in matrix products and convolutions: the references computed in fp32.
c10::Device TestDevice();

// Case names (file names in cases/ without .safetensors) that start with `prefix`, sorted.
std::vector<std::string> GoldenCases(std::string_view prefix = "");

class GoldenCase {
 public:
  explicit GoldenCase(const std::string& name);

  const std::string& name() const { return name_; }
  const std::map<std::string, std::string>& metadata() const { return file_.metadata(); }
  // A metadata entry; fails the test (throws) when it is absent.
  const std::string& Meta(const std::string& key) const;
  // The checkpoint folder that the case's `checkpoint` metadata names.
  std::filesystem::path CheckpointDir() const;
  bool Has(std::string_view tensor) const { return file_.Contains(tensor); }
  at::Tensor Get(std::string_view tensor) const { return file_.Tensor(tensor); }
  // A tensor to feed a model with: Get(tensor) on TestDevice().
  at::Tensor Input(std::string_view tensor) const;
  const io::SafetensorsFile& file() const { return file_; }

 private:
  std::string name_;
  io::SafetensorsFile file_;
};

// The golden tolerance rule: max|actual - expected| <= tolerance * max(1, max|expected|), shapes equal. The failure
// message gives both errors, the place of the worst element and its two values.
::testing::AssertionResult TensorsClose(const at::Tensor& actual, const at::Tensor& expected, double tolerance = 1e-4);

}  // namespace vidgen::testing
