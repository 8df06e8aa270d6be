// The tools on crafted checkpoint files (issue 14): vidgen-inspect, vidgen-generate and vidgen-worker refuse each one
// with a clear error and exit status 2, never a crash, and their peak memory stays within 100 MB of the same tool's
// on the untouched checkpoint.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/io/mapped_file.h"
#include "models/io/sentencepiece_model.h"
#include "tests/support/crafted_files.h"
#include "tests/support/golden.h"

namespace vidgen::testing {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;
  std::string output;
  std::int64_t peak_kb = 0;
};

// Runs `argv` with stdout and stderr in a file; the peak resident memory is the child's own (wait4).
Outcome RunTool(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* out = std::fopen(log.c_str(), "w");
    ::dup2(::fileno(out), 1);
    ::dup2(::fileno(out), 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  Outcome outcome;
  outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream in(log);
  outcome.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  outcome.peak_kb = usage.ru_maxrss;
  return outcome;
}

class HostileToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("vidgen-hostile-tools-{}", ::getpid());
    fs::create_directories(dir_);
    source_ = GoldenCase(GoldenCases("wan_t2v").at(0)).CheckpointDir();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A copy of the Wan checkpoint with `file` replaced by what `craft` writes there.
  fs::path Checkpoint(const std::string& name, const std::string& file,
                      const std::function<void(const fs::path&)>& craft) {
    const auto copy = dir_ / name;
    fs::copy(source_, copy, fs::copy_options::recursive);
    fs::remove(copy / file);
    craft(copy / file);
    return copy;
  }

  std::vector<std::string> Generate(const fs::path& checkpoint) const {
    return {VIDGEN_GENERATE_BIN,
            "--model-dir",
            checkpoint.string(),
            "--prompt",
            "a cat",
            "--size",
            "16x16",
            "--frames",
            "1",
            "--steps",
            "1",
            "--out",
            (dir_ / "frames").string()};
  }
  std::vector<std::string> Worker(const fs::path& checkpoint) const {
    return {VIDGEN_WORKER_BIN, "--model-dir", checkpoint.string(),     "--server",
            "127.0.0.1:1",     "--work-dir",  (dir_ / "work").string()};
  }

  // Each tool refuses the checkpoint, naming what is wrong, within 100 MB of its peak on the good checkpoint.
  void ExpectRefused(const fs::path& checkpoint, const std::string& file, const std::string& reason) {
    const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> runs = {
        {{VIDGEN_INSPECT_BIN, (checkpoint / file).string()}, {VIDGEN_INSPECT_BIN, (source_ / file).string()}},
        {Generate(checkpoint), Generate(source_)},
        {Worker(checkpoint), {}},
    };
    for (const auto& [run, baseline] : runs) {
      SCOPED_TRACE(run[0] + " on " + file);
      const auto outcome = RunTool(run, dir_ / "log");
      EXPECT_EQ(outcome.status, 2) << outcome.output.substr(0, 2000);
      EXPECT_NE(outcome.output.find(reason), std::string::npos) << outcome.output.substr(0, 2000);
      EXPECT_NE(outcome.output.find("INVALID_ARGUMENT"), std::string::npos) << outcome.output.substr(0, 2000);
      if (!baseline.empty()) {
        const auto good = RunTool(baseline, dir_ / "log");
        EXPECT_LT(outcome.peak_kb, good.peak_kb + 100 * 1024) << "peak " << outcome.peak_kb << " KiB, on the good "
                                                              << "checkpoint " << good.peak_kb << " KiB";
      }
    }
  }

  fs::path dir_, source_;
};

TEST_F(HostileToolsTest, DeepSafetensorsHeader) {
  const auto checkpoint = Checkpoint("deep", "diffusion_pytorch_model.safetensors", WriteDeepSafetensors);
  ExpectRefused(checkpoint, "diffusion_pytorch_model.safetensors", "has a shape entry that is not a size");
}

TEST_F(HostileToolsTest, StrideZeroTensor) {
  const auto checkpoint = Checkpoint("stride", "Wan2.1_VAE.pth", WriteStrideZeroCheckpoint);
  ExpectRefused(checkpoint, "Wan2.1_VAE.pth", "overlapping strides");
}

TEST_F(HostileToolsTest, PathsMultipliedToOneTensor) {
  const auto checkpoint = Checkpoint("paths", "models_t5_umt5-xxl-enc-bf16.pth", WriteMultipliedPathsCheckpoint);
  ExpectRefused(checkpoint, "models_t5_umt5-xxl-enc-bf16.pth", "more than 100000 tensors");
}

