// Checkpoint files crafted to crash, hang or exhaust a loader (issue 14), written by the tests that need them, so no
// large binary is committed. Each writer returns the path it wrote.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace vidgen::testing {

// Pickle protocol 2 by hand: enough to spell the state dicts an attacker would write.
class Pickle {
 public:
  Pickle();
  Pickle& Op(const std::string& raw);
  Pickle& Global(const std::string& module, const std::string& name);
  Pickle& Str(const std::string& text);
  Pickle& Int(std::int32_t value);
  Pickle& Ints(const std::vector<std::int32_t>& values);
  // _rebuild_tensor_v2(storage "0" of `numel` floats, offset, sizes, strides, False, OrderedDict())
  Pickle& Tensor(std::int32_t numel, std::int32_t offset, const std::vector<std::int32_t>& sizes,
                 const std::vector<std::int32_t>& strides);
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// torch.save archives holding {"w": ...} over one storage of 16 floats.
std::filesystem::path WriteStrideZeroCheckpoint(const std::filesystem::path& path);      // [2^20, 2^20], strides 0
std::filesystem::path WriteMultipliedPathsCheckpoint(const std::filesystem::path& path);  // 256^3 names, one tensor
std::filesystem::path WriteSharedStringCheckpoint(const std::filesystem::path& path);     // 1 MiB key, 10^5 refs
// safetensors files.
std::filesystem::path WriteDeepSafetensors(const std::filesystem::path& path);  // a 500,000-deep shape
std::filesystem::path WriteManyTensorsSafetensors(const std::filesystem::path& path, int tensors);
// A config.json whose "dim" nests 500,000 deep.
std::filesystem::path WriteDeepConfig(const std::filesystem::path& path);

}  // namespace vidgen::testing
