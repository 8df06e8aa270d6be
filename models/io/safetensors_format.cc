#include "models/io/safetensors_format.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace vidgen::io {
namespace {

using Json = nlohmann::ordered_json;

std::string ShapeString(std::span<const std::int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

SafetensorsEntry ParseEntry(const std::string& name, const Json& value, std::string_view source) {
  auto bad = [&](std::string_view what) {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': tensor '{}' {}", source, name, what);
  };
  if (!value.is_object()) bad("is not a JSON object");
  const auto dtype_it = value.find("dtype");
  const auto shape_it = value.find("shape");
  const auto offsets_it = value.find("data_offsets");
  if (dtype_it == value.end() || !dtype_it->is_string()) bad("has no string 'dtype'");
  if (shape_it == value.end() || !shape_it->is_array()) bad("has no array 'shape'");
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    bad("has no 'data_offsets' pair");
  }

  SafetensorsEntry entry;
  entry.name = name;
  const auto dtype_name = dtype_it->get<std::string>();
  const auto dtype = ParseSafetensorsDType(dtype_name);
  if (!dtype) bad(fmt::format("has dtype '{}', which vidgen does not support", dtype_name));
  entry.dtype = *dtype;
  for (const auto& dim : *shape_it) {
    if (!dim.is_number_integer() || dim.get<std::int64_t>() < 0) bad("has a shape entry that is not a size");
    entry.shape.push_back(dim.get<std::int64_t>());
  }
  for (const auto& offset : *offsets_it) {
    if (!offset.is_number_unsigned()) bad("has a data offset that is not a non-negative integer");
  }
  entry.begin = (*offsets_it)[0].get<std::uint64_t>();
  entry.end = (*offsets_it)[1].get<std::uint64_t>();
  if (entry.end < entry.begin)
    bad(fmt::format("has data_offsets [{}, {}] that end before they begin", entry.begin, entry.end));
  const std::uint64_t bytes = TensorBytes(entry.shape, entry.dtype, name);
  if (bytes != entry.end - entry.begin) {
    bad(fmt::format("has shape {} of {} ({} bytes) but data_offsets [{}, {}] span {} bytes", ShapeString(entry.shape),
                    dtype_name, bytes, entry.begin, entry.end, entry.end - entry.begin));
  }
  return entry;
}

}  // namespace

std::uint64_t TensorBytes(std::span<const std::int64_t> shape, DType dtype, std::string_view what) {
  std::uint64_t bytes = ElementSize(dtype);
  for (const std::int64_t dim : shape) {
    if (dim < 0)
      Fail(ErrorCode::kInvalidArgument, "tensor '{}' has a negative dimension in {}", what, ShapeString(shape));
    if (__builtin_mul_overflow(bytes, static_cast<std::uint64_t>(dim), &bytes)) {
      Fail(ErrorCode::kInvalidArgument, "tensor '{}' of shape {} is too large", what, ShapeString(shape));
    }
  }
  return bytes;
}

SafetensorsHeader ParseSafetensorsHeader(std::span<const std::uint8_t> file, std::string_view source) {
  if (file.size() < 8) {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' is {} bytes, too short to hold a header", source,
         file.size());
  }
  std::uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, file.data(), 8);  // little-endian, as every platform vidgen runs on
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' declares a {}-byte header, over the {}-byte limit", source,
         header_bytes, kMaxSafetensorsHeaderBytes);
  }
  if (header_bytes > file.size() - 8) {
    Fail(ErrorCode::kInvalidArgument,
         "safetensors file '{}' declares a {}-byte header, which runs past the end of the {}-byte file "
         "(truncated?)",
         source, header_bytes, file.size());
  }

  const auto* header_begin = reinterpret_cast<const char*>(file.data() + 8);
  Json json;
  try {
    json = Json::parse(header_begin, header_begin + header_bytes);
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' has a header that is not valid JSON: {}", source,
         e.what());
  }
  if (!json.is_object()) {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' has a header that is not a JSON object", source);
  }

  SafetensorsHeader header;
  header.data_offset = 8 + header_bytes;
  for (const auto& [name, value] : json.items()) {
    if (name != "__metadata__") {
      header.tensors.push_back(ParseEntry(name, value, source));
      continue;
    }
    if (!value.is_object()) {
      Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': __metadata__ is not a JSON object", source);
    }
    for (const auto& [key, text] : value.items()) {
      if (!text.is_string()) {
        Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': __metadata__ entry '{}' is not a string", source,
             key);
      }
      header.metadata.emplace(key, text.get<std::string>());
    }
  }

  const std::uint64_t data_bytes = file.size() - header.data_offset;
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& entry : header.tensors) {
    if (entry.end > data_bytes) {
      Fail(ErrorCode::kInvalidArgument,
           "safetensors file '{}': tensor '{}' data_offsets [{}, {}] run past the end of the {}-byte data section "
           "(truncated?)",
           source, entry.name, entry.begin, entry.end, data_bytes);
    }
    if (entry.begin != entry.end) by_offset.push_back(&entry);  // empty tensors occupy no bytes
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& previous = *by_offset[i - 1];
    const auto& current = *by_offset[i];
    if (current.begin < previous.end) {
      Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': tensors '{}' [{}, {}] and '{}' [{}, {}] overlap",
           source, previous.name, previous.begin, previous.end, current.name, current.begin, current.end);
    }
  }
  return header;
}

std::string EncodeSafetensorsHeader(const std::vector<SafetensorsEntry>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  Json json = Json::object();
  if (!metadata.empty()) json["__metadata__"] = metadata;
  for (const auto& entry : tensors) {
    json[entry.name] = {
        {"dtype", SafetensorsName(entry.dtype)}, {"shape", entry.shape}, {"data_offsets", {entry.begin, entry.end}}};
  }
  std::string text = json.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t length = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &length, 8);
  return out + text;
}

}  // namespace vidgen::io
