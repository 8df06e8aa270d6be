// torch.save archives through the restricted unpickler: values, views, zip64, refusals, golden checkpoints.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "tests/support/golden.h"

namespace vidgen::io {
namespace {

const std::string kFixtures = VIDGEN_FIXTURES_DIR;

std::map<std::string, torch::Tensor> ByName(const NamedTensors& tensors) {
  std::map<std::string, torch::Tensor> map;
  for (const auto& [name, tensor] : tensors) EXPECT_TRUE(map.emplace(name, tensor).second) << "repeated " << name;
  return map;
}

std::string CheckpointError(const std::string& path) {
  try {
    ReadTorchCheckpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << path << " was accepted";
  return "";
}

void ExpectTinyState(const std::string& file) {
  SCOPED_TRACE(file);
  const auto tensors = ByName(ReadTorchCheckpoint(kFixtures + "/" + file));
  ASSERT_EQ(tensors.size(), 7u);
  const auto range = torch::arange(12, torch::kFloat32);
  EXPECT_TRUE(torch::equal(tensors.at("module.linear.weight"), range.reshape({3, 4})));
  EXPECT_TRUE(torch::equal(tensors.at("module.linear.bias"), torch::tensor({4.f, 5.f, 6.f})));
  EXPECT_TRUE(torch::equal(tensors.at("module.transposed"), torch::tensor({{1.f, 5.f, 9.f}, {2.f, 6.f, 10.f}})));
  EXPECT_TRUE(torch::equal(tensors.at("module.ids"),
                           torch::tensor({std::int64_t{-3}, std::int64_t{7}, std::int64_t{1} << 40})));
  EXPECT_EQ(tensors.at("module.half").scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(tensors.at("module.half").to(torch::kFloat32), torch::tensor({1.f, -2.f})));
  EXPECT_EQ(tensors.at("module.scalar").dim(), 0);
  EXPECT_EQ(tensors.at("module.scalar").item<float>(), 11.f);
  EXPECT_TRUE(torch::equal(tensors.at("blocks.0"), torch::tensor({2.f, 3.f})));
}

TEST(TorchCheckpointTest, ReadsTensorsViewsAndNestedContainers) {
  ExpectTinyState("tiny_state.pt");
}

TEST(TorchCheckpointTest, ReadsZip64Archives) {
  ExpectTinyState("tiny_state_zip64.pt");
}

TEST(TorchCheckpointTest, RefusesOsSystemWithoutRunningIt) {
  const std::string message = CheckpointError(kFixtures + "/os_system.pt");
  EXPECT_NE(message.find("'posix.system'"), std::string::npos) << message;
}

TEST(TorchCheckpointTest, RefusesViewsPastTheirStorage) {
  const std::string message = CheckpointError(kFixtures + "/overreach.pt");
  EXPECT_NE(message.find("past the end of its storage"), std::string::npos) << message;
}

TEST(TorchCheckpointTest, RefusesCompressedAndNonZipFiles) {
  EXPECT_NE(CheckpointError(kFixtures + "/compressed.pt").find("compressed"), std::string::npos);
  EXPECT_NE(CheckpointError(kFixtures + "/make_fixtures.py").find("not a torch.save zip archive"), std::string::npos);
}

TEST(TorchCheckpointTest, RefusesTruncatedGoldenCheckpoint) {
  const auto source = testing::GoldenCase(testing::GoldenCases("wan_vae").at(0)).CheckpointDir() / "Wan2.1_VAE.pth";
  const auto copy =
      std::filesystem::temp_directory_path() / ("vidgen-truncated-" + std::to_string(::getpid()) + ".pth");
  std::filesystem::copy_file(source, copy, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(copy, std::filesystem::file_size(copy) / 2);
  const std::string message = CheckpointError(copy.string());
  std::filesystem::remove(copy);
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(TorchCheckpointTest, ReadsGoldenOrderedDictAndNestedModuleCheckpoints) {
  const auto wan = testing::GoldenCase(testing::GoldenCases("wan_vae").at(0)).CheckpointDir();
  const auto vae = ByName(ReadTorchCheckpoint((wan / "Wan2.1_VAE.pth").string()));
  ASSERT_FALSE(vae.empty());
  for (const auto& [name, tensor] : vae) {
    EXPECT_EQ(name.find("._metadata"), std::string::npos) << "OrderedDict attributes leaked into " << name;
    EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
  }
  const auto t5 = ByName(ReadTorchCheckpoint((wan / "models_t5_umt5-xxl-enc-bf16.pth").string()));
  ASSERT_FALSE(t5.empty());
  for (const auto& [name, tensor] : t5) EXPECT_EQ(tensor.scalar_type(), torch::kBFloat16) << name;

  const auto hunyuan = testing::GoldenCase(testing::GoldenCases("hunyuan_dit").at(0)).CheckpointDir();
  const auto dit = ByName(ReadTorchCheckpoint((hunyuan / "transformers" / "mp_rank_00_model_states.pt").string()));
  ASSERT_FALSE(dit.empty());
  for (const auto& [name, tensor] : dit) EXPECT_TRUE(name.starts_with("module.")) << name;
  EXPECT_TRUE(dit.contains("module.img_in.proj.weight"));
  EXPECT_EQ(dit.at("module.img_in.proj.weight").dim(), 5);
}

}  // namespace
}  // namespace vidgen::io

namespace vidgen::io {
namespace {

TEST(TorchCheckpointTest, WritesWhatItReads) {
  const auto path = std::filesystem::temp_directory_path() / ("vidgen-write-" + std::to_string(::getpid()) + ".pth");
  torch::manual_seed(0);
  const NamedTensors tensors = {
      {"layer.weight", torch::randn({3, 5})},
      {"layer.bias", torch::randn({5}).to(torch::kBFloat16)},
      {"half", torch::randn({2, 2, 2}).to(torch::kHalf)},
      {"steps", torch::arange(7, torch::kLong)},
      {"flags", torch::tensor({true, false, true})},
      {"transposed", torch::randn({4, 3}).t()},  // written contiguous
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 4})},
  };
  WriteTorchCheckpoint(path.string(), tensors);
  const auto read = ReadTorchCheckpoint(path.string());
  ASSERT_EQ(read.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(read[i].first, tensors[i].first);
    EXPECT_EQ(read[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(read[i].second, tensors[i].second)) << tensors[i].first;
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace vidgen::io
