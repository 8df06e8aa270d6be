#include "models/io/torch_dtype.h"

#include <torch/version.h>

#include "common/error.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define VIDGEN_HAS_FP8 1
#else
#define VIDGEN_HAS_FP8 0
#endif

namespace vidgen::io {

c10::ScalarType ToScalarType(DType dtype, std::string_view what) {
  switch (dtype) {
    case DType::kF64: return c10::ScalarType::Double;
    case DType::kF32: return c10::ScalarType::Float;
    case DType::kF16: return c10::ScalarType::Half;
    case DType::kBF16: return c10::ScalarType::BFloat16;
    case DType::kI64: return c10::ScalarType::Long;
    case DType::kI32: return c10::ScalarType::Int;
    case DType::kI16: return c10::ScalarType::Short;
    case DType::kI8: return c10::ScalarType::Char;
    case DType::kU8: return c10::ScalarType::Byte;
    case DType::kBool: return c10::ScalarType::Bool;
#if VIDGEN_HAS_FP8
    case DType::kF8E4M3: return c10::ScalarType::Float8_e4m3fn;
    case DType::kF8E5M2: return c10::ScalarType::Float8_e5m2;
#else
    case DType::kF8E4M3:
    case DType::kF8E5M2: break;
#endif
  }
  Fail(ErrorCode::kUnimplemented,
       "tensor '{}' has dtype {}, which this LibTorch ({}) cannot hold: FP8 needs 2.1 or later", what,
       SafetensorsName(dtype), TORCH_VERSION);
}

DType FromScalarType(c10::ScalarType type, std::string_view what) {
  switch (type) {
    case c10::ScalarType::Double: return DType::kF64;
    case c10::ScalarType::Float: return DType::kF32;
    case c10::ScalarType::Half: return DType::kF16;
    case c10::ScalarType::BFloat16: return DType::kBF16;
    case c10::ScalarType::Long: return DType::kI64;
    case c10::ScalarType::Int: return DType::kI32;
    case c10::ScalarType::Short: return DType::kI16;
    case c10::ScalarType::Char: return DType::kI8;
    case c10::ScalarType::Byte: return DType::kU8;
    case c10::ScalarType::Bool: return DType::kBool;
#if VIDGEN_HAS_FP8
    case c10::ScalarType::Float8_e4m3fn: return DType::kF8E4M3;
    case c10::ScalarType::Float8_e5m2: return DType::kF8E5M2;
#endif
    default: break;
  }
  Fail(ErrorCode::kInvalidArgument, "tensor '{}' has type {}, which a checkpoint file cannot hold", what,
       c10::toString(type));
}

}  // namespace vidgen::io
