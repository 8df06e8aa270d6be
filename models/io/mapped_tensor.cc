#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "models/io/torch_dtype.h"

namespace vidgen::io {

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
  // The deleter holds the mapping for as long as the tensor's storage lives.
  return torch::from_blob(
      data, sizes, strides, [keep = file](void*) {}, options);
}

}  // namespace vidgen::io
