// LoRAs per job through the service.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"
#include "tests/service/cluster.h"

namespace vidgen::testing {
namespace {

// LoRAs per job on a two-rank group: listed by the model, applied for a job and taken off for the next one exactly
// (the frames of a plain job before and after a LoRA job are the same bytes), an unknown one refused at submit.
TEST(LoraServiceTest, AJobWithALoraAndTheNextWithoutItGiveTheBaseOutputExactly) {
  Cluster cluster;
  cluster.StartServer();
  const auto lora_dir = cluster.dir() + "/loras", frames_dir = cluster.dir() + "/frames";
  std::filesystem::create_directories(lora_dir);
  std::filesystem::create_directories(frames_dir);
  io::WeightStore base;
  base.AddSafetensors(VIDGEN_TINY_MODEL, "diffusion_pytorch_model");
  torch::manual_seed(5);
  io::NamedTensors adapter;
  for (const char* module : {"blocks.0.self_attn.q", "blocks.1.ffn.0"}) {
    const auto& weight = base.Get(std::string(module) + ".weight");
    adapter.emplace_back(fmt::format("diffusion_model.{}.lora_A.weight", module), torch::randn({2, weight.size(1)}));
    adapter.emplace_back(fmt::format("diffusion_model.{}.lora_B.weight", module), torch::randn({weight.size(0), 2}));
  }
  io::WriteSafetensors(lora_dir + "/style.safetensors", adapter);
  // A step-distilled LoRA declares its schedule in its metadata, as vidgen-train distill writes it.
  io::WriteSafetensors(lora_dir + "/fast.safetensors", adapter,
                       {{"vidgen_defaults", R"({"timesteps": [1000, 500], "solver": "euler", "guidance": 1})"}});
  cluster.StartWorker(2, {"--lora-dir", lora_dir, "--keep-frames", frames_dir});
  cluster.WaitForGroups(Cluster::kModel, 1);
  std::string output;
  ASSERT_EQ(cluster.RunClient("models", &output), 0) << output;
  EXPECT_NE(output.find("LoRAs: fast (2 steps), style"), std::string::npos) << output;

  auto run = [&](bool with_lora) {
    auto spec = Cluster::SmallSpec(3);
    if (with_lora) {
      auto& lora = *spec.add_loras();
      lora.set_name("style");
      lora.set_scale(0.8);
    }
    std::string id;
    EXPECT_TRUE(cluster.Submit(spec, &id).ok());
    const auto job = cluster.WaitForEnd(id);
    EXPECT_EQ(job.state(), v1::SUCCEEDED) << job.message();
    return ReadFile(frames_dir + "/" + id + ".rgb");
  };
  const auto plain = run(false);
  const auto styled = run(true);
  const auto plain_again = run(false);
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(plain.size(), styled.size());
  EXPECT_NE(plain, styled) << "the LoRA changed nothing";
  EXPECT_TRUE(plain == plain_again) << "the base weights did not come back";

  // A job that names the distilled LoRA and leaves the steps unset takes its schedule; one that sets them samples
  // that many evenly spaced steps.
  for (const int steps : {0, 3}) {
    auto fast = Cluster::SmallSpec(steps);
    fast.add_loras()->set_name("fast");
    std::string id;
    ASSERT_TRUE(cluster.Submit(fast, &id).ok());
    const auto job = cluster.WaitForEnd(id);
    EXPECT_EQ(job.state(), v1::SUCCEEDED) << job.message();
    if (steps == 0) {
      EXPECT_EQ(job.spec().steps(), 2);
      ASSERT_EQ(job.spec().timesteps_size(), 2);
      EXPECT_EQ(job.spec().timesteps(1), 500);
      EXPECT_EQ(job.spec().solver(), "euler");
      EXPECT_EQ(job.spec().guidance(), 1.0);
      EXPECT_EQ(job.total_steps(), 2);
    } else {
      EXPECT_EQ(job.spec().timesteps_size(), 0);  // its own step count, evenly spaced
      EXPECT_EQ(job.spec().steps(), 3);
      EXPECT_EQ(job.spec().solver(), "euler");  // what it leaves unset still comes from the LoRA
    }
  }

  auto spec = Cluster::SmallSpec();
  spec.add_loras()->set_name("nowhere");
  std::string id;
  const auto status = cluster.Submit(spec, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("spec.loras[0]"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("has: fast, style"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace vidgen::testing
