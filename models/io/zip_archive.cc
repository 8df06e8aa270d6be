#include "models/io/zip_archive.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace vidgen::io {
namespace {

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kEndOfDirectorySignature = 0x06054b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint32_t kZip64EndOfDirectorySignature = 0x06064b50;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::size_t kEndOfDirectoryBytes = 22;
constexpr std::size_t kCentralHeaderBytes = 46;
constexpr std::size_t kLocalHeaderBytes = 30;
constexpr std::size_t kZip64LocatorBytes = 20;
constexpr std::size_t kZip64EndOfDirectoryBytes = 56;
constexpr std::size_t kMaxCommentBytes = 0xFFFF;

// Bounds-checked little-endian reads from the file.
class Bytes {
 public:
  Bytes(std::span<const std::uint8_t> file, std::string_view source) : file_(file), source_(source) {}

  template <typename T>
  T Read(std::uint64_t offset) const {
    Require(offset, sizeof(T), "a zip record");
    T value;
    std::memcpy(&value, file_.data() + offset, sizeof(T));
    return value;
  }
  std::string_view String(std::uint64_t offset, std::uint64_t size) const {
    Require(offset, size, "an entry name");
    return {reinterpret_cast<const char*>(file_.data() + offset), size};
  }
  void Require(std::uint64_t offset, std::uint64_t size, std::string_view what) const {
    if (offset > file_.size() || size > file_.size() - offset) {
      Fail(ErrorCode::kInvalidArgument,
           "zip archive '{}' is truncated or corrupt: {} at offset {} ({} bytes) lies "
           "past the end of the {}-byte file",
           source_, what, offset, size, file_.size());
    }
  }
  [[noreturn]] void Corrupt(std::string_view what) const {
    Fail(ErrorCode::kInvalidArgument, "zip archive '{}' is corrupt: {}", source_, what);
  }
  std::size_t size() const { return file_.size(); }
  std::string_view source() const { return source_; }

