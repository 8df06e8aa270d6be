#include "tests/support/golden.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

namespace vidgen::testing {

std::filesystem::path GoldenDir() {
  if (const char* dir = std::getenv("VIDGEN_GOLDEN_DIR"); dir && *dir) return dir;
  return std::filesystem::path(VIDGEN_SOURCE_DIR) / "tests" / "data" / "golden";
}

std::vector<std::string> GoldenCases(std::string_view prefix) {
  std::vector<std::string> names;
  const auto dir = GoldenDir() / "cases";
  if (!std::filesystem::is_directory(dir)) return names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    std::string name = entry.path().stem().string();
    if (name.starts_with(prefix)) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

GoldenCase::GoldenCase(const std::string& name)
    : name_(name), file_((GoldenDir() / "cases" / (name + ".safetensors")).string()) {}

const std::string& GoldenCase::Meta(const std::string& key) const {
  const auto it = metadata().find(key);
  if (it == metadata().end()) throw std::runtime_error(fmt::format("golden case {} has no metadata '{}'", name_, key));
  return it->second;
}

std::filesystem::path GoldenCase::CheckpointDir() const {
  return GoldenDir() / Meta("checkpoint");
}

c10::Device TestDevice() {
  static const c10::Device device = [] {
    const char* name = std::getenv("VIDGEN_TEST_DEVICE");
    const c10::Device chosen(name && *name ? name : "cpu");
    if (chosen.is_cuda()) {
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    return chosen;
  }();
  return device;
}

at::Tensor GoldenCase::Input(std::string_view tensor) const {
  return Get(tensor).to(TestDevice());
}

::testing::AssertionResult TensorsClose(const at::Tensor& actual, const at::Tensor& expected, double tolerance) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << fmt::format("shape [{}] differs from the expected [{}]",
                                                        fmt::join(actual.sizes(), ", "),
                                                        fmt::join(expected.sizes(), ", "));
  }
  if (expected.numel() == 0) return ::testing::AssertionSuccess();
  const auto a = actual.detach().to(torch::kCPU, torch::kFloat64);
  const auto b = expected.detach().to(torch::kCPU, torch::kFloat64);
  const auto diff = (a - b).abs();
  const double scale = std::max(1.0, b.abs().max().item<double>());
  const double max_error = diff.max().item<double>();
  const bool finite = torch::isfinite(a).all().item<bool>();
  if (finite && max_error <= tolerance * scale) return ::testing::AssertionSuccess();

  const auto worst =
      finite ? diff.argmax().item<std::int64_t>() : (~torch::isfinite(a)).flatten().nonzero()[0].item<std::int64_t>();
  std::vector<std::int64_t> index(static_cast<std::size_t>(a.dim()));
  for (std::int64_t d = a.dim() - 1, rest = worst; d >= 0; --d) {
    index[static_cast<std::size_t>(d)] = rest % a.size(d);
    rest /= a.size(d);
  }
  return ::testing::AssertionFailure() << fmt::format(
             "max |a-b| = {:.3e} > {:.1e} * {:.3e} (relative {:.3e}) at [{}]: actual {:.6e}, expected {:.6e}{}",
             max_error, tolerance, scale, max_error / scale, fmt::join(index, ", "), a.flatten()[worst].item<double>(),
             b.flatten()[worst].item<double>(), finite ? "" : " (actual has non-finite values)");
}

}  // namespace vidgen::testing
