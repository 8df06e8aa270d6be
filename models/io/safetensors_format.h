// The safetensors container, LibTorch-free: an 8-byte little-endian header length, a JSON header, then the data.
// https://github.com/huggingface/safetensors describes the format; this is our own parser and encoder.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "models/io/dtype.h"

namespace vidgen::io {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section, end exclusive
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in the header's order
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;  // where the data section starts in the file
};

// Headers larger than this are refused (the reference implementation's limit).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
// A file naming more tensors is refused: the largest released checkpoints name a few thousand.
inline constexpr std::size_t kMaxSafetensorsTensors = 200'000;
// Tensors of more dimensions are refused, in every format (models use at most 5).
inline constexpr std::size_t kMaxTensorDims = 16;

// Parses and validates the header of the safetensors file whose bytes are `file`, in time linear in the header and
// without recursion. Every entry is checked against the file: a name used once, known dtype, at most kMaxTensorDims
// non-negative dimensions, byte size equal to the span of its offsets, offsets inside the data section and no two
// tensors overlapping. Throws Error(INVALID_ARGUMENT) naming `source` and the tensor.
SafetensorsHeader ParseSafetensorsHeader(std::span<const std::uint8_t> file, std::string_view source);

// Encodes the length prefix and JSON header for `tensors` (whose offsets the caller has laid out back to back from
// zero) and `metadata`, padded with spaces so that the data section starts 8-byte aligned.
std::string EncodeSafetensorsHeader(const std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata);

// Bytes that a tensor of `shape` and `dtype` occupies; throws Error(INVALID_ARGUMENT) on a negative dimension or on
// overflow, naming `what`.
std::uint64_t TensorBytes(std::span<const std::int64_t> shape, DType dtype, std::string_view what);

}  // namespace vidgen::io