 private:
  std::span<const std::uint8_t> file_;
  std::string_view source_;
};

struct Directory {
  std::uint64_t entries = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

Directory FindDirectory(const Bytes& bytes) {
  if (bytes.size() < kEndOfDirectoryBytes) {
    Fail(ErrorCode::kInvalidArgument, "'{}' is not a zip archive: {} bytes is too short", bytes.source(), bytes.size());
  }
  // The end-of-directory record sits at the end, before a comment of at most 64 KiB.
  const std::uint64_t last = bytes.size() - kEndOfDirectoryBytes;
  const std::uint64_t first = last > kMaxCommentBytes ? last - kMaxCommentBytes : 0;
  std::uint64_t end = last + 1;
  for (std::uint64_t at = last + 1; at-- > first;) {
    if (bytes.Read<std::uint32_t>(at) == kEndOfDirectorySignature) {
      end = at;
      break;
    }
  }
  if (end > last) {
    Fail(ErrorCode::kInvalidArgument, "'{}' is not a zip archive or is truncated: no end-of-central-directory record",
         bytes.source());
  }

  if (bytes.Read<std::uint16_t>(end + 4) != 0 || bytes.Read<std::uint16_t>(end + 6) != 0) {
    bytes.Corrupt("archives split over several disks are not supported");
  }
  Directory directory{bytes.Read<std::uint16_t>(end + 10), bytes.Read<std::uint32_t>(end + 16),
                      bytes.Read<std::uint32_t>(end + 12)};
  const bool zip64 = directory.entries == 0xFFFF || directory.offset == 0xFFFFFFFF || directory.size == 0xFFFFFFFF;
  if (!zip64) return directory;

  if (end < kZip64LocatorBytes || bytes.Read<std::uint32_t>(end - kZip64LocatorBytes) != kZip64LocatorSignature) {
    bytes.Corrupt("zip64 sizes without a zip64 end-of-directory locator");
  }
  const auto record = bytes.Read<std::uint64_t>(end - kZip64LocatorBytes + 8);
  bytes.Require(record, kZip64EndOfDirectoryBytes, "the zip64 end-of-directory record");
  if (bytes.Read<std::uint32_t>(record) != kZip64EndOfDirectorySignature) {
    bytes.Corrupt("bad zip64 end-of-directory signature");
  }
  return {bytes.Read<std::uint64_t>(record + 32), bytes.Read<std::uint64_t>(record + 48),
          bytes.Read<std::uint64_t>(record + 40)};
}

}  // namespace

ZipArchive::ZipArchive(std::span<const std::uint8_t> file, std::string_view source) : file_(file) {
  const Bytes bytes(file, source);
  const Directory directory = FindDirectory(bytes);
  bytes.Require(directory.offset, directory.size, "the central directory");
  // Each entry takes at least kCentralHeaderBytes, which bounds a hostile entry count before we reserve.
  if (directory.entries > directory.size / kCentralHeaderBytes) {
    bytes.Corrupt(fmt::format("{} entries cannot fit a {}-byte central directory", directory.entries, directory.size));
  }
  entries_.reserve(directory.entries);

  std::uint64_t at = directory.offset;
  for (std::uint64_t i = 0; i < directory.entries; ++i) {
    if (bytes.Read<std::uint32_t>(at) != kCentralHeaderSignature) {
      bytes.Corrupt(fmt::format("bad central directory header at offset {}", at));
    }
    const auto flags = bytes.Read<std::uint16_t>(at + 8);
    const auto method = bytes.Read<std::uint16_t>(at + 10);
    std::uint64_t compressed = bytes.Read<std::uint32_t>(at + 20);
    std::uint64_t size = bytes.Read<std::uint32_t>(at + 24);
    const auto name_bytes = bytes.Read<std::uint16_t>(at + 28);
    const auto extra_bytes = bytes.Read<std::uint16_t>(at + 30);
    const auto comment_bytes = bytes.Read<std::uint16_t>(at + 32);
    std::uint64_t local = bytes.Read<std::uint32_t>(at + 42);
    ZipEntry entry;
    entry.name = std::string(bytes.String(at + kCentralHeaderBytes, name_bytes));

    // The zip64 extra field holds, in this order, whichever of the three fields overflowed 32 bits.
    const std::uint64_t extra_end = at + kCentralHeaderBytes + name_bytes + extra_bytes;
    for (std::uint64_t field = at + kCentralHeaderBytes + name_bytes; field + 4 <= extra_end;) {
      const auto id = bytes.Read<std::uint16_t>(field);
      const auto field_bytes = bytes.Read<std::uint16_t>(field + 2);
      if (id == kZip64ExtraId) {
        std::uint64_t value_at = field + 4;
        for (std::uint64_t* value : {&size, &compressed, &local}) {
          if (*value != 0xFFFFFFFF) continue;
          if (value_at + 8 > field + 4 + field_bytes) bytes.Corrupt("short zip64 extra field for " + entry.name);
          *value = bytes.Read<std::uint64_t>(value_at);
          value_at += 8;
        }
      }
      field += 4 + field_bytes;
    }

    if (flags & 0x1) bytes.Corrupt(fmt::format("entry '{}' is encrypted", entry.name));
    if (method != 0 || compressed != size) {
      bytes.Corrupt(
          fmt::format("entry '{}' is compressed (method {}); torch.save archives store entries "
                      "uncompressed",
                      entry.name, method));
    }
    if (bytes.Read<std::uint32_t>(local) != kLocalHeaderSignature) {
      bytes.Corrupt(fmt::format("bad local header for entry '{}' at offset {}", entry.name, local));
    }
    entry.data_offset =
        local + kLocalHeaderBytes + bytes.Read<std::uint16_t>(local + 26) + bytes.Read<std::uint16_t>(local + 28);
    entry.size = size;
    bytes.Require(entry.data_offset, entry.size, fmt::format("the data of entry '{}'", entry.name));
    entries_.push_back(std::move(entry));
    at = extra_end + comment_bytes;
  }
}

const ZipEntry* ZipArchive::Find(std::string_view name) const {
  const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const ZipEntry& e) { return e.name == name; });
  return it == entries_.end() ? nullptr : &*it;
}

bool LooksLikeZip(std::span<const std::uint8_t> file) {
  std::uint32_t signature = 0;
  if (file.size() >= 4) std::memcpy(&signature, file.data(), 4);
  return signature == kLocalHeaderSignature;
}

}  // namespace vidgen::io
