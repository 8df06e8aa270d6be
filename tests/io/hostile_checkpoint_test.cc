// Crafted torch.save archives (issue 14): views that would clone into terabytes, pickles that multiply paths to one
// tensor, tensors of 100,001 dimensions. Each is refused with a clear error before anything large is allocated.
#include <sys/resource.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "tests/support/crafted_files.h"

namespace vidgen::io {
namespace {

using namespace std::string_literals;

using testing::Pickle;

class HostileCheckpointTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove(path_); }

  // Writes {"w": <what `build` adds>} with a 16-float storage and returns the loader's error.
  std::string ErrorOf(const std::function<void(Pickle&)>& build) {
    Pickle pickle;
    pickle.Op("}(").Str("w");
    build(pickle);
    pickle.Op("u.");
    WriteTorchArchive(path_.string(), pickle.bytes(), {std::string(16 * sizeof(float), '\0')});
    return LoadError();
  }

  std::string LoadError(std::int64_t* rss_growth_kb = nullptr) {
    const auto before = PeakRssKb();
    try {
      ReadTorchCheckpoint(path_.string());
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      if (rss_growth_kb) *rss_growth_kb = PeakRssKb() - before;
      return e.what();
    }
    ADD_FAILURE() << "a crafted checkpoint was accepted";
    return "";
  }

  static std::int64_t PeakRssKb() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
  }

  std::filesystem::path path_ =
      std::filesystem::temp_directory_path() / ("vidgen-hostile-" + std::to_string(::getpid()) + ".pt");
};

TEST_F(HostileCheckpointTest, StrideZeroViewsAreRefusedNotCloned) {
  // 2^20 × 2^20 floats over one element: a clone would be 4 TB.
  testing::WriteStrideZeroCheckpoint(path_);
  const auto message = LoadError();
  EXPECT_NE(message.find("overlapping strides"), std::string::npos) << message;
  EXPECT_NE(ErrorOf([](Pickle& p) { p.Tensor(16, 0, {4, 4}, {1, 2}); }).find("overlapping"), std::string::npos);
  EXPECT_NE(ErrorOf([](Pickle& p) { p.Tensor(16, 17, {0}, {1}); }).find("storage offset"), std::string::npos);
  EXPECT_NE(ErrorOf([](Pickle& p) { p.Tensor(16, 0, {4, 5}, {5, 1}); }).find("past the end"), std::string::npos);
}

TEST_F(HostileCheckpointTest, SlicedAndTransposedViewsStillLoad) {
  // A column slice [4, 2] of a [4, 4] storage, and its transpose: not dense, but no element twice.
  Pickle pickle;
  pickle.Op("}(").Str("slice").Tensor(16, 1, {4, 2}, {4, 1}).Str("t").Tensor(16, 0, {4, 4}, {1, 4}).Op("u.");
  std::string storage(16 * sizeof(float), '\0');
  for (int i = 0; i < 16; ++i) reinterpret_cast<float*>(storage.data())[i] = static_cast<float>(i);
  WriteTorchArchive(path_.string(), pickle.bytes(), {storage});
  const auto tensors = ReadTorchCheckpoint(path_.string());
  ASSERT_EQ(tensors.size(), 2u);
  const auto full = torch::arange(16, torch::kFloat).view({4, 4});
  EXPECT_TRUE(torch::equal(tensors[0].second, full.slice(1, 1, 3)));
  EXPECT_TRUE(torch::equal(tensors[1].second, full.t()));
}

TEST_F(HostileCheckpointTest, PathsMultipliedToOneTensorAreBounded) {
  // One tensor, a list of it 256 times, a list of that 256 times, and again: 16.7 million names.
  testing::WriteMultipliedPathsCheckpoint(path_);
  std::int64_t growth_kb = 0;
  const auto message = LoadError(&growth_kb);
  EXPECT_NE(message.find("more than 100000 tensors"), std::string::npos) << message;
  EXPECT_LT(growth_kb, 100 * 1024) << "peak resident memory grew by " << growth_kb << " KiB";
}

TEST_F(HostileCheckpointTest, OneLongKeyRecalledManyTimesIsNotCopied) {
  testing::WriteSharedStringCheckpoint(path_);  // 100 GB if each recall copied the 1 MiB key
  const auto tensors = ReadTorchCheckpoint(path_.string());
  ASSERT_EQ(tensors.size(), 1u);
  // By append: GCC 12 sees a false overflow (-Warray-bounds) in "w." + std::string(n, 'k') inlined amid LibTorch 2.6.
  std::string key = "w.";
  key.append(1 << 20, 'k');
  EXPECT_EQ(tensors[0].first, key);
}

TEST_F(HostileCheckpointTest, TensorsOfTooManyDimensionsAreRefused) {
  const std::vector<std::int32_t> ones(100'001, 1);
  const auto message = ErrorOf([&](Pickle& p) { p.Tensor(16, 0, ones, ones); });
  EXPECT_NE(message.find("more than 16 dimensions"), std::string::npos) << message;
}

}  // namespace
}  // namespace vidgen::io
