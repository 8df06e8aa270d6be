// vidgen-generate runs a request as the service would: what its flags leave unset takes the checkpoint's and its
// LoRAs' declared defaults (the demo model's trained size and frames, the distill LoRA's schedule).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace vidgen::testing {
namespace {

namespace fs = std::filesystem;

// Runs vidgen-generate on the demo model with `flags`; its exit code and output.
int Generate(const std::string& flags, const fs::path& out, std::string* output) {
  const auto command = fmt::format(
      "{} --model-dir {} --prompt 'a red circle moving left on a gray background' "
      "--threads 2 --out {} {} 2>&1",
      VIDGEN_GENERATE_BIN, VIDGEN_DEMO_MODEL, out.string(), flags);
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[4096];
  output->clear();
  while (const std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output->append(buffer, n);
  return ::pclose(pipe);
}

// A PNG's width and height from its IHDR chunk.
std::pair<int, int> PngSize(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[24] = {};
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  const auto be32 = [&](int at) {
    return header[at] << 24 | header[at + 1] << 16 | header[at + 2] << 8 | header[at + 3];
  };
  return {be32(16), be32(20)};
}

TEST(GenerateToolTest, UnsetFieldsTakeTheCheckpointsAndTheLorasDeclaredDefaults) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("vidgen-generate-{}", ::getpid());
  std::string output;
  ASSERT_EQ(Generate("--steps 4", dir / "plain", &output), 0) << output;
  EXPECT_NE(output.find("wrote 17 frames of 32x32"), std::string::npos) << output;  // the checkpoint's size, frames
  EXPECT_NE(output.find("(8 DiT passes)"), std::string::npos) << output;            // 4 steps under guidance
  EXPECT_EQ(PngSize(dir / "plain" / "frame_0016.png"), (std::pair{32, 32}));

  const std::string distill = fmt::format("--lora {}/distill.safetensors", VIDGEN_DEMO_LORAS);
  ASSERT_EQ(Generate(distill, dir / "distilled", &output), 0) << output;
  EXPECT_NE(output.find("(4 DiT passes)"), std::string::npos) << output;  // its 4 Euler steps at guidance 1
  ASSERT_EQ(Generate(distill + " --steps 2", dir / "two", &output), 0) << output;
  EXPECT_NE(output.find("(2 DiT passes)"), std::string::npos) << output;  // its own steps, still guidance 1
  ASSERT_EQ(Generate(distill + " --guidance 5 --size 48x32", dir / "guided", &output), 0) << output;
  EXPECT_NE(output.find("(8 DiT passes)"), std::string::npos) << output;
  EXPECT_NE(output.find("of 48x32"), std::string::npos) << output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vidgen::testing
