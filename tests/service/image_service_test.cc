// Image-to-video through the service: worker groups of two ranks serving the tiny I2V and FLF2V checkpoints, images
// sent by the client, videos checked by ffprobe, the job's frames equal to vidgen-generate's for the same request,
// and bad images refused at submit with the field named while the server serves on.
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/service/cluster.h"
#include "tests/support/golden.h"

namespace vidgen::testing {
namespace {

// A golden case's uint8 image [H, W, 3] as a PNG file (through FFmpeg's encoder).
std::string WritePng(const Cluster& cluster, const at::Tensor& rgb, const std::string& name) {
  const auto raw = cluster.dir() + "/" + name + ".rgb", png = cluster.dir() + "/" + name + ".png";
  const auto pixels = rgb.contiguous();
  std::ofstream(raw, std::ios::binary)
      .write(reinterpret_cast<const char*>(pixels.data_ptr<std::uint8_t>()),
             static_cast<std::streamsize>(pixels.numel()));
  EXPECT_EQ(RunCommand(fmt::format("ffmpeg -v error -y -f rawvideo -pix_fmt rgb24 -s {}x{} -i {} -frames:v 1 {}",
                                   rgb.size(1), rgb.size(0), raw, png)),
            0);
  return png;
}

// vidgen-generate's PNG frames of a folder as one rgb24 byte string, frame after frame.
std::string GeneratedFrames(const std::string& dir) {
  const auto raw = dir + "/all.rgb";
  EXPECT_EQ(RunCommand(fmt::format("ffmpeg -v error -y -i {}/frame_%04d.png -f rawvideo -pix_fmt rgb24 {}", dir, raw)),
            0);
  return ReadFile(raw);
}

struct ImageCase {
  std::string golden_prefix, model, size;
  std::vector<std::string> images;  // golden tensors: first, then last
  std::string width, height;        // of the video the case's image and area make
};

TEST(ImageServiceTest, ImageJobsOnTwoRankGroupsMatchVidgenGenerateAndBadImagesAreRefused) {
  Cluster cluster;
  cluster.StartServer({"--model", std::string(Cluster::kModel) + ":wan2.1"});  // a T2V model, for the refusal
  const auto frames_dir = cluster.dir() + "/frames";
  std::filesystem::create_directories(frames_dir);
  // Each rank may use 512 MiB: the groups' memory probes (which bring an image of their own) say what image jobs need.
  cluster.StartWorker(2, {"--keep-frames", frames_dir, "--device-memory", "512MiB"}, VIDGEN_I2V_MODEL, "wan-i2v");
  cluster.StartWorker(2, {"--keep-frames", frames_dir, "--device-memory", "512MiB"}, VIDGEN_FLF2V_MODEL, "wan-flf2v");
  cluster.WaitForGroups("wan-i2v", 1);
  cluster.WaitForGroups("wan-flf2v", 1);
  std::string output;
  ASSERT_EQ(cluster.RunClient("models", &output), 0) << output;
  EXPECT_NE(output.find("wan-i2v  wan2.1 i2v"), std::string::npos) << output;
  EXPECT_NE(output.find("wan-flf2v  wan2.1 flf2v"), std::string::npos) << output;
  EXPECT_NE(output.find(std::string(Cluster::kModel) + "  wan2.1 t2v"), std::string::npos) << output;

  // The tiny I2V image 70×45 in 64×32 = 2048 pixels: 48×32; FLF2V's 52×40 first frame in 48×32: 32×32.
  const std::vector<ImageCase> cases = {{"wan_i2v", "wan-i2v", "64x32", {"image_u8"}, "48", "32"},
                                        {"wan_flf2v", "wan-flf2v", "48x32", {"first_u8", "last_u8"}, "32", "32"}};
  for (const auto& c : cases) {
    const GoldenCase golden(GoldenCases(c.golden_prefix).at(0));
    std::vector<std::string> pngs;
    for (const auto& image : c.images) pngs.push_back(WritePng(cluster, golden.Get(image), c.model + "-" + image));
    const std::string images =
        fmt::format("--image {}{}", pngs[0], pngs.size() > 1 ? " --last-image " + pngs[1] : std::string());
    const std::string request =
        fmt::format("--prompt 'a cat in the kitchen' --size {} --frames 9 --steps 4 --seed 3 {}", c.size, images);
    const auto mp4 = cluster.dir() + "/" + c.model + ".mp4";
    ASSERT_EQ(cluster.RunClient(fmt::format("submit --model {} {} --wait --out {}", c.model, request, mp4), &output), 0)
        << output;
    const auto job_id = output.substr(0, output.find('\n'));
    auto probe = Probe(mp4);
    EXPECT_EQ(probe["width"], c.width) << c.model;
    EXPECT_EQ(probe["height"], c.height) << c.model;
    EXPECT_EQ(probe["nb_read_frames"], "9") << c.model;

    // The same request through vidgen-generate, laid out as the group (two ranks, Ulysses): the same frames.
    const auto out = cluster.dir() + "/" + c.model + "-generated";
    const auto model_dir = c.model == "wan-i2v" ? VIDGEN_I2V_MODEL : VIDGEN_FLF2V_MODEL;
    ASSERT_EQ(
        RunCommand(fmt::format("{} --model-dir {} {} --nproc 2 --ulysses 2 --threads 1 --dtype fp32 --out {} 2>&1",
                               VIDGEN_GENERATE_BIN, model_dir, request, out),
                   &output),
        0)
        << output;
    const auto job_frames = ReadFile(frames_dir + "/" + job_id + ".rgb");
    EXPECT_EQ(job_frames.size(), std::size_t{9} * std::stoul(c.width) * std::stoul(c.height) * 3) << c.model;
    EXPECT_TRUE(job_frames == GeneratedFrames(out)) << c.model << ": the job's frames differ from vidgen-generate's";
  }

  // Bad images, refused at submit with the field named.
  const GoldenCase golden(GoldenCases("wan_i2v").at(0));
  const auto png = ReadFile(WritePng(cluster, golden.Get("image_u8"), "bad"));
  auto huge = png;  // 20000×20000 declared in the header
  for (const int at : {16, 20}) {
    huge.replace(static_cast<std::size_t>(at), 4, std::string("\0\0\x4e\x20", 4));
  }
  struct Bad {
    std::string model, field, image, last_image, message;
  };
  const std::vector<Bad> bad = {
      {"wan-i2v", "spec.image", png.substr(0, png.size() / 2), "", "truncated"},
      {"wan-i2v", "spec.image", "just some text\n", "", "not a PNG or a JPEG"},
      {"wan-i2v", "spec.image", huge, "", "20000×20000"},
      {"wan-i2v", "spec.image", "", "", "is required"},
      {"wan-i2v", "spec.last_image", png, png, "takes one image"},
      {"wan-flf2v", "spec.last_image", png, "", "is required"},
      {"wan-flf2v", "spec.last_image", png, "GIF89a", "not a PNG or a JPEG"},
      {Cluster::kModel, "spec.image", png, "", "text-to-video"},
  };
  for (const auto& b : bad) {
    auto spec = Cluster::SmallSpec();
    spec.set_model(b.model);
    spec.set_image(b.image);
    spec.set_last_image(b.last_image);
    std::string id;
    const auto status = cluster.Submit(spec, &id);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.model << " " << b.message;
    EXPECT_NE(status.error_message().find(b.field), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find(b.message), std::string::npos) << status.error_message();
  }

  // A job beyond what a rank holds is refused at submit, from the profile its group measured.
  for (const auto* model : {"wan-i2v", "wan-flf2v"}) {
    auto spec = Cluster::SmallSpec();
    spec.set_model(model);
    spec.set_width(2048);
    spec.set_height(2048);
    spec.set_frames(25);  // decoding alone far beyond 512 MiB, whatever the CPU probes' noise
    spec.set_image(png);
    if (std::string_view(model) == "wan-flf2v") spec.set_last_image(png);
    std::string id;
    const auto status = cluster.Submit(spec, &id);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << model << ": " << status.error_message();
    const std::string fragments[] = {"512.0 MiB per rank", "decoding",
                                     fmt::format("no worker group of model '{}'", model)};
    for (const auto& fragment : fragments) {
      EXPECT_NE(status.error_message().find(fragment), std::string::npos) << status.error_message();
    }
  }

  // The server serves on: a good image job still runs, and its view carries no image bytes.
  auto spec = Cluster::SmallSpec(2);
  spec.set_model("wan-i2v");
  spec.set_image(png);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  const auto job = cluster.WaitForEnd(id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED) << job.message();
  EXPECT_TRUE(job.spec().image().empty());
}

}  // namespace
}  // namespace vidgen::testing
