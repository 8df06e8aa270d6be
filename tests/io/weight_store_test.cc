// WeightStore: gathering, renaming and loading weights into modules, with every problem reported at once.
#include "models/io/weight_store.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "models/layers/deferred.h"
#include "tests/support/expect_error.h"
#include "tests/support/golden.h"

namespace vidgen::io {
namespace {

struct TinyBlockImpl : torch::nn::Module {
  TinyBlockImpl() {
    proj = register_module("proj", torch::nn::Linear(4, 3));
    norm_weight = register_parameter("norm_weight", torch::ones({3}));
    scale = register_buffer("scale", torch::zeros({1}));
  }
  torch::nn::Linear proj{nullptr};
  torch::Tensor norm_weight, scale;
};
TORCH_MODULE(TinyBlock);

class WeightStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vidgen-weights-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

std::string LoadError(const WeightStore& store, torch::nn::Module& module) {
  try {
    store.LoadInto(module);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "the load succeeded";
  return "";
}

TEST(KeyMapTest, SubstitutesInOnePassSoThatSwapsWork) {
  const KeyMap map = {{"norm2", "norm3"}, {"norm3", "norm2"}, {"attn1.to_q", "self_attn.q"}};
  EXPECT_EQ(ApplyKeyMap(map, "blocks.0.norm2.weight"), "blocks.0.norm3.weight");
  EXPECT_EQ(ApplyKeyMap(map, "blocks.0.norm3.bias"), "blocks.0.norm2.bias");
  EXPECT_EQ(ApplyKeyMap(map, "blocks.12.attn1.to_q.weight"), "blocks.12.self_attn.q.weight");
  EXPECT_EQ(ApplyKeyMap(map, "head.weight"), "head.weight");
}

TEST(KeyMapTest, ReadsATableOfPairsWithComments) {
  const auto map = KeyTable(R"(
      # a comment line
      attn1.to_q   self_attn.q   # after a pair
      norm2        norm3
  )");
  EXPECT_EQ(map, (KeyMap{{"attn1.to_q", "self_attn.q"}, {"norm2", "norm3"}}));
  EXPECT_FAILS(KeyTable("attn1.to_q\n"), kInternal, "'attn1.to_q' is not a pair");
  EXPECT_FAILS(KeyTable("a b c\n"), kInternal, "'a b c' is not a pair");
}

TEST_F(WeightStoreTest, LoadsRenamedTensorsFromSeveralFilesAndCastsDType) {
  WriteSafetensors(Path("a.safetensors"),
                   {{"model.linear.weight", torch::arange(12.).reshape({3, 4}).to(torch::kBFloat16)},
                    {"model.linear.bias", torch::tensor({1., 2., 3.}, torch::kFloat64)}});
  WriteSafetensors(Path("b.safetensors"), {{"model.gamma", torch::full({3}, 0.5)}, {"model.scale", torch::ones({1})}});
  WeightStore store;
  store.AddFile(Path("a.safetensors"));
  store.AddFile(Path("b.safetensors"));
  store.StripPrefix("model.");
  store.Rename({{"linear", "proj"}, {"gamma", "norm_weight"}});
  TinyBlock block;
  store.LoadInto(*block);
  EXPECT_EQ(block->proj->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(block->proj->weight, torch::arange(12.f).reshape({3, 4})));
  EXPECT_TRUE(torch::equal(block->proj->bias, torch::tensor({1.f, 2.f, 3.f})));
  EXPECT_TRUE(torch::equal(block->norm_weight, torch::full({3}, 0.5f)));
  EXPECT_TRUE(torch::equal(block->scale, torch::ones({1})));
}

TEST_F(WeightStoreTest, ReportsEveryProblemAtOnceAndLeavesTheModuleUntouched) {
  WeightStore store;
  store.Add("proj.weight", torch::zeros({4, 3}), "a.safetensors");  // transposed by mistake
  store.Add("proj.bias", torch::zeros({3}), "a.safetensors");
  store.Add("extra.weight", torch::zeros({1}), "b.safetensors");
  store.Add("another", torch::zeros({1}), "b.safetensors");
  TinyBlock block;
  const auto bias_before = block->proj->bias.clone();
  const std::string message = LoadError(store, *block);
  EXPECT_NE(message.find("missing (2): norm_weight, scale"), std::string::npos) << message;
  EXPECT_NE(message.find("wrong shape (1): proj.weight (checkpoint [4, 3] in 'a.safetensors', module [3, 4])"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("unexpected (2): another, extra.weight"), std::string::npos) << message;
  EXPECT_TRUE(torch::equal(block->proj->bias, bias_before));  // nothing was copied

  WeightStore::LoadOptions lenient;
  lenient.allow_unexpected = true;
  try {
    store.LoadInto(*block, lenient);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("unexpected"), std::string::npos) << e.what();
  }
}

TEST_F(WeightStoreTest, RefusesTheSameNameFromTwoFilesAndRenameCollisions) {
  WriteSafetensors(Path("a.safetensors"), {{"w", torch::ones({1})}});
  WriteSafetensors(Path("b.safetensors"), {{"w", torch::ones({1})}, {"v", torch::ones({1})}});
  WeightStore store;
  store.AddFile(Path("a.safetensors"));
  try {
    store.AddFile(Path("b.safetensors"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("b.safetensors"), std::string::npos) << e.what();
  }
  WeightStore pair;
  pair.Add("x.w", torch::ones({1}), "m");
  pair.Add("y.w", torch::ones({1}), "m");
  EXPECT_FAILS(pair.Rename({{"x.", ""}, {"y.", ""}}), kInvalidArgument, "gives two the name 'w'");
}

TEST_F(WeightStoreTest, LoadsShardedIndexAndChecksItsMap) {
  WriteSafetensors(Path("m-1.safetensors"), {{"proj.weight", torch::ones({3, 4})}, {"proj.bias", torch::ones({3})}});
  WriteSafetensors(Path("m-2.safetensors"), {{"norm_weight", torch::ones({3})}, {"scale", torch::ones({1})}});
  std::ofstream(Path("m.safetensors.index.json"))
      << R"({"weight_map":{"proj.weight":"m-1.safetensors","proj.bias":"m-1.safetensors",)"
      << R"("norm_weight":"m-2.safetensors","scale":"m-2.safetensors"}})";
  WeightStore store;
  store.AddFile(Path("m.safetensors.index.json"));
  EXPECT_EQ(store.size(), 4u);
  TinyBlock block;
  store.LoadInto(*block);
  EXPECT_TRUE(torch::equal(block->proj->weight, torch::ones({3, 4})));

  std::ofstream(Path("wrong.safetensors.index.json"))
      << R"({"weight_map":{"proj.weight":"m-2.safetensors","norm_weight":"m-2.safetensors","scale":"m-2.safetensors"}})";
  WeightStore wrong;
  EXPECT_FAILS(wrong.AddFile(Path("wrong.safetensors.index.json")), kInvalidArgument, "which does not hold it");
}

TEST(WeightStoreGoldenTest, SelectsTheModulePrefixOfHunyuanCheckpoint) {
  const auto dir = testing::GoldenCase(testing::GoldenCases("hunyuan_dit").at(0)).CheckpointDir();
  WeightStore store;
  store.AddFile((dir / "transformers" / "mp_rank_00_model_states.pt").string());
  const std::size_t count = store.size();
  store.SelectPrefix("module.");
  EXPECT_EQ(store.size(), count);
  EXPECT_TRUE(store.Contains("img_in.proj.weight"));
  EXPECT_FALSE(store.Contains("module.img_in.proj.weight"));
  try {
    store.Get("module.img_in.proj.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace vidgen::io

namespace vidgen::io {
namespace {

// The resident bytes of the mapping that holds `address`, from /proc/self/smaps.
std::int64_t ResidentBytesOfMapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t start = 0, end = 0;
    // A mapping's first line: "start-end perms offset device inode path".
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2) {
      inside = at >= start && at < end;
      continue;
    }
    std::int64_t kib = 0;
    if (inside && std::sscanf(line.c_str(), "Rss: %ld kB", &kib) == 1) return kib * 1024;
  }
  return -1;
}

TEST(DeferredInitTest, ModulesBuiltDeferredHoldNoMemoryUntilLoaded) {
  torch::nn::Linear linear{nullptr};
  torch::nn::Conv3d conv{nullptr};
  torch::nn::Embedding embedding{nullptr};
  {
    layers::DeferredInit deferred;
    EXPECT_TRUE(layers::DeferredInit::active());
    linear = layers::Linear(512, 256);
    conv = layers::Conv3d(torch::nn::Conv3dOptions(4, 8, {1, 2, 2}).stride({1, 2, 2}));
    embedding = layers::Embedding(1000, 16);
  }
  EXPECT_FALSE(layers::DeferredInit::active());
  for (const auto& [tensor, sizes] :
       std::vector<std::pair<at::Tensor, std::vector<std::int64_t>>>{{linear->weight, {256, 512}},
                                                                     {linear->bias, {256}},
                                                                     {conv->weight, {8, 4, 1, 2, 2}},
                                                                     {conv->bias, {8}},
                                                                     {embedding->weight, {1000, 16}}}) {
    EXPECT_EQ(tensor.sizes().vec(), sizes);
    EXPECT_TRUE(layers::IsPlaceholder(tensor));
    EXPECT_LE(tensor.storage().nbytes(), 4u);
  }
  EXPECT_EQ(conv->options.in_channels(), 4);
  EXPECT_EQ(embedding->options.num_embeddings(), 1000);
  layers::CastParameters(*linear, torch::kBFloat16);
  EXPECT_EQ(linear->weight.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(layers::IsPlaceholder(linear->weight));
  // Outside a DeferredInit: ordinary, initialised modules.
  const auto ordinary = layers::Linear(512, 256);
  EXPECT_FALSE(layers::IsPlaceholder(ordinary->weight));
  EXPECT_GT(ordinary->weight.std().item<double>(), 0.0);
}

class DeferredLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("vidgen-deferred-" + std::to_string(::getpid()) + ".safetensors");
    weight_ = torch::randn({1024, 1024});  // 4 MiB in fp32
    bias_ = torch::randn({1024});
    WriteSafetensors(path_.string(), {{"weight", weight_}, {"bias", bias_}});
  }
  void TearDown() override { std::filesystem::remove(path_); }
  static torch::nn::Linear Deferred() {
    layers::DeferredInit deferred;
    return layers::Linear(1024, 1024);
  }
  std::filesystem::path path_;
  at::Tensor weight_, bias_;
};

TEST_F(DeferredLoadTest, ATensorThatFitsIsUsedStraightFromTheMappedFile) {
  WeightStore store;
  store.AddFile(path_.string());
  auto linear = Deferred();
  store.LoadInto(*linear);
  EXPECT_EQ(linear->weight.data_ptr(), store.Get("weight").data_ptr()) << "copied, not aliased";
  EXPECT_TRUE(torch::equal(linear->weight, weight_));
  EXPECT_TRUE(torch::equal(linear->bias, bias_));
}

TEST_F(DeferredLoadTest, AConvertedTensorIsFilledAndItsFilePagesAreLetGo) {
  WeightStore store;
  store.AddFile(path_.string());
  auto linear = Deferred();
  layers::CastParameters(*linear, torch::kBFloat16);
  const void* mapped = store.Get("weight").data_ptr();
  store.LoadInto(*linear, {.allow_unexpected = false, .what = "a Linear", .device = c10::Device(c10::kCPU)});
  EXPECT_EQ(linear->weight.scalar_type(), torch::kBFloat16);
  EXPECT_FALSE(layers::IsPlaceholder(linear->weight));
  EXPECT_TRUE(torch::equal(linear->weight, weight_.to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(linear->bias, bias_.to(torch::kBFloat16)));
  // Read to convert, then released: the file's 4 MiB are no longer resident in this process.
  const auto resident = ResidentBytesOfMapping(mapped);
  ASSERT_GE(resident, 0) << "no mapping holds the tensor";
  EXPECT_LT(resident, 64 << 10);
  EXPECT_TRUE(torch::equal(store.Get("weight"), weight_)) << "released pages read back from the file";
}

// A parameter that views part of a larger matrix (fused projections) is filled where it is, and stays a view.
TEST_F(DeferredLoadTest, AParameterWithItsMemoryIsWrittenInPlace) {
  WeightStore store;
  store.AddFile(path_.string());
  auto linear = Deferred();
  layers::CastParameters(*linear, torch::kBFloat16);
  const auto fused = torch::zeros({2048, 1024}, torch::kBFloat16);
  linear->weight.set_data(fused.narrow(0, 1024, 1024));
  store.LoadInto(*linear, {.allow_unexpected = false, .what = "a Linear", .device = c10::Device(c10::kCPU)});
  EXPECT_TRUE(linear->weight.is_alias_of(fused));
  EXPECT_TRUE(torch::equal(fused.narrow(0, 1024, 1024), weight_.to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(fused.narrow(0, 0, 1024), torch::zeros({1024, 1024}, torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(linear->bias, bias_.to(torch::kBFloat16)));  // the placeholder got a tensor of its own
  EXPECT_FALSE(layers::IsPlaceholder(linear->bias));
}

TEST_F(DeferredLoadTest, AConcatenationIsWrittenPartByPartAndNeverMade) {
  WeightStore store;
  store.AddFile(path_.string());
  const auto weight = store.Get("weight"), bias = store.Get("bias");
  store.Erase("weight");
  store.Erase("bias");
  store.AddConcatenation("weight", {weight.narrow(0, 0, 256), weight.narrow(0, 256, 768)}, "q, kv");
  store.AddConcatenation("bias", {bias.narrow(0, 0, 1000), bias.narrow(0, 1000, 24)}, "q, kv");
  EXPECT_EQ(store.Get("weight").device().type(), c10::kMeta);
  EXPECT_EQ(store.Get("weight").sizes(), weight_.sizes());
  auto linear = Deferred();
  layers::CastParameters(*linear, torch::kBFloat16);
  store.LoadInto(*linear, {.allow_unexpected = false, .what = "a Linear", .device = c10::Device(c10::kCPU)});
  EXPECT_TRUE(torch::equal(linear->weight, weight_.to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(linear->bias, bias_.to(torch::kBFloat16)));
  const auto resident = ResidentBytesOfMapping(weight.data_ptr());
  ASSERT_GE(resident, 0) << "no mapping holds the parts";
  EXPECT_LT(resident, 64 << 10) << "the parts' file pages were kept";

  EXPECT_FAILS(store.AddConcatenation("bad", {torch::zeros({2, 3}), torch::zeros({2, 4})}, "x.safetensors"),
               kInvalidArgument, "the parts of 'bad' in 'x.safetensors' do not stack: [2, 3] and [2, 4]");
  WeightStore misfit;
  misfit.AddConcatenation("weight", {torch::zeros({1000, 1024}), torch::zeros({1000, 1024})}, "q, kv");
  misfit.Add("bias", torch::zeros({1024}), "b");
  auto other = Deferred();
  EXPECT_NE(LoadError(misfit, *other).find("weight (checkpoint [2000, 1024] in 'q, kv', module [1024, 1024])"),
            std::string::npos);
}

}  // namespace
}  // namespace vidgen::io
