#include "cache/stored_tensor.h"

#include <cmath>
#include <map>
#include <mutex>

#include <torch/torch.h>

namespace vidgen::cache {
namespace {

constexpr double kE4M3Max = 448.0;
const double kMinNormal = std::ldexp(1.0, -6);
const double kSubnormalStep = std::ldexp(1.0, -9);

// Value of each of the 256 e4m3fn codes (0x7F and 0xFF, NaN, are never produced), made once per device.
at::Tensor E4M3Table(const c10::Device& device) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, at::Tensor> tables;  // by (device type, index)
  std::lock_guard lock(mutex);
  auto& table = tables[{static_cast<int>(device.type()), device.index()}];
  if (!table.defined()) {
    std::vector<float> values(256);
    for (int code = 0; code < 256; ++code) {
      const int exponent = (code >> 3) & 15, mantissa = code & 7;
      const double magnitude =
          exponent == 0 ? mantissa * kSubnormalStep : (1 + mantissa / 8.0) * std::ldexp(1.0, exponent - 7);
      values[static_cast<std::size_t>(code)] = static_cast<float>((code & 0x80) ? -magnitude : magnitude);
    }
    table = torch::tensor(values).to(device);
  }
  return table;
}

}  // namespace

at::Tensor EncodeE4M3(const at::Tensor& values) {
  const auto magnitude = values.abs().clamp_max(kE4M3Max);
  // Round to the nearest representable magnitude: spacing 2^(e-3) for normals, 2^-9 for subnormals.
  auto exponent = torch::floor(torch::log2(magnitude.clamp_min(kMinNormal))).clamp(-6, 8);
  auto rounded = (torch::round(magnitude / torch::exp2(exponent - 3)) * torch::exp2(exponent - 3)).clamp_max(kE4M3Max);
  // Rounding may carry into the next binade.
  exponent = torch::floor(torch::log2(rounded.clamp_min(kMinNormal))).clamp(-6, 8);
  const auto normal = rounded >= kMinNormal;
  const auto mantissa = torch::where(normal, rounded / torch::exp2(exponent) * 8 - 8, rounded / kSubnormalStep);
  const auto exponent_field = torch::where(normal, exponent + 7, torch::zeros_like(exponent));
  const auto code = (exponent_field * 8 + mantissa).round() + (values < 0).to(torch::kFloat) * 128;
  return code.to(torch::kUInt8);
}

at::Tensor DecodeE4M3(const at::Tensor& codes) {
  return E4M3Table(codes.device()).index_select(0, codes.flatten().to(torch::kLong)).view(codes.sizes());
}

StoredTensor StoredTensor::Store(const at::Tensor& value, FactorDType dtype) {
  StoredTensor stored;
  stored.dtype_ = dtype;
  stored.Keep(value);
  return stored;
}

void StoredTensor::Keep(const at::Tensor& value) {
  switch (dtype_) {
    case FactorDType::kFloat32: data_ = value.to(torch::kFloat).contiguous(); break;
    case FactorDType::kBFloat16: data_ = value.to(torch::kBFloat16).contiguous(); break;
    case FactorDType::kFloat8E4M3: {
      const auto values = value.to(torch::kFloat);
      // amax / 448, or 1 for an all-zero (or non-finite) tensor.
      const auto amax = values.abs().max();
      scale_ = torch::where((amax > 0).logical_and(torch::isfinite(amax)), amax / kE4M3Max, torch::ones_like(amax));
      data_ = EncodeE4M3(values / scale_);
      break;
    }
  }
}

at::Tensor StoredTensor::Load() const {
  if (dtype_ == FactorDType::kFloat8E4M3) return DecodeE4M3(data_) * scale_;
  return dtype_ == FactorDType::kFloat32 ? data_.clone() : data_.to(torch::kFloat);
}

at::Tensor StoredTensor::View() const {
  return dtype_ == FactorDType::kFloat8E4M3 ? DecodeE4M3(data_) * scale_ : data_;
}

at::Tensor StoredTensor::BecomeDifference(const at::Tensor& newer, double distance) {
  if (dtype_ == FactorDType::kFloat32) return data_.sub_(newer).div_(-distance);
  auto difference = (newer - View()) / distance;
  Keep(difference);
  return difference;
}

std::int64_t StoredTensor::bytes() const {
  return data_.defined() ? StoredBytes(data_.numel(), dtype_) : 0;
}

}  // namespace vidgen::cache
