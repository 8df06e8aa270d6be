// Mapping between checkpoint dtypes and LibTorch's scalar types.
#pragma once

#include <string_view>

#include <c10/core/ScalarType.h>

#include "models/io/dtype.h"

namespace vidgen::io {

// Throws Error(UNIMPLEMENTED) naming `what` for FP8 on a LibTorch that has no FP8 types (before 2.1).
c10::ScalarType ToScalarType(DType dtype, std::string_view what);
// Throws Error(INVALID_ARGUMENT) naming `what` for types that checkpoint files cannot hold (complex, quantized).
DType FromScalarType(c10::ScalarType type, std::string_view what);

}  // namespace vidgen::io