TEST_F(HostileToolsTest, DeepConfig) {
  const auto checkpoint = Checkpoint("config", "config.json", WriteDeepConfig);
  for (const auto& run : {Generate(checkpoint), Worker(checkpoint)}) {
    const auto outcome = RunTool(run, dir_ / "log");
    EXPECT_EQ(outcome.status, 2) << outcome.output;
    EXPECT_NE(outcome.output.find("nests JSON deeper than 64"), std::string::npos) << outcome.output;
  }
}

TEST_F(HostileToolsTest, CorruptSentencePieceModel) {
  const auto checkpoint = Checkpoint("spm", "google/umt5-xxl/spiece.model", [&](const fs::path& path) {
    const auto file = io::MappedFile::Open((source_ / "google/umt5-xxl/spiece.model").string());
    std::vector<std::uint8_t> model(file->bytes().begin(), file->bytes().end());
    const auto map = io::CheckSentencePieceModel(model, "source").at(0);
    std::uint32_t trie_bytes = 0;
    std::memcpy(&trie_bytes, model.data() + map.offset, 4);
    for (std::size_t i = map.offset + 4 + trie_bytes; i < map.offset + map.size; ++i) {
      if (model[i] == 0) model[i] = 'a';  // replacements that never end: a minute a prompt
    }
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(model.data()), static_cast<std::streamsize>(model.size()));
  });
  for (const auto& run : {Generate(checkpoint), Worker(checkpoint)}) {
    const auto outcome = RunTool(run, dir_ / "log");
    EXPECT_EQ(outcome.status, 2) << outcome.output;
    EXPECT_NE(outcome.output.find("character map is corrupt"), std::string::npos) << outcome.output;
  }
}

// The cache calibration beside a checkpoint: vidgen-bench calibrate writes one that a calibrated generation uses;
// a crafted one stops the tools with the file and the field named.
TEST_F(HostileToolsTest, CacheCalibration) {
  const auto checkpoint = dir_ / "calibrated";
  fs::copy(source_, checkpoint, fs::copy_options::recursive);
  std::ofstream(dir_ / "prompts.txt") << "a cat\n\na dog on a beach\n";
  auto generate = Generate(checkpoint);
  *(std::find(generate.begin(), generate.end(), "--steps") + 1) = "6";  // predicted steps to guide
  for (const char* arg : {"--cache", "taylorseer-cfg-calibrated"}) generate.push_back(arg);
  const auto uncalibrated = RunTool(generate, dir_ / "log");
  EXPECT_EQ(uncalibrated.status, 2) << uncalibrated.output;
  EXPECT_NE(uncalibrated.output.find("vidgen-bench calibrate"), std::string::npos) << uncalibrated.output;

  const std::vector<std::string> calibrate = {VIDGEN_BENCH_BIN, "calibrate",
                                              "--model-dir",    checkpoint.string(),
                                              "--prompts-file", (dir_ / "prompts.txt").string(),
                                              "--steps",        "6",
                                              "--width",        "16",
                                              "--height",       "16",
                                              "--frames",       "1",
                                              "--threads",      "1"};
  const auto calibrated = RunTool(calibrate, dir_ / "log");
  ASSERT_EQ(calibrated.status, 0) << calibrated.output;
  EXPECT_NE(calibrated.output.find("6 steps, 2 prompts"), std::string::npos) << calibrated.output;
  const auto generated = RunTool(generate, dir_ / "log");
  EXPECT_EQ(generated.status, 0) << generated.output;
  EXPECT_TRUE(fs::exists(dir_ / "frames" / "frame_0000.png"));

  const auto file = checkpoint / "vidgen_cache_calibration.json";
  std::string text;
  {
    std::ifstream in(file);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(file, std::ios::trunc) << text.substr(0, text.find("\"sigmas\"")) << "\"sigmas\": [0.5, 0.9]}";
  for (const auto& run : {generate, Worker(checkpoint)}) {
    const auto outcome = RunTool(run, dir_ / "log");
    EXPECT_EQ(outcome.status, 2) << outcome.output;
    EXPECT_NE(outcome.output.find(file.string()), std::string::npos) << outcome.output;
  }
  // Calibrating again replaces the broken file.
  EXPECT_EQ(RunTool(calibrate, dir_ / "log").status, 0);
  EXPECT_EQ(RunTool(generate, dir_ / "log").status, 0);
}

}  // namespace
}  // namespace vidgen::testing
