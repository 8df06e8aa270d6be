// The element types that checkpoint files name, independent of LibTorch (the format parsers do not link it).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace vidgen::io {

enum class DType { kF64, kF32, kF16, kBF16, kF8E4M3, kF8E5M2, kI64, kI32, kI16, kI8, kU8, kBool };

// Bytes per element.
std::size_t ElementSize(DType dtype);
// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view SafetensorsName(DType dtype);
// Parses a safetensors dtype name; nullopt for names vidgen does not know (U16, U32, U64, F8_E8M0, ...).
std::optional<DType> ParseSafetensorsDType(std::string_view name);

}  // namespace vidgen::io
