// The server's memory estimate against what a job really takes on CPU: `vidgen-bench memory --estimate` probes as
// vidgen-worker does at start, runs the job in the same process and reports both.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vidgen::testing {
namespace {

nlohmann::json MemoryBench(const std::string& flags) {
  const auto command =
      fmt::format("{} memory --model-dir {} --dtype fp32 --threads 2 --steps 2 --estimate --json {} 2>/dev/null",
                  VIDGEN_BENCH_BIN, VIDGEN_TINY_MODEL, flags);
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  EXPECT_EQ(::pclose(pipe), 0) << command << "\n" << output;
  return nlohmann::json::parse(output);
}

TEST(MemoryBenchTest, TheEstimateIsWithinAFifthOfTheMeasuredPeakAtSeveralSizes) {
  for (const std::string size : {"--size 64x64 --frames 9", "--size 128x128 --frames 65", "--size 192x192 --frames 17",
                                 "--size 256x256 --frames 33"}) {
    const auto report = MemoryBench(size);
    const auto& estimate = report.at("estimate");
    const double measured = estimate.at("measured_peak_bytes").get<double>();
    const double estimated = estimate.at("peak_bytes").get<double>();
    EXPECT_NEAR(estimated / measured, 1.0, 0.2) << size << ": " << estimate.dump();
    EXPECT_GT(estimate.at("decode_bytes").get<double>(), 0) << size;
    EXPECT_GT(estimate.at("denoise_bytes").get<double>(), 0) << size;
  }
}

}  // namespace
}  // namespace vidgen::testing
