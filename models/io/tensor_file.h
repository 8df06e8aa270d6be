// Reading and writing checkpoint files as named LibTorch tensors.
//
// Tensors read from a file alias its copy-on-write mapping: reading costs no copy, the mapping lives as long as any
// tensor that uses it, and writing to such a tensor changes only this process's memory, never the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/io/mapped_file.h"
#include "models/io/safetensors_format.h"

namespace vidgen::io {

// Tensors with their names, in file order.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A tensor of `dtype`, `sizes` and `strides` over the bytes of `file` from `offset` (which must hold at least
// `bytes` bytes). Tensors stay zero-copy unless the data is misaligned for its type, in which case they are copied.
at::Tensor TensorFromMappedFile(const std::shared_ptr<const MappedFile>& file, std::uint64_t offset,
                                std::uint64_t bytes, DType dtype, std::vector<std::int64_t> sizes,
                                std::vector<std::int64_t> strides, std::string_view what);

// When `tensor` aliases a mapped file, lets the system drop its pages from memory (it stays valid: they are read
// back if touched). For a tensor whose bytes were copied out.
void ReleaseFilePages(const at::Tensor& tensor);

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws Error (NOT_FOUND, INVALID_ARGUMENT) naming it.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::vector<SafetensorsEntry>& entries() const { return header_.tensors; }
  bool Contains(std::string_view name) const { return Find(name) != nullptr; }
  // The tensor called `name`; throws Error(NOT_FOUND) naming the file when there is none.
  at::Tensor Tensor(std::string_view name) const;
  NamedTensors Tensors() const;

 private:
  const SafetensorsEntry* Find(std::string_view name) const;
  at::Tensor Materialize(const SafetensorsEntry& entry) const;

  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
};

// Writes `tensors` (from any device; names must be unique) and `metadata` to `path` in the safetensors format,
// through a temporary file that is synced and renamed, so `path` is either absent, the old file or the whole new
// one. Throws Error naming the path or the tensor.
void WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The shard files named by a `*.safetensors.index.json` (its `weight_map`), as paths beside the index, each once
// and in order of first mention. The name → file map itself goes to `weight_map` when given.
std::vector<std::string> ReadSafetensorsIndex(const std::string& index_path,
                                              std::map<std::string, std::string>* weight_map = nullptr);

// Reads a torch.save zip archive (.pt, .pth, .bin) through the restricted unpickler: every tensor reachable from the
// root through dicts, lists and tuples, named by the dotted path of its keys ("module.img_in.proj.weight").
NamedTensors ReadTorchCheckpoint(const std::string& path);

// Writes `tensors` as torch.save does for a state dict (an OrderedDict, zip format, data 64-byte aligned), through a
// temporary file renamed into place: what ReadTorchCheckpoint and torch.load read. Up to 4 GiB (no zip64).
void WriteTorchCheckpoint(const std::string& path, const NamedTensors& tensors);
// The archive around a pickle: "<stem>/data.pkl", then storages[i] as "<stem>/data/<i>" (what persistent id key "i"
// names), "<stem>/version". Tests craft pickles with it.
void WriteTorchArchive(const std::string& path, const std::string& pickle, const std::vector<std::string>& storages);

}  // namespace vidgen::io
