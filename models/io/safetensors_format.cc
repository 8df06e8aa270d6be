#include "models/io/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json.h"

namespace vidgen::io {
namespace {

using Json = nlohmann::ordered_json;

std::string ShapeString(std::span<const std::int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// The header, read as SAX events straight into entries: linear in its size however many tensors it names, and
// refused at the first level deeper than a header has (top object, entry, shape or offsets array), so no recursion
// ever sees attacker-chosen depth.
class HeaderReader final : public nlohmann::json_sax<Json> {
 public:
  explicit HeaderReader(std::string_view source) : source_(source) {}

  SafetensorsHeader Take() { return std::move(header_); }

  bool null() override { return Scalar("null"); }
  bool boolean(bool) override { return Scalar("a boolean"); }
  bool number_float(double, const std::string&) override { return Scalar("a fraction"); }
  bool binary(binary_t&) override { return Scalar("binary data"); }
  bool number_integer(std::int64_t value) override {
    if (value < 0) return Scalar("a negative number");
    return number_unsigned(static_cast<std::uint64_t>(value));
  }
  bool number_unsigned(std::uint64_t value) override {
    if (depth_ == 3 && field_ == Field::kShape) {
      if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) Bad("has a shape entry that is too large");
      if (entry_.shape.size() == kMaxTensorDims) Bad(fmt::format("has more than {} dimensions", kMaxTensorDims));
      entry_.shape.push_back(static_cast<std::int64_t>(value));
      return true;
    }
    if (depth_ == 3 && field_ == Field::kOffsets) {
      offsets_.push_back(value);
      if (offsets_.size() > 2) Bad("has no 'data_offsets' pair");
      return true;
    }
    return Scalar("a number");
  }
  bool string(string_t& value) override {
    if (depth_ == 2 && in_metadata_) {
      header_.metadata.emplace(std::move(key_), std::move(value));
      return true;
    }
    if (depth_ == 2 && field_ == Field::kDtype) {
      const auto dtype = ParseSafetensorsDType(value);
      if (!dtype) Bad(fmt::format("has dtype '{}', which vidgen does not support", value));
      entry_.dtype = *dtype;
      dtype_name_ = value;
      seen_dtype_ = true;
      return true;
    }
    return Scalar("a string");
  }
  bool key(string_t& value) override {
    if (depth_ == 1) {
      in_metadata_ = value == "__metadata__";
      if (!in_metadata_) {
        if (header_.tensors.size() == kMaxSafetensorsTensors) {
          Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' names more than {} tensors", source_,
               kMaxSafetensorsTensors);
        }
        if (!names_.insert(value).second) {
          Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' names tensor '{}' twice", source_, value);
        }
        entry_ = SafetensorsEntry{};
        entry_.name = value;
      } else if (seen_metadata_) {
        Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' has two __metadata__ objects", source_);
      }
      seen_metadata_ = seen_metadata_ || in_metadata_;
    } else if (depth_ == 2 && in_metadata_) {
      key_ = std::move(value);
    } else if (depth_ == 2) {
      field_ = value == "dtype" ? Field::kDtype : value == "shape" ? Field::kShape
             : value == "data_offsets" ? Field::kOffsets : Field::kOther;
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (depth_ == 0 || (depth_ == 1 && !in_metadata_)) {
      ++depth_;
      field_ = Field::kNone;
      seen_dtype_ = seen_shape_ = false;
      offsets_.clear();
      return true;
    }
    if (depth_ == 1) {
      ++depth_;
      return true;
    }
    return Scalar("an object");
  }
  bool end_object() override {
    if (depth_ == 2 && !in_metadata_) Finish();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 2 && !in_metadata_ && (field_ == Field::kShape || field_ == Field::kOffsets)) {
      ++depth_;
      if (field_ == Field::kShape) seen_shape_ = true;
      if (field_ == Field::kOffsets) offsets_.clear();
      return true;
    }
    return Scalar("an array");
  }
  bool end_array() override {
    --depth_;
    field_ = Field::kNone;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' has a header that is not valid JSON: {}", source_,
         JsonErrorReason(e));
  }

 private:
  enum class Field { kNone, kDtype, kShape, kOffsets, kOther };

  [[noreturn]] void Bad(std::string_view what) const {
    Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': tensor '{}' {}", source_, entry_.name, what);
  }
  // A value where the header's layout allows none of its kind.
  bool Scalar(std::string_view kind) {
    if (depth_ == 0) Fail(ErrorCode::kInvalidArgument, "safetensors file '{}' has a header that is not a JSON object", source_);
    if (depth_ == 1 && !in_metadata_) Bad("is not a JSON object");
    if (depth_ == 1 || in_metadata_) {
      Fail(ErrorCode::kInvalidArgument, "safetensors file '{}': __metadata__ {} is {}, not {}", source_,
           depth_ == 1 ? "itself" : fmt::format("entry '{}'", key_), kind, depth_ == 1 ? "an object" : "a string");
    }
    if (field_ == Field::kOther && depth_ == 2 && kind != "an object" && kind != "an array") return true;  // ignored
    switch (field_) {
      case Field::kDtype: Bad("has no string 'dtype'");
      case Field::kShape: Bad(depth_ == 3 ? "has a shape entry that is not a size" : "has no array 'shape'");
      case Field::kOffsets:
        Bad(depth_ == 3 ? "has a data offset that is not a non-negative integer" : "has no 'data_offsets' pair");
      default: Bad(fmt::format("holds {} where a header has none", kind));
    }
  }
  void Finish() {
    if (!seen_dtype_) Bad("has no string 'dtype'");
    if (!seen_shape_) Bad("has no array 'shape'");
    if (offsets_.size() != 2) Bad("has no 'data_offsets' pair");
    entry_.begin = offsets_[0];
    entry_.end = offsets_[1];
    if (entry_.end < entry_.begin) {
      Bad(fmt::format("has data_offsets [{}, {}] that end before they begin", entry_.begin, entry_.end));
    }
    const std::uint64_t bytes = TensorBytes(entry_.shape, entry_.dtype, entry_.name);
    if (bytes != entry_.end - entry_.begin) {
      Bad(fmt::format("has shape {} of {} ({} bytes) but data_offsets [{}, {}] span {} bytes", ShapeString(entry_.shape),
                      dtype_name_, bytes, entry_.begin, entry_.end, entry_.end - entry_.begin));
    }
    header_.tensors.push_back(std::move(entry_));
  }

  std::string_view source_;
  SafetensorsHeader header_;
  std::unordered_set<std::string> names_;
  int depth_ = 0;
  bool in_metadata_ = false, seen_metadata_ = false;
  std::string key_;
  SafetensorsEntry entry_;
  Field field_ = Field::kNone;
  bool seen_dtype_ = false, seen_shape_ = false;
  std::string dtype_name_;
  std::vector<std::uint64_t> offsets_;
};

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
  HeaderReader reader(source);
  Json::sax_parse(header_begin, header_begin + header_bytes, &reader);
  SafetensorsHeader header = reader.Take();
  header.data_offset = 8 + header_bytes;

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
