// The zip directory reader on torch.save-style archives, zip64, and damaged files (also run under AddressSanitizer).
#include "models/io/zip_archive.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.h"
#include "models/io/mapped_file.h"

namespace vidgen::io {
namespace {

const std::string kFixtures = VIDGEN_FIXTURES_DIR;

std::vector<std::uint8_t> ReadFixture(const std::string& name) {
  const auto file = MappedFile::Open(kFixtures + "/" + name);
  return {file->bytes().begin(), file->bytes().end()};
}

std::string ZipError(const std::vector<std::uint8_t>& bytes) {
  try {
    ZipArchive archive(bytes, "test.pt");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "a damaged archive was accepted";
  return "";
}

std::string EntryText(const ZipArchive& archive, const std::string& name) {
  const ZipEntry* entry = archive.Find(name);
  if (!entry) return "<missing>";
  const auto data = archive.Data(*entry);
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

TEST(ZipArchiveTest, ListsStoredEntries) {
  const auto bytes = ReadFixture("tiny_state.pt");
  EXPECT_TRUE(LooksLikeZip(bytes));
  const ZipArchive archive(bytes, "tiny_state.pt");
  ASSERT_EQ(archive.entries().size(), 5u);
  EXPECT_EQ(archive.entries()[0].name, "tiny_state/data.pkl");
  EXPECT_EQ(EntryText(archive, "tiny_state/version"), "3\n");
  ASSERT_NE(archive.Find("tiny_state/data/1"), nullptr);
  EXPECT_EQ(archive.Find("tiny_state/data/1")->size, 3u * 8u);
  EXPECT_EQ(archive.Find("nope"), nullptr);
}

TEST(ZipArchiveTest, ReadsZip64Directories) {
  const auto plain_bytes = ReadFixture("tiny_state.pt");
  const auto zip64_bytes = ReadFixture("tiny_state_zip64.pt");
  const ZipArchive plain(plain_bytes, "tiny_state.pt");
  const ZipArchive zip64(zip64_bytes, "tiny_state_zip64.pt");
  ASSERT_EQ(zip64.entries().size(), plain.entries().size());
  EXPECT_EQ(EntryText(zip64, "tiny_state_zip64/data/0"), EntryText(plain, "tiny_state/data/0"));
  EXPECT_EQ(EntryText(zip64, "tiny_state_zip64/version"), "3\n");
}

TEST(ZipArchiveTest, RefusesCompressedEntries) {
  const std::string message = ZipError(ReadFixture("compressed.pt"));
  EXPECT_NE(message.find("compressed"), std::string::npos) << message;
}

TEST(ZipArchiveTest, RefusesEveryTruncation) {
  const auto bytes = ReadFixture("tiny_state.pt");
  // Every cut loses the end-of-directory record or leaves offsets pointing past the end.
  for (std::size_t size = 0; size < bytes.size(); size += 7) {
    const std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
    EXPECT_FALSE(ZipError(cut).empty()) << "cut at " << size;
  }
}

TEST(ZipArchiveTest, RefusesCorruptDirectoryFields) {
  const auto bytes = ReadFixture("tiny_state.pt");
  // Overwrite each byte of the central directory and end record with 0xFF in turn: the reader must either refuse
  // or stay inside the file (AddressSanitizer checks the latter).
  const std::size_t tail = 22 + 5 * 70;
  for (std::size_t at = bytes.size() - tail; at < bytes.size(); ++at) {
    auto damaged = bytes;
    damaged[at] = 0xFF;
    try {
      const ZipArchive archive(damaged, "damaged.pt");
      for (const auto& entry : archive.entries()) {
        ASSERT_LE(entry.data_offset + entry.size, damaged.size());
      }
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(ZipArchiveTest, RefusesFilesThatAreNotZips) {
  const std::string text = "this is not a zip archive, just some text that is long enough to search";
  const std::vector<std::uint8_t> bytes(text.begin(), text.end());
  EXPECT_FALSE(LooksLikeZip(bytes));
  EXPECT_NE(ZipError(bytes).find("no end-of-central-directory"), std::string::npos);
}

}  // namespace
}  // namespace vidgen::io
