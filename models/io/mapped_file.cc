#include "models/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace vidgen::io {

std::shared_ptr<const MappedFile> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    Fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument, "cannot open '{}': {}", path,
         std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    Fail(ErrorCode::kInvalidArgument, "'{}' is not a regular file", path);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* data = nullptr;
  if (size > 0) {
    data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      Fail(ErrorCode::kInternal, "cannot map '{}' ({} bytes): {}", path, size, std::strerror(err));
    }
  }
  ::close(fd);  // The mapping keeps the file alive.
  return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<std::uint8_t*>(data), size));
}

void MappedFile::Release(const std::uint8_t* begin, std::size_t bytes) const {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto start = std::max(reinterpret_cast<std::uintptr_t>(begin), reinterpret_cast<std::uintptr_t>(data_));
  const auto end = std::min(reinterpret_cast<std::uintptr_t>(begin) + bytes, reinterpret_cast<std::uintptr_t>(data_) + size_);
  const auto first = (start + page - 1) / page * page, last = end / page * page;
  if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (size_ > 0) ::munmap(data_, size_);
}

}  // namespace vidgen::io
