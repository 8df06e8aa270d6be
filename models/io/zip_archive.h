// ZipArchive: the directory of a zip file held in memory, for the archives that torch.save writes. Entries must be
// stored (uncompressed), as torch.save writes them, so that their bytes can be used in place. Zip64 is supported
// (checkpoints above 4 GiB need it).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vidgen::io {

struct ZipEntry {
  std::string name;
  std::uint64_t data_offset = 0;  // where the entry's bytes start in the file
  std::uint64_t size = 0;
};

class ZipArchive {
 public:
  // Reads the central directory of `file`. Throws Error(INVALID_ARGUMENT) naming `source` when the file is not a
  // zip archive, is truncated, is split over disks, or holds an entry that is compressed, encrypted or out of range.
  // `file` must outlive the archive.
  ZipArchive(std::span<const std::uint8_t> file, std::string_view source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when there is no entry of that name.
  const ZipEntry* Find(std::string_view name) const;
  std::span<const std::uint8_t> Data(const ZipEntry& entry) const {
    return file_.subspan(entry.data_offset, entry.size);
  }

 private:
  std::span<const std::uint8_t> file_;
  std::vector<ZipEntry> entries_;
};

// True when `file` starts like a zip archive (a local file header).
bool LooksLikeZip(std::span<const std::uint8_t> file);

}  // namespace vidgen::io
