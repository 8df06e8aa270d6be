#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "common/json.h"
#include "models/io/tensor_file.h"
#include "models/io/torch_dtype.h"

namespace vidgen::io {
namespace {

std::vector<std::int64_t> ContiguousStrides(const std::vector<std::int64_t>& sizes) {
  std::vector<std::int64_t> strides(sizes.size(), 1);
  for (std::size_t i = sizes.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<std::int64_t>(sizes[i], 1);
  return strides;
}

// A file descriptor that closes itself, and writes that either finish or throw.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) Fail(ErrorCode::kInvalidArgument, "cannot create '{}': {}", path, std::strerror(errno));
  }
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void Write(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    while (size > 0) {
      const ssize_t written = ::write(fd_, bytes, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) Fail(ErrorCode::kResourceExhausted, "cannot write '{}': {}", path_, std::strerror(errno));
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }
  void SyncAndClose() {
    if (::fsync(fd_) != 0) Fail(ErrorCode::kResourceExhausted, "cannot sync '{}': {}", path_, std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) Fail(ErrorCode::kResourceExhausted, "cannot close '{}': {}", path_, std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(MappedFile::Open(path)), header_(ParseSafetensorsHeader(file_->bytes(), path)) {}

const SafetensorsEntry* SafetensorsFile::Find(std::string_view name) const {
  for (const auto& entry : header_.tensors) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

at::Tensor SafetensorsFile::Tensor(std::string_view name) const {
  const SafetensorsEntry* entry = Find(name);
  if (!entry) Fail(ErrorCode::kNotFound, "safetensors file '{}' has no tensor '{}'", path(), name);
  return Materialize(*entry);
}

NamedTensors SafetensorsFile::Tensors() const {
  NamedTensors tensors;
  tensors.reserve(header_.tensors.size());
  for (const auto& entry : header_.tensors) tensors.emplace_back(entry.name, Materialize(entry));
  return tensors;
}

at::Tensor SafetensorsFile::Materialize(const SafetensorsEntry& entry) const {
  return TensorFromMappedFile(file_, header_.data_offset + entry.begin, entry.end - entry.begin, entry.dtype,
                              entry.shape, ContiguousStrides(entry.shape), entry.name);
}

void WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  std::vector<torch::Tensor> data;
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second) {
      Fail(ErrorCode::kInvalidArgument, "cannot write '{}': tensor name '{}' is reserved or repeated", path, name);
    }
    SafetensorsEntry entry;
    entry.name = name;
    entry.dtype = FromScalarType(tensor.scalar_type(), name);
    entry.shape = tensor.sizes().vec();
    entry.begin = offset;
    entry.end = offset + TensorBytes(entry.shape, entry.dtype, name);
    offset = entry.end;
    entries.push_back(std::move(entry));
    data.push_back(tensor.to(torch::kCPU).contiguous());
  }
  const std::string header = EncodeSafetensorsHeader(entries, metadata);

  const std::string temp = fmt::format("{}.tmp.{}", path, ::getpid());
  try {
    OutputFile out(temp);
    out.Write(header.data(), header.size());
    for (const auto& tensor : data) out.Write(tensor.data_ptr(), tensor.nbytes());
    out.SyncAndClose();
    std::filesystem::rename(temp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
}

std::vector<std::string> ReadSafetensorsIndex(const std::string& index_path,
                                              std::map<std::string, std::string>* weight_map) {
  const auto file = MappedFile::Open(index_path);
  const auto* text = reinterpret_cast<const char*>(file->bytes().data());
  const auto index = ParseJson(std::string_view(text, file->size()), fmt::format("safetensors index '{}'", index_path));
  const auto map = index.is_object() ? index.find("weight_map") : index.end();
  if (map == index.end() || !map->is_object()) {
    Fail(ErrorCode::kInvalidArgument, "safetensors index '{}' has no 'weight_map' object", index_path);
  }
  const auto folder = std::filesystem::path(index_path).parent_path();
  std::vector<std::string> shards;
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) {
      Fail(ErrorCode::kInvalidArgument, "safetensors index '{}': weight_map entry '{}' is not a file name", index_path,
           name);
    }
    const auto shard_name = shard.get<std::string>();
    const auto shard_path = std::filesystem::path(shard_name);
    if (shard_path.is_absolute() || shard_path.filename() != shard_path) {
      Fail(ErrorCode::kInvalidArgument, "safetensors index '{}': shard '{}' is not a file name beside the index",
           index_path, shard_name);
    }
    const std::string path = (folder / shard_path).string();
    if (std::find(shards.begin(), shards.end(), path) == shards.end()) shards.push_back(path);
    if (weight_map) (*weight_map)[name] = path;
  }
  return shards;
}

}  // namespace vidgen::io
