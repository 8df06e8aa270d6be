#include <algorithm>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/pickle.h"
#include "models/io/tensor_file.h"
#include "models/io/zip_archive.h"

namespace vidgen::io {
namespace {

// Containers nest this deep at most in a checkpoint worth loading; a deeper (or self-containing) one is an attack.
constexpr int kMaxNesting = 64;
// Shared containers are visited once per path that reaches them, and each tensor reached gets its full name: these
// bound a pickle built to multiply paths (a list holding one list 256 times, holding one tensor 256 times, ...),
// far above any state dict (the largest released checkpoints hold a few thousand tensors).
constexpr std::uint64_t kMaxVisits = 2'000'000;
constexpr std::size_t kMaxTensors = 100'000;
constexpr std::uint64_t kMaxNameBytes = std::uint64_t{64} << 20;

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
      name_bytes_ += name.size();
      if (tensors_.size() == kMaxTensors || name_bytes_ > kMaxNameBytes) {
        Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' holds more than {} tensors or {} bytes of names",
             file_->path(), kMaxTensors, kMaxNameBytes);
      }
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
    if (const auto* s = pickle::AsString(key)) return *s;
    if (const auto* i = std::get_if<std::int64_t>(&key)) return std::to_string(*i);
    Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}' has a dict key under '{}' that is not a string or integer",
         file_->path(), where);
  }

  at::Tensor Materialize(const pickle::TensorRef& ref, const std::string& name) const {
    const std::string entry_name = prefix_ + "data/" + ref.storage.key->text;
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
    CheckView(ref, name);
    const std::uint64_t begin = static_cast<std::uint64_t>(ref.offset) * element;
    return TensorFromMappedFile(file_, entry->data_offset + begin, ref.storage.numel * element - begin,
                                ref.storage.dtype, ref.sizes, ref.strides, name);
  }

  // A view must be one a tensor can have: sizes and strides not negative, no two elements at one place (a stride-0
  // or overlapping view would make a clone larger than the file), and every element inside the storage.
  void CheckView(const pickle::TensorRef& ref, const std::string& name) const {
    auto bad = [&](std::string_view what) {
      Fail(ErrorCode::kInvalidArgument, "torch checkpoint '{}': tensor '{}' {}", file_->path(), name, what);
    };
    if (ref.offset < 0 || static_cast<std::uint64_t>(ref.offset) > ref.storage.numel) {
      bad("has a storage offset outside its storage");
    }
    std::vector<std::size_t> dims;
    for (std::size_t d = 0; d < ref.sizes.size(); ++d) {
      if (ref.sizes[d] < 0 || ref.strides[d] < 0) bad("has a negative size or stride");
      if (ref.sizes[d] == 0) return;  // no elements, nothing to reach
      if (ref.sizes[d] > 1) dims.push_back(d);
    }
    std::sort(dims.begin(), dims.end(), [&](std::size_t a, std::size_t b) { return ref.strides[a] < ref.strides[b]; });
    // With strides ascending, each must step past every element the smaller ones reach.
    std::uint64_t reach = 0;  // furthest element offset from the first, so far
    for (const auto d : dims) {
      const auto stride = static_cast<std::uint64_t>(ref.strides[d]);
      if (stride <= reach) bad("has overlapping strides (a view that repeats elements)");
      std::uint64_t span = 0;
      if (__builtin_mul_overflow(static_cast<std::uint64_t>(ref.sizes[d] - 1), stride, &span) ||
          __builtin_add_overflow(reach, span, &reach)) {
        bad("reaches past the end of its storage");
      }
    }
    std::uint64_t last = 0;
    if (__builtin_add_overflow(static_cast<std::uint64_t>(ref.offset), reach, &last) || last >= ref.storage.numel) {
      bad("reaches past the end of its storage");
    }
  }

  std::shared_ptr<const MappedFile> file_;
  const ZipArchive& archive_;
  std::string prefix_;
  NamedTensors tensors_;
  std::uint64_t visits_ = 0, name_bytes_ = 0;
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
