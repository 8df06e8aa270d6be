// The safetensors header parser on well-formed and malformed bytes (also run under AddressSanitizer).
#include "models/io/safetensors_format.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.h"

namespace vidgen::io {
namespace {

std::vector<std::uint8_t> FileWithHeader(const std::string& json, std::size_t data_bytes) {
  std::vector<std::uint8_t> file(8 + json.size() + data_bytes, 0xAB);
  const std::uint64_t length = json.size();
  std::memcpy(file.data(), &length, 8);
  std::memcpy(file.data() + 8, json.data(), json.size());
  return file;
}

// Parses and returns the error message; fails the test when parsing succeeds.
std::string ParseError(const std::vector<std::uint8_t>& file) {
  try {
    ParseSafetensorsHeader(file, "test.safetensors");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "a malformed file was accepted";
  return "";
}

TEST(SafetensorsFormatTest, ParsesEntriesMetadataAndDataOffset) {
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[8,20]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"I64","shape":[0,4],"data_offsets":[20,20]}})";
  const auto header = ParseSafetensorsHeader(FileWithHeader(json, 20), "test.safetensors");
  ASSERT_EQ(header.tensors.size(), 3u);
  EXPECT_EQ(header.tensors[0].name, "b");  // header order is kept
  EXPECT_EQ(header.tensors[0].dtype, DType::kBF16);
  EXPECT_EQ(header.tensors[0].shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(header.tensors[0].begin, 8u);
  EXPECT_EQ(header.tensors[0].end, 20u);
  EXPECT_EQ(header.tensors[2].shape, (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(header.metadata.at("format"), "pt");
  EXPECT_EQ(header.data_offset, 8 + json.size());
}

TEST(SafetensorsFormatTest, EncodedHeaderParsesBackAndAlignsData) {
  std::vector<SafetensorsEntry> entries = {{"x", DType::kF16, {3}, 0, 6}, {"y", DType::kU8, {5}, 6, 11}};
  const std::string header = EncodeSafetensorsHeader(entries, {{"note", "hello"}});
  EXPECT_EQ(header.size() % 8, 0u);
  std::vector<std::uint8_t> file(header.begin(), header.end());
  file.resize(file.size() + 11);
  const auto parsed = ParseSafetensorsHeader(file, "encoded");
  ASSERT_EQ(parsed.tensors.size(), 2u);
  EXPECT_EQ(parsed.tensors[1].name, "y");
  EXPECT_EQ(parsed.tensors[1].end, 11u);
  EXPECT_EQ(parsed.metadata.at("note"), "hello");
  EXPECT_EQ(parsed.data_offset, header.size());
}

TEST(SafetensorsFormatTest, RejectsTooShortFile) {
  EXPECT_NE(ParseError({1, 2, 3}).find("too short"), std::string::npos);
}

TEST(SafetensorsFormatTest, RejectsHeaderLengthPastTheEnd) {
  auto file = FileWithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  const std::uint64_t huge = file.size();  // longer than what follows the length prefix
  std::memcpy(file.data(), &huge, 8);
  EXPECT_NE(ParseError(file).find("runs past the end"), std::string::npos);
  const std::uint64_t absurd = ~std::uint64_t{0};
  std::memcpy(file.data(), &absurd, 8);
  EXPECT_NE(ParseError(file).find("over the"), std::string::npos);
}

TEST(SafetensorsFormatTest, RejectsTruncatedData) {
  const auto file = FileWithHeader(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12);
  const std::string message = ParseError(file);
  EXPECT_NE(message.find("'a'"), std::string::npos) << message;
  EXPECT_NE(message.find("past the end"), std::string::npos) << message;
}

TEST(SafetensorsFormatTest, RejectsOverlappingTensors) {
  const auto file = FileWithHeader(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  const std::string message = ParseError(file);
  EXPECT_NE(message.find("overlap"), std::string::npos) << message;
  EXPECT_NE(message.find("'a'"), std::string::npos) << message;
  EXPECT_NE(message.find("'b'"), std::string::npos) << message;
}

TEST(SafetensorsFormatTest, FindsOverlapHiddenBehindAnEmptyTensor) {
  const auto file = FileWithHeader(
      R"({"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]},"e":{"dtype":"U8","shape":[0],"data_offsets":[50,50]},)"
      R"("b":{"dtype":"U8","shape":[60],"data_offsets":[60,120]}})",
      120);
  EXPECT_NE(ParseError(file).find("overlap"), std::string::npos);
}

TEST(SafetensorsFormatTest, RejectsUnknownDType) {
  const auto file = FileWithHeader(R"({"a":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", 4);
  EXPECT_NE(ParseError(file).find("dtype 'U16'"), std::string::npos);
}

TEST(SafetensorsFormatTest, RejectsShapeThatDoesNotMatchTheByteSpan) {
  const auto file = FileWithHeader(R"({"w":{"dtype":"F32","shape":[3,3],"data_offsets":[0,32]}})", 32);
  const std::string message = ParseError(file);
  EXPECT_NE(message.find("36 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("span 32 bytes"), std::string::npos) << message;
}

TEST(SafetensorsFormatTest, RejectsOverflowingShape) {
  const auto file = FileWithHeader(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8);
  EXPECT_NE(ParseError(file).find("too large"), std::string::npos);
}

TEST(SafetensorsFormatTest, RejectsNonJsonAndWrongJsonShapes) {
  EXPECT_NE(ParseError(FileWithHeader("{not json", 0)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ParseError(FileWithHeader("[1,2]", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(ParseError(FileWithHeader(R"({"a":3})", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(
      ParseError(FileWithHeader(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)).find("not a size"),
      std::string::npos);
  EXPECT_NE(ParseError(FileWithHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4))
                .find("end before they begin"),
            std::string::npos);
  EXPECT_NE(ParseError(FileWithHeader(R"({"a":{"dtype":"F32","shape":[1]}})", 4)).find("data_offsets"),
            std::string::npos);
  EXPECT_NE(ParseError(FileWithHeader(R"({"__metadata__":{"k":1}})", 0)).find("not a string"), std::string::npos);
}

}  // namespace
}  // namespace vidgen::io
