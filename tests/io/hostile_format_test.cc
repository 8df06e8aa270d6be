// Crafted checkpoint bytes built to crash, hang or exhaust a parser (issue 14: deep nesting, quadratic headers,
// memory amplification through shared references): each is refused or read in bounded time and memory. LibTorch-free,
// so `make test` runs these under AddressSanitizer too.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/json.h"
#include "models/io/pickle.h"
#include "models/io/safetensors_format.h"

namespace vidgen::io {
namespace {

using namespace std::string_literals;

std::vector<std::uint8_t> FileWithHeader(const std::string& json, std::size_t data_bytes = 0) {
  std::vector<std::uint8_t> file(8 + json.size() + data_bytes, 0);
  const std::uint64_t length = json.size();
  std::memcpy(file.data(), &length, 8);
  std::memcpy(file.data() + 8, json.data(), json.size());
  return file;
}

template <typename Call>
std::string ErrorOf(Call&& call) {
  try {
    call();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "crafted bytes were accepted";
  return "";
}

TEST(HostileSafetensorsTest, DeepShapeNestingIsRefusedWithoutRecursion) {
  const int depth = 500'000;
  const std::string json = R"({"x":{"dtype":"F32","shape":)" + std::string(depth, '[') + std::string(depth, ']') +
                           R"(,"data_offsets":[0,0]}})";
  const auto message = ErrorOf([&] { ParseSafetensorsHeader(FileWithHeader(json), "deep.safetensors"); });
  EXPECT_NE(message.find("'x' has a shape entry that is not a size"), std::string::npos) << message;
  // Deep in the metadata and at the top, too.
  const std::string metadata = R"({"__metadata__":{"a":)" + std::string(depth, '[') + std::string(depth, ']') + "}}";
  EXPECT_NE(ErrorOf([&] { ParseSafetensorsHeader(FileWithHeader(metadata), "deep.safetensors"); }).find("__metadata__"),
            std::string::npos);
  const std::string top = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_NE(ErrorOf([&] { ParseSafetensorsHeader(FileWithHeader(top), "deep.safetensors"); }).find("not a JSON object"),
            std::string::npos);
}

// 100,000 tensors: a parse that searched its map on every insert would take minutes (80,000 took 32 s).
TEST(HostileSafetensorsTest, ManyTensorsParseInLinearTime) {
  const int count = 100'000;
  std::string json = "{";
  for (int i = 0; i < count; ++i) {
    json += fmt::format(R"({}"t{}":{{"dtype":"U8","shape":[1],"data_offsets":[{},{}]}})", i ? "," : "", i, i, i + 1);
  }
  json += "}";
  const auto header = ParseSafetensorsHeader(FileWithHeader(json, count), "many.safetensors");
  ASSERT_EQ(header.tensors.size(), static_cast<std::size_t>(count));
  EXPECT_EQ(header.tensors.back().name, "t99999");
  // A name twice is refused, not silently replaced.
  const std::string twice = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                            R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
  EXPECT_NE(ErrorOf([&] { ParseSafetensorsHeader(FileWithHeader(twice, 2), "twice.safetensors"); }).find("twice"),
            std::string::npos);
}

TEST(HostileSafetensorsTest, TooManyDimensionsAreRefused) {
  std::string shape = "[1";
  for (int i = 1; i < 100'001; ++i) shape += ",1";
  shape += "]";
  const std::string json = R"({"x":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,1]}})";
  const auto message = ErrorOf([&] { ParseSafetensorsHeader(FileWithHeader(json, 1), "dims.safetensors"); });
  EXPECT_NE(message.find("more than 16 dimensions"), std::string::npos) << message;
}

TEST(HostileJsonTest, DeepConfigIsRefusedBeforeAnythingRecursive) {
  const int depth = 500'000;
  const std::string json = R"({"dim": )" + std::string(depth, '[') + std::string(depth, ']') + "}";
  const auto message = ErrorOf([&] { ParseJson(json, "config.json"); });
  EXPECT_NE(message.find("config.json nests JSON deeper than 64"), std::string::npos) << message;
  EXPECT_EQ(ParseJson(std::string(64, '[') + std::string(64, ']'), "ok").dump().size(), 128u);
  std::string wide = "[1";
  for (int i = 0; i < 10'000; ++i) wide += ",1";
  EXPECT_EQ(JsonExcerpt(ParseJson(wide + "]", "wide")).size(), 83u);
  EXPECT_LT(ErrorOf([&] { ParseJson(std::string(100'000, '1'), "long"); }).size(), 300u);
}

// Pickle opcodes, spelled out.
std::string Utf8(const std::string& text) {
  std::string out = "X";
  const auto size = static_cast<std::uint32_t>(text.size());
  out.append(reinterpret_cast<const char*>(&size), 4);
  return out + text;
}

TEST(HostilePickleTest, SharedStringsAreNotCopied) {
  // A 1 MiB string, memoised, then referred to 200,000 times by DUP and by memo recall: 200 GB if each reference
  // copied it.
  std::string pickle = "\x80\x02("s + Utf8(std::string(1 << 20, 's')) + "q\x00"s;
  for (int i = 0; i < 100'000; ++i) pickle += "2h\x00"s;
  pickle += "l.";
  const auto document = pickle::Load({reinterpret_cast<const std::uint8_t*>(pickle.data()), pickle.size()}, "dup.pkl");
  const auto* list = std::get<pickle::List*>(document.root());
  ASSERT_EQ(list->items.size(), 200'001u);
  EXPECT_EQ(pickle::AsString(list->items.front()), pickle::AsString(list->items.back()));  // one string, shared
}

TEST(HostilePickleTest, DictsKeyedByOneLongStringShareIt) {
  // 20,000 dicts each keyed by the same 60 KB string (1.2 GB if every dict copied its key), and a dict of 200,000
  // integer keys (quadratic if keys were compared one by one).
  std::string pickle = "\x80\x02("s + Utf8(std::string(60'000, 'k')) + "q\x00\x30"s;
  for (int i = 0; i < 20'000; ++i) pickle += "}h\x00N\x73"s;  // {key: None}
  pickle += "l}(";
  for (std::int32_t i = 0; i < 200'000; ++i) {
    pickle += 'J';
    pickle.append(reinterpret_cast<const char*>(&i), 4);
    pickle += 'N';
  }
  pickle += "u\x86.";
  const auto document = pickle::Load({reinterpret_cast<const std::uint8_t*>(pickle.data()), pickle.size()}, "keys.pkl");
  const auto* pair = std::get<pickle::List*>(document.root());
  const auto* dicts = std::get<pickle::List*>(pair->items[0]);
  ASSERT_EQ(dicts->items.size(), 20'000u);
  EXPECT_NE(std::get<pickle::Dict*>(dicts->items.back())->Find(std::string(60'000, 'k')), nullptr);
  EXPECT_EQ(std::get<pickle::Dict*>(pair->items[1])->items.size(), 200'000u);
}

TEST(HostilePickleTest, BuildingTooManyValuesIsRefused) {
  std::string pickle = "\x80\x02(N"s + std::string(pickle::kMaxValues, '2') + "l.";
  const auto message = ErrorOf([&] {
    pickle::Load({reinterpret_cast<const std::uint8_t*>(pickle.data()), pickle.size()}, "many.pkl");
  });
  EXPECT_NE(message.find("more than 1000000 values"), std::string::npos) << message;
  // Sparse memo indices cost nothing until used.
  const std::string sparse = "\x80\x02Nr\xff\xff\xff\xffj\xff\xff\xff\xff\x86."s;
  EXPECT_NO_THROW(pickle::Load({reinterpret_cast<const std::uint8_t*>(sparse.data()), sparse.size()}, "sparse.pkl"));
}

}  // namespace
}  // namespace vidgen::io
