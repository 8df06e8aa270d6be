#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "models/io/torch_dtype.h"

namespace vidgen::io {
namespace {

// The context of a mapped tensor's storage: the mapping, alive while the storage is.
struct MappedBytes {
  std::shared_ptr<const MappedFile> file;
};

void DropMappedBytes(void* context) {
  delete static_cast<MappedBytes*>(context);
}

}  // namespace

at::Tensor TensorFromMappedFile(const std::shared_ptr<const MappedFile>& file, std::uint64_t offset,
                                std::uint64_t bytes, DType dtype, std::vector<std::int64_t> sizes,
                                std::vector<std::int64_t> strides, std::string_view what) {
  const auto options = torch::TensorOptions().dtype(ToScalarType(dtype, what));
  if (offset > file->size() || bytes > file->size() - offset) {
    Fail(ErrorCode::kInvalidArgument, "tensor '{}' in '{}' lies past the end of the file", what, file->path());
  }
  std::uint8_t* data = file->mutable_data() + offset;
  if (bytes == 0) return torch::empty_strided(sizes, strides, options);
  if (reinterpret_cast<std::uintptr_t>(data) % ElementSize(dtype) != 0) {
    return torch::from_blob(data, sizes, strides, options).clone();
  }
  c10::DataPtr pointer(data, new MappedBytes{file}, &DropMappedBytes, c10::Device(c10::DeviceType::CPU));
  c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<std::int64_t>(bytes), std::move(pointer),
                       /*allocator=*/nullptr, /*resizable=*/false);
  return torch::empty({0}, options).set_(std::move(storage), 0, sizes, strides);
}

void ReleaseFilePages(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage() || tensor.numel() == 0) return;
  const auto& pointer = tensor.storage().data_ptr();
  if (pointer.get_deleter() != &DropMappedBytes) return;
  std::int64_t extent = 1;  // elements from the first to one past the last
  for (std::int64_t d = 0; d < tensor.dim(); ++d) extent += (tensor.size(d) - 1) * std::abs(tensor.stride(d));
  static_cast<const MappedBytes*>(pointer.get_context())
      ->file->Release(static_cast<const std::uint8_t*>(tensor.data_ptr()),
                      static_cast<std::size_t>(extent) * tensor.element_size());
}

}  // namespace vidgen::io
