// The sentencepiece model check on the committed models and on crafted corruptions of their character maps (also run
// under AddressSanitizer).
#include "models/io/sentencepiece_model.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.h"
#include "models/io/mapped_file.h"

namespace vidgen::io {
namespace {

std::vector<std::uint8_t> DemoModel() {
  const auto file = MappedFile::Open(std::string(VIDGEN_DEMO_MODEL) + "/google/umt5-xxl/spiece.model");
  return {file->bytes().begin(), file->bytes().end()};
}

std::string CheckError(const std::vector<std::uint8_t>& model) {
  try {
    CheckSentencePieceModel(model, "spiece.model");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "a corrupt model was accepted";
  return "";
}

void PutUnit(std::vector<std::uint8_t>& model, const CharsMapSpan& map, std::size_t index, std::uint32_t unit) {
  std::memcpy(model.data() + map.offset + 4 + 4 * index, &unit, 4);
}

TEST(SentencePieceModelTest, TheCommittedModelsPass) {
  const auto model = DemoModel();
  const auto maps = CheckSentencePieceModel(model, "demo");
  ASSERT_FALSE(maps.empty());  // trained with nmt_nfkc: it has a normaliser map
  EXPECT_GT(maps.front().size, 1000u);
}

TEST(SentencePieceModelTest, CorruptCharacterMapsAreRefused) {
  const auto original = DemoModel();
  const auto map = CheckSentencePieceModel(original, "demo").front();
  std::uint32_t trie_bytes = 0;
  std::memcpy(&trie_bytes, original.data() + map.offset, 4);

  auto model = original;  // the root's children far outside the trie
  PutUnit(model, map, 0, 0xFFFFFC00u);
  EXPECT_NE(CheckError(model).find("outside its"), std::string::npos);

  model = original;  // a trie longer than the map
  const std::uint32_t too_long = static_cast<std::uint32_t>(map.size);
  std::memcpy(model.data() + map.offset, &too_long, 4);
  EXPECT_NE(CheckError(model).find("does not fit"), std::string::npos);

  model = original;  // replacement strings that never end: every prompt would read on and on
  for (std::size_t i = map.offset + 4 + trie_bytes; i < map.offset + map.size; ++i) {
    if (model[i] == 0) model[i] = 'a';
  }
  EXPECT_NE(CheckError(model).find("does not end"), std::string::npos);

  model = original;  // the message names the model
  std::memset(model.data() + map.offset + 4, 0xFF, 64);
  EXPECT_NE(CheckError(model).find("spiece.model"), std::string::npos);
}

TEST(SentencePieceModelTest, MalformedProtobufIsRefused) {
  auto model = DemoModel();
  model.resize(model.size() / 2);
  EXPECT_NE(CheckError(model).find("malformed"), std::string::npos);
  EXPECT_NE(CheckError({0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}).find("runs past the end"), std::string::npos);
}

}  // namespace
}  // namespace vidgen::io
