#include <torch/torch.h>

#include "common/error.h"
#include "models/io/pickle.h"
#include "models/io/tensor_file.h"
#include "models/io/zip_archive.h"

namespace vidgen::io {
namespace {

// Containers nest this deep at most in a checkpoint worth loading; a deeper (or self-containing) one is an attack.
constexpr int kMaxNesting = 64;
// Shared containers are visited once per path that reaches them; this bounds a pickle built to multiply paths.
constexpr std::uint64_t kMaxVisits = std::uint64_t{1} << 24;

class TensorCollector {
 public:
  TensorCollector(std::shared_ptr<const MappedFile> file, const ZipArchive& archive, std::string prefix)
      : file_(std::move(file)), archive_(archive), prefix_(std::move(prefix)) {}

  void Visit(const pickle::Value& value, const std::string& name, int depth) {
    if (++visits_ > kMaxVisits) {
      Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' refers to its containers more than {} times",
           file_->path(), kMaxVisits);
    }
    if (depth > kMaxNesting) {
      Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' nests containers more than {} deep at '{}'",
           file_->path(), kMaxNesting, name);
    }
    if (const auto* tensor = std::get_if<std::shared_ptr<const pickle::TensorRef>>(&value)) {
      tensors_.emplace_back(name, Materialize(**tensor, name));
    } else if (const auto* dict = std::get_if<pickle::Dict*>(&value)) {
      for (const auto& [key, item] : (*dict)->items) Visit(item, Join(name, KeyText(key, name)), depth + 1);
    } else if (const auto* list = std::get_if<pickle::List*>(&value)) {
      const auto& items = (*list)->items;
      for (std::size_t i = 0; i < items.size(); ++i) Visit(items[i], Join(name, std::to_string(i)), depth + 1);
    }
  }

  NamedTensors Take() { return std::move(tensors_); }

 private:
  static std::string Join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  }
  std::string KeyText(const pickle::Value& key, const std::string& where) const {
    if (const auto* s = std::get_if<std::string>(&key)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&key)) return std::to_string(*i);
    Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' has a dict key under '{}' that is not a string or integer",
         file_->path(), where);
  }

  at::Tensor Materialize(const pickle::TensorRef& ref, const std::string& name) const {
    const std::string entry_name = prefix_ + "data/" + ref.storage.key;
    const ZipEntry* entry = archive_.Find(entry_name);
    if (!entry) {
      Fail(ErrorCode::kInvalidArgument,
           "torch checkpoint '{}': tensor '{}' refers to storage '{}', which the archive "
           "lacks",
           file_->path(), name, entry_name);
    }
    const std::uint64_t element = ElementSize(ref.storage.dtype);
    if (entry->size / element < ref.storage.numel) {
      Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}': storage '{}' holds {} bytes, less than its {} elements",
           file_->path(), entry_name, entry->size, ref.storage.numel);
    }
    // The furthest element the view reaches must lie inside the storage.
    std::uint64_t last = static_cast<std::uint64_t>(ref.offset);
    bool empty = false;
    for (std::size_t d = 0; d < ref.sizes.size(); ++d) {
      if (ref.sizes[d] < 0 || ref.strides[d] < 0) {
        Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}': tensor '{}' has a negative size or stride",
             file_->path(), name);
      }
      empty = empty || ref.sizes[d] == 0;
      std::uint64_t reach = 0;
      if (ref.sizes[d] > 0 && (__builtin_mul_overflow(static_cast<std::uint64_t>(ref.sizes[d] - 1),
                                                      static_cast<std::uint64_t>(ref.strides[d]), &reach) ||
                               __builtin_add_overflow(last, reach, &last))) {
        last = ~std::uint64_t{0};
      }
    }
    if (ref.offset < 0 || (!empty && last >= ref.storage.numel)) {
      Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}': tensor '{}' reaches past the end of its storage",
           file_->path(), name);
    }
    const std::uint64_t begin = static_cast<std::uint64_t>(ref.offset) * element;
    return TensorFromMappedFile(file_, entry->data_offset + begin, ref.storage.numel * element - begin,
                                ref.storage.dtype, ref.sizes, ref.strides, name);
  }

  std::shared_ptr<const MappedFile> file_;
  const ZipArchive& archive_;
  std::string prefix_;
  NamedTensors tensors_;
  std::uint64_t visits_ = 0;
};

}  // namespace

NamedTensors ReadTorchCheckpoint(const std::string& path) {
  const auto file = MappedFile::Open(path);
  if (!LooksLikeZip(file->bytes())) {
    Fail(ErrorCode::kInvalidArgument,
         "'{}' is not a torch.save zip archive (files from torch.save before PyTorch "
         "1.6 are not supported: re-save them with a current PyTorch)",
         path);
  }
  const ZipArchive archive(file->bytes(), path);
  // torch.save puts every entry under one top folder named after the file: "<name>/data.pkl", "<name>/data/0".
  const ZipEntry* pickle_entry = nullptr;
  for (const auto& entry : archive.entries()) {
    const auto slash = entry.name.find('/');
    if (slash != std::string::npos && entry.name.substr(slash + 1) == "data.pkl") {
      pickle_entry = &entry;
      break;
    }
  }
  if (!pickle_entry) Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' has no data.pkl", path);
  const std::string prefix = pickle_entry->name.substr(0, pickle_entry->name.size() - std::strlen("data.pkl"));

  const pickle::Document document = pickle::Load(archive.Data(*pickle_entry), path + ":" + pickle_entry->name);
  TensorCollector collector(file, archive, prefix);
  collector.Visit(document.root(), "", 0);
  return collector.Take();
}

}  // namespace vidgen::io
