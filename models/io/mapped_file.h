// MappedFile: a whole file mapped into memory, copy-on-write, so that tensors can point straight into it and an
// in-place change to such a tensor never reaches the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace vidgen::io {

class MappedFile {
 public:
  // Maps `path`. Throws Error (NOT_FOUND when it does not exist, INVALID_ARGUMENT when it is not a regular file,
  // INTERNAL when the system refuses) naming the path.
  static std::shared_ptr<const MappedFile> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  // Writable view of the private (copy-on-write) mapping, for tensors that alias it.
  std::uint8_t* mutable_data() const { return data_; }
  // Lets the system drop from memory the pages wholly inside [begin, begin + bytes) of this mapping, bytes that were
  // copied out and are not needed here again (touched again, they are read back from the file).
  void Release(const std::uint8_t* begin, std::size_t bytes) const;

 private:
  MappedFile(std::string path, std::uint8_t* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  std::uint8_t* data_;
  std::size_t size_;
};

}  // namespace vidgen::io
