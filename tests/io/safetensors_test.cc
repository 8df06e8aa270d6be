// Safetensors files as LibTorch tensors: zero-copy reads, bit-exact round trips, sharded checkpoints, errors.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "tests/support/golden.h"
#include "tests/support/expect_error.h"

namespace vidgen::io {
namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vidgen-safetensors-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// One tensor of every dtype this LibTorch holds, with awkward values (NaN payloads, denormals, extremes).
NamedTensors EveryDType() {
  torch::manual_seed(7);
  NamedTensors tensors;
  tensors.emplace_back("f64", torch::randn({3, 5}, torch::kFloat64));
  auto f32 = torch::randn({4, 6});
  f32[0][0] = std::numeric_limits<float>::quiet_NaN();
  f32[0][1] = std::numeric_limits<float>::denorm_min();
  f32[0][2] = -std::numeric_limits<float>::infinity();
  tensors.emplace_back("f32", f32);
  tensors.emplace_back("f16", torch::randn({7}).to(torch::kHalf));
  tensors.emplace_back("bf16", torch::randn({2, 3, 4}).to(torch::kBFloat16));
  tensors.emplace_back("i64", torch::tensor({std::numeric_limits<std::int64_t>::min(), std::int64_t{0},
                                             std::numeric_limits<std::int64_t>::max()}));
  tensors.emplace_back("i32", torch::randint(-1000, 1000, {5}, torch::kInt32));
  tensors.emplace_back("i16", torch::randint(-1000, 1000, {5}, torch::kInt16));
  tensors.emplace_back("i8", torch::randint(-128, 127, {9}, torch::kInt8));
  tensors.emplace_back("u8", torch::randint(0, 255, {2, 2}, torch::kUInt8));
  tensors.emplace_back("bool", torch::rand({6}) > 0.5);
  tensors.emplace_back("scalar", torch::tensor(3.5));
  tensors.emplace_back("empty", torch::zeros({0, 4}));
  tensors.emplace_back("strided", torch::arange(24, torch::kFloat32).reshape({4, 6}).t());  // not contiguous
  return tensors;
}

bool BitEqual(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto x = a.contiguous();
  const auto y = b.contiguous();
  return x.nbytes() == y.nbytes() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

TEST_F(SafetensorsTest, RoundTripsEveryDTypeBitExactly) {
  const auto tensors = EveryDType();
  WriteSafetensors(Path("all.safetensors"), tensors, {{"format", "pt"}, {"note", "round trip"}});
  const SafetensorsFile file(Path("all.safetensors"));
  EXPECT_EQ(file.metadata().at("note"), "round trip");
  ASSERT_EQ(file.entries().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    EXPECT_TRUE(BitEqual(file.Tensor(name), tensor)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(Path("all.safetensors") + ".tmp." + std::to_string(::getpid())));
}

TEST_F(SafetensorsTest, TensorsAliasTheMappingAndOutliveTheFileObject) {
  WriteSafetensors(Path("a.safetensors"), {{"w", torch::arange(16, torch::kFloat32)}});
  torch::Tensor w;
  {
    const SafetensorsFile file(Path("a.safetensors"));
    w = file.Tensor("w");
  }
  EXPECT_TRUE(w.is_contiguous());
  w.add_(1);  // copy-on-write: changes this process's pages only
  EXPECT_TRUE(torch::equal(w, torch::arange(1, 17, torch::kFloat32)));
  EXPECT_TRUE(torch::equal(SafetensorsFile(Path("a.safetensors")).Tensor("w"), torch::arange(16, torch::kFloat32)));
}

TEST_F(SafetensorsTest, MissingTensorAndMissingFileAreNotFound) {
  WriteSafetensors(Path("a.safetensors"), {{"w", torch::ones({2})}});
  try {
    SafetensorsFile(Path("a.safetensors")).Tensor("v");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("'v'"), std::string::npos);
  }
  try {
    SafetensorsFile file(Path("none.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("none.safetensors"), std::string::npos);
  }
}

TEST_F(SafetensorsTest, WriterRefusesRepeatedNamesAndLeavesNoFile) {
  EXPECT_FAILS(WriteSafetensors(Path("dup.safetensors"), {{"w", torch::ones({1})}, {"w", torch::ones({1})}}), kInvalidArgument, "tensor name 'w' is reserved or repeated");
  EXPECT_FALSE(std::filesystem::exists(Path("dup.safetensors")));
}

TEST_F(SafetensorsTest, TruncatedFileIsRejectedWithTheFileName) {
  WriteSafetensors(Path("a.safetensors"), {{"w", torch::ones({64})}});
  std::filesystem::resize_file(Path("a.safetensors"), std::filesystem::file_size(Path("a.safetensors")) - 10);
  try {
    SafetensorsFile file(Path("a.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
}

TEST_F(SafetensorsTest, ReadsShardedIndex) {
  WriteSafetensors(Path("model-00001-of-00002.safetensors"), {{"a", torch::ones({2})}, {"b", torch::zeros({3})}});
  WriteSafetensors(Path("model-00002-of-00002.safetensors"), {{"c", torch::full({4}, 2.0)}});
  std::ofstream(Path("model.safetensors.index.json"))
      << R"({"metadata":{"total_size":36},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
      << R"("b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})";
  std::map<std::string, std::string> weight_map;
  const auto shards = ReadSafetensorsIndex(Path("model.safetensors.index.json"), &weight_map);
  ASSERT_EQ(shards.size(), 2u);
  EXPECT_EQ(shards[0], Path("model-00001-of-00002.safetensors"));
  EXPECT_EQ(weight_map.at("c"), Path("model-00002-of-00002.safetensors"));
}

TEST_F(SafetensorsTest, IndexNamingAFileOutsideItsFolderIsRefused) {
  std::ofstream(Path("model.safetensors.index.json")) << R"({"weight_map":{"a":"../../etc/passwd"}})";
  EXPECT_FAILS(ReadSafetensorsIndex(Path("model.safetensors.index.json")), kInvalidArgument, "'../../etc/passwd' is not a file name beside the index");
  std::ofstream(Path("bad.index.json")) << R"({"weight_map": 3})";
  EXPECT_FAILS(ReadSafetensorsIndex(Path("bad.index.json")), kInvalidArgument, "has no 'weight_map' object");
}

TEST(SafetensorsGoldenTest, GoldenDiTCheckpointLoads) {
  const testing::GoldenCase golden(testing::GoldenCases("wan_dit").at(0));
  const SafetensorsFile file((golden.CheckpointDir() / "diffusion_pytorch_model.safetensors").string());
  const auto tensors = file.Tensors();
  ASSERT_FALSE(tensors.empty());
  for (const auto& [name, tensor] : tensors) {
    EXPECT_TRUE(torch::isfinite(tensor.to(torch::kFloat32)).all().item<bool>()) << name;
  }
}

}  // namespace
}  // namespace vidgen::io
