// StoredTensor: a cache tensor kept in fp32, bf16, or fp8-e4m3 with a per-tensor scale, read back as fp32.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "cache/config.h"

namespace vidgen::cache {

class StoredTensor {
 public:
  StoredTensor() = default;
  // Keeps `value` (any float dtype) in `dtype`. FP8 is e4m3 (max 448, 3 mantissa bits), scaled so that the largest
  // magnitude maps to 448; it is encoded here rather than through LibTorch so that it works on every version.
  // fp32 storage keeps an fp32 `value` itself, without a copy: hand over a tensor that nobody else writes.
  static StoredTensor Store(const at::Tensor& value, FactorDType dtype);

  at::Tensor Load() const;  // a fresh fp32 tensor in the stored shape, the caller's to modify
  // The values for arithmetic, without a copy where possible: fp32 and bf16 storage as they are (read-only: they
  // alias the cache), fp8 decoded to a fresh fp32 tensor.
  at::Tensor View() const;
  // Turns the stored term into (newer − stored) / distance, the next finite difference, in place in fp32 storage;
  // returns that difference in fp32, exact (before any rounding to the storage dtype).
  at::Tensor BecomeDifference(const at::Tensor& newer, double distance);
  std::int64_t bytes() const;  // data plus the scale
  bool defined() const { return data_.defined(); }

 private:
  void Keep(const at::Tensor& value);  // stores `value` in dtype_, in data_'s place (fp32: `value` itself)

  at::Tensor data_;
  at::Tensor scale_;  // fp8: a 0-dim fp32 tensor on data_'s device (no host sync to store or read)
  FactorDType dtype_ = FactorDType::kFloat32;
};

// Bytes that one stored tensor of `numel` elements takes.

// fp8-e4m3 codes <-> fp32 values (already divided by the scale, within [-448, 448]); exposed for tests.
at::Tensor EncodeE4M3(const at::Tensor& values);
at::Tensor DecodeE4M3(const at::Tensor& codes);

}  // namespace vidgen::cache
