#include "tests/support/crafted_files.h"

#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "models/io/tensor_file.h"

namespace vidgen::testing {

using namespace std::string_literals;

Pickle::Pickle() : bytes_("\x80\x02"s) {}

Pickle& Pickle::Op(const std::string& raw) {
  bytes_ += raw;
  return *this;
}

Pickle& Pickle::Global(const std::string& module, const std::string& name) {
  return Op("c" + module + "\n" + name + "\n");
}

Pickle& Pickle::Str(const std::string& text) {
  const auto size = static_cast<std::uint32_t>(text.size());
  bytes_ += 'X';
  bytes_.append(reinterpret_cast<const char*>(&size), 4);
  return Op(text);
}

Pickle& Pickle::Int(std::int32_t value) {
  bytes_ += 'J';
  bytes_.append(reinterpret_cast<const char*>(&value), 4);
  return *this;
}

Pickle& Pickle::Ints(const std::vector<std::int32_t>& values) {
  Op("(");
  for (const auto v : values) Int(v);
  return Op("t");
}

Pickle& Pickle::Tensor(std::int32_t numel, std::int32_t offset, const std::vector<std::int32_t>& sizes,
                       const std::vector<std::int32_t>& strides) {
  Global("torch._utils", "_rebuild_tensor_v2").Op("((").Str("storage").Global("torch", "FloatStorage");
  Str("0").Str("cpu").Int(numel).Op("tQ").Int(offset).Ints(sizes).Ints(strides).Op("\x89");
  return Global("collections", "OrderedDict").Op(")RtR");
}

namespace {

std::filesystem::path WriteStateDict(const std::filesystem::path& path, const Pickle& value) {
  Pickle pickle;
  pickle.Op("}(").Str("w").Op(value.bytes().substr(2)).Op("u.");
  io::WriteTorchArchive(path.string(), pickle.bytes(), {std::string(16 * sizeof(float), '\0')});
  return path;
}

std::filesystem::path WriteSafetensorsHeader(const std::filesystem::path& path, const std::string& json,
                                             std::size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t length = json.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << json << std::string(data_bytes, '\0');
  return path;
}

}  // namespace

std::filesystem::path WriteStrideZeroCheckpoint(const std::filesystem::path& path) {
  return WriteStateDict(path, Pickle().Tensor(16, 0, {1 << 20, 1 << 20}, {0, 0}));
}

std::filesystem::path WriteMultipliedPathsCheckpoint(const std::filesystem::path& path) {
  Pickle value;
  value.Tensor(16, 0, {16}, {1}).Op("q\x01" "0"s);  // memoised, off the stack
  for (int level = 1; level <= 3; ++level) {
    value.Op("(");
    for (int i = 0; i < 256; ++i) value.Op("h"s + static_cast<char>(level));
    value.Op("lq"s + static_cast<char>(level + 1) + (level < 3 ? "0" : ""));
  }
  return WriteStateDict(path, value);
}

std::filesystem::path WriteSharedStringCheckpoint(const std::filesystem::path& path) {
  // A dict whose 100,000 keys... are one 1 MiB string recalled from the memo, each mapped to the tensor.
  Pickle value;
  value.Op("}(").Str(std::string(1 << 20, 'k')).Op("q\x01" "0"s).Tensor(16, 0, {16}, {1}).Op("q\x02" "0"s);
  for (int i = 0; i < 100'000; ++i) value.Op("h\x01h\x02"s);
  value.Op("u");
  return WriteStateDict(path, value);
}

std::filesystem::path WriteDeepSafetensors(const std::filesystem::path& path) {
  const int depth = 500'000;
  return WriteSafetensorsHeader(path, R"({"x":{"dtype":"F32","shape":)" + std::string(depth, '[') +
                                          std::string(depth, ']') + R"(,"data_offsets":[0,0]}})",
                                0);
}

std::filesystem::path WriteManyTensorsSafetensors(const std::filesystem::path& path, int tensors) {
  std::string json = "{";
  for (int i = 0; i < tensors; ++i) {
    json += fmt::format(R"({}"t{}":{{"dtype":"U8","shape":[1],"data_offsets":[{},{}]}})", i ? "," : "", i, i, i + 1);
  }
  return WriteSafetensorsHeader(path, json + "}", static_cast<std::size_t>(tensors));
}

std::filesystem::path WriteDeepConfig(const std::filesystem::path& path) {
  const int depth = 500'000;
  std::ofstream(path) << R"({"dim": )" << std::string(depth, '[') << std::string(depth, ']') << "}";
  return path;
}

}  // namespace vidgen::testing
