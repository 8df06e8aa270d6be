// Loading Wan checkpoints: the diffusers layout, bf16, request validation, progress, cancellation and the errors
// that bad files give.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"
#include "models/wan/loader.h"
#include "models/wan/pipeline.h"
#include "tests/support/golden.h"
#include "tests/support/scratch_dir.h"

namespace vidgen::wan {
namespace {

namespace fs = std::filesystem;

using testing::ScratchDir;

testing::GoldenCase DitCase() {
  return testing::GoldenCase(testing::GoldenCases("wan_dit").at(0));
}

using io::InverseKeyMap;

std::string WanVaeKeyToDiffusers(const std::string& name) {
  static const std::regex upsample(R"(^decoder\.upsamples\.(\d+)\.)");
  static const io::KeyMap parts = InverseKeyMap({{"conv1.", "quant_conv."},
                                                 {"conv2.", "post_quant_conv."},
                                                 {"encoder.conv1.", "encoder.conv_in."},
                                                 {"decoder.conv1.", "decoder.conv_in."},
                                                 {"downsamples.", "down_blocks."},
                                                 {"middle.0.", "mid_block.resnets.0."},
                                                 {"middle.1.", "mid_block.attentions.0."},
                                                 {"middle.2.", "mid_block.resnets.1."},
                                                 {"head.0.", "norm_out."},
                                                 {"head.2.", "conv_out."},
                                                 {"residual.0.", "norm1."},
                                                 {"residual.2.", "conv1."},
                                                 {"residual.3.", "norm2."},
                                                 {"residual.6.", "conv2."},
                                                 {"shortcut.", "conv_shortcut."}});
  // `parts` maps diffusers -> Wan after Inverse; invert back to Wan -> diffusers.
  static const io::KeyMap to_diffusers = InverseKeyMap(parts);
  std::string renamed = io::ApplyKeyMap(to_diffusers, name);
  std::smatch match;
  if (std::regex_search(renamed, match, upsample)) {
    const int index = std::stoi(match[1]);
    renamed = index % 4 == 3
                  ? fmt::format("decoder.up_blocks.{}.upsamplers.0.{}", index / 4, match.suffix().str())
                  : fmt::format("decoder.up_blocks.{}.resnets.{}.{}", index / 4, index % 4, match.suffix().str());
  }
  return renamed;
}

void WriteRenamed(const fs::path& from, const fs::path& to,
                  const std::function<std::string(const std::string&)>& rename,
                  const std::vector<std::pair<std::string, std::string>>& extra_copies = {}) {
  io::WeightStore store;
  store.AddFile(from.string());
  io::NamedTensors tensors;
  for (const auto& name : store.Names()) tensors.emplace_back(rename(name), store.Get(name));
  for (const auto& [source, copy] : extra_copies) tensors.emplace_back(copy, store.Get(source));
  fs::create_directories(to.parent_path());
  io::WriteSafetensors(to.string(), tensors);
}

// Builds the diffusers layout of the golden checkpoint by renaming every file per the maps.
fs::path MakeDiffusersCheckpoint(const fs::path& released, const fs::path& out) {
  nlohmann::json wan_config;
  std::ifstream(released / "config.json") >> wan_config;
  const auto dim = wan_config["dim"].get<std::int64_t>();
  const auto heads = wan_config["num_heads"].get<std::int64_t>();
  nlohmann::json config = {{"_class_name", "WanTransformer3DModel"},
                           {"num_attention_heads", heads},
                           {"attention_head_dim", dim / heads},
                           {"in_channels", wan_config["in_dim"]},
                           {"out_channels", wan_config["out_dim"]},
                           {"text_dim", wan_config["text_dim"]},
                           {"freq_dim", wan_config["freq_dim"]},
                           {"ffn_dim", wan_config["ffn_dim"]},
                           {"num_layers", wan_config["num_layers"]},
                           {"cross_attn_norm", true},
                           {"qk_norm", "rms_norm_across_heads"},
                           {"eps", wan_config["eps"]},
                           {"image_dim", nullptr},
                           {"text_len", wan_config["text_len"]},
                           {"patch_size", {1, 2, 2}}};
  fs::create_directories(out / "transformer");
  std::ofstream(out / "transformer" / "config.json") << config.dump(2);
  const auto dit_map = InverseKeyMap(DiffusersDitKeyMap());
  WriteRenamed(released / "diffusion_pytorch_model.safetensors",
               out / "transformer" / "diffusion_pytorch_model.safetensors",
               [&](const std::string& name) { return io::ApplyKeyMap(dit_map, name); });
  const auto t5_map = InverseKeyMap(encoders::TransformersUmT5KeyMap());
  WriteRenamed(released / "models_t5_umt5-xxl-enc-bf16.pth", out / "text_encoder" / "model.safetensors",
               [&](const std::string& name) { return io::ApplyKeyMap(t5_map, name); },
               {{"token_embedding.weight", "encoder.embed_tokens.weight"}});
  WriteRenamed(released / "Wan2.1_VAE.pth", out / "vae" / "diffusion_pytorch_model.safetensors", WanVaeKeyToDiffusers);
  fs::create_directories(out / "tokenizer");
  fs::copy_file(released / "google" / "umt5-xxl" / "spiece.model", out / "tokenizer" / "spiece.model");
  return out;
}

std::vector<torch::Tensor> RunDit(WanDit& dit, const testing::GoldenCase& golden) {
  torch::NoGradGuard no_grad;
  WanDitInput input;
  input.x = {golden.Get("x")};
  input.timesteps = golden.Get("t");
  input.context = {golden.Get("context")};
  return dit->forward(input);
}

TEST(WanLoaderTest, DiffusersLayoutGivesIdenticalOutputs) {
  torch::NoGradGuard no_grad;
  ScratchDir scratch;
  const auto golden = DitCase();
  const auto diffusers = MakeDiffusersCheckpoint(golden.CheckpointDir(), scratch.path() / "diffusers");
  auto released_parts = LoadWanCheckpoint(golden.CheckpointDir().string(), torch::kFloat);
  auto diffusers_parts = LoadWanCheckpoint(diffusers.string(), torch::kFloat);
  EXPECT_EQ(released_parts.layout, WanLayout::kReleased);
  EXPECT_EQ(diffusers_parts.layout, WanLayout::kDiffusers);

  EXPECT_TRUE(torch::equal(RunDit(released_parts.dit, golden)[0], RunDit(diffusers_parts.dit, golden)[0]));
  const auto tokens = released_parts.tokenizer->Encode({"a red ball"});
  EXPECT_TRUE(torch::equal(diffusers_parts.tokenizer->Encode({"a red ball"}).ids, tokens.ids));
  EXPECT_TRUE(torch::equal(released_parts.t5->forward(tokens.ids, tokens.mask),
                           diffusers_parts.t5->forward(tokens.ids, tokens.mask)));
  torch::manual_seed(0);
  const auto latent = torch::randn({1, 16, 2, 4, 4});
  EXPECT_TRUE(torch::equal(released_parts.vae->Decode(latent), diffusers_parts.vae->Decode(latent)));
}

// bf16 matrix products with fp32 norms, modulation and residual stream: measured on the tiny model, the DiT
// output differs from fp32 by 0.24% of its largest value and the T5 (bf16 throughout, as the reference) by 0.8%:
// bf16 keeps 8 mantissa bits (0.4% per rounding) and errors of independent roundings partly cancel. The bound,
// 3%, leaves room for other variants without hiding a real fault (a wrong cast or a dropped norm gives O(1)).
TEST(WanLoaderTest, Bf16StaysCloseToFp32) {
  const auto golden = DitCase();
  auto fp32 = LoadWanCheckpoint(golden.CheckpointDir().string(), torch::kFloat);
  auto bf16 = LoadWanCheckpoint(golden.CheckpointDir().string(), torch::kBFloat16);
  EXPECT_EQ(bf16.dit->blocks[0]->as<WanBlock>()->self_attn->q->weight.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf16.dit->blocks[0]->as<WanBlock>()->modulation.scalar_type(), torch::kFloat);
  for (const auto& block : *bf16.dit->blocks) {
    const auto& attention = *block->as<WanBlock>()->self_attn;
    EXPECT_TRUE(attention.fused()) << "loaded into the fused q/k/v matrix";
    EXPECT_EQ(attention.qkv_weight.scalar_type(), torch::kBFloat16);
  }
  const auto reference = RunDit(fp32.dit, golden)[0];
  const auto out = RunDit(bf16.dit, golden)[0];
  ASSERT_EQ(out.scalar_type(), torch::kFloat);
  const double relative = ((out - reference).abs().max() / reference.abs().max()).item<double>();
  EXPECT_LT(relative, 3e-2);
  std::printf("bf16 DiT max relative error vs fp32: %.3e\n", relative);

  torch::NoGradGuard no_grad;
  const auto tokens = fp32.tokenizer->Encode({"a red ball bouncing"});
  const auto t5_reference = fp32.t5->forward(tokens.ids, tokens.mask);
  const auto t5_out = bf16.t5->forward(tokens.ids, tokens.mask).to(torch::kFloat);
  const double t5_relative = ((t5_out - t5_reference).abs().max() / t5_reference.abs().max()).item<double>();
  EXPECT_LT(t5_relative, 3e-2);
  std::printf("bf16 T5 max relative error vs fp32: %.3e\n", t5_relative);
}

std::string LoadError(const fs::path& dir) {
  try {
    LoadWanCheckpoint(dir.string(), torch::kFloat);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "the checkpoint loaded";
  return "";
}

fs::path CopyCheckpoint(const fs::path& to) {
  fs::copy(DitCase().CheckpointDir(), to, fs::copy_options::recursive);
  return to;
}

TEST(WanLoaderTest, MissingTensorWrongShapeAndBadConfigAreNamed) {
  ScratchDir scratch;
  const auto dir = CopyCheckpoint(scratch.path() / "ckpt");
  const auto dit_file = dir / "diffusion_pytorch_model.safetensors";
  {
    const io::SafetensorsFile file(dit_file.string());
    auto tensors = file.Tensors();
    tensors.erase(
        std::remove_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.first == "blocks.0.ffn.2.bias"; }),
        tensors.end());
    for (auto& [name, tensor] : tensors) tensor = tensor.clone();  // detach from the file we overwrite
    io::WriteSafetensors(dit_file.string(), tensors);
  }
  auto message = LoadError(dir);
  EXPECT_NE(message.find("Wan DiT"), std::string::npos) << message;
  EXPECT_NE(message.find("missing (1): blocks.0.ffn.2.bias"), std::string::npos) << message;

  nlohmann::json config;
  std::ifstream(dir / "config.json") >> config;
  config["ffn_dim"] = config["ffn_dim"].get<int>() * 2;
  std::ofstream(dir / "config.json") << config.dump();
  message = LoadError(dir);
  EXPECT_NE(message.find("wrong shape"), std::string::npos) << message;
  EXPECT_NE(message.find("blocks.0.ffn.0.weight"), std::string::npos) << message;

  config["model_type"] = "x2v";
  std::ofstream(dir / "config.json") << config.dump();
  message = LoadError(dir);
  EXPECT_NE(message.find("model_type 'x2v'"), std::string::npos) << message;
  config["model_type"] = "t2v";
  config["window_size"] = {128, 128};
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_NE(LoadError(dir).find("window_size"), std::string::npos);
  config.erase("window_size");
  config["num_heads"] = config["dim"].get<std::int64_t>() + 1;  // more heads than the width: never divides it
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_NE(LoadError(dir).find("'num_heads'"), std::string::npos);

  fs::remove(dir / "Wan2.1_VAE.pth");
  std::ofstream(dir / "config.json") << R"({"dim": "wide"})";
  EXPECT_NE(LoadError(dir).find("'dim' has the wrong type"), std::string::npos);
  EXPECT_NE(LoadError(scratch.path() / "nowhere").find("does not exist"), std::string::npos);
}

class WanPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pipeline_ = WanPipeline::Load(DitCase().CheckpointDir().string()).release(); }
  static void TearDownTestSuite() { delete pipeline_; }

  static GenerationRequest SmallRequest() {
    GenerationRequest request;
    request.prompt = "a red ball";
    request.negative_prompt = "blurry";
    request.width = 32;
    request.height = 32;
    request.frames = 5;
    request.steps = 4;
    request.seed = 42;
    return request;
  }
  static std::string ValidationError(const GenerationRequest& request) {
    try {
      pipeline_->Validate(request);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.what();
    }
    ADD_FAILURE() << "the request was accepted";
    return "";
  }

  static WanPipeline* pipeline_;
};
WanPipeline* WanPipelineTest::pipeline_ = nullptr;

TEST_F(WanPipelineTest, GeneratesDeterministicFramesWithProgress) {
  std::vector<int> steps;
  GenerationCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress& p) {
    steps.push_back(p.step);
    EXPECT_EQ(p.total, 4);
  };
  const auto result = pipeline_->Generate(SmallRequest(), callbacks);
  EXPECT_EQ(result.frames.sizes(), (std::vector<std::int64_t>{5, 32, 32, 3}));
  EXPECT_EQ(result.frames.scalar_type(), torch::kUInt8);
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(result.stats.model_calls, 8);
  EXPECT_EQ(result.stats.full_steps, 4);
  for (const char* stage : {"encode_text", "denoise", "decode"})
    EXPECT_TRUE(result.stats.stage_seconds.contains(stage));

  EXPECT_TRUE(torch::equal(pipeline_->Generate(SmallRequest()).frames, result.frames));
  auto other = SmallRequest();
  other.seed = 43;
  EXPECT_FALSE(torch::equal(pipeline_->Generate(other).frames, result.frames));
}

TEST_F(WanPipelineTest, CancelStopsBetweenSteps) {
  int steps = 0;
  GenerationCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress&) { ++steps; };
  callbacks.cancelled = [&] { return steps == 2; };
  try {
    pipeline_->Generate(SmallRequest(), callbacks);
    FAIL() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCancelled);
  }
  EXPECT_EQ(steps, 2);
}

TEST_F(WanPipelineTest, BadRequestsNameTheirField) {
  auto request = SmallRequest();
  request.frames = 8;
  EXPECT_NE(ValidationError(request).find("'frames'"), std::string::npos);
  request = SmallRequest();
  request.width = 40;
  EXPECT_NE(ValidationError(request).find("'width'"), std::string::npos);
  request = SmallRequest();
  request.height = 0;
  EXPECT_NE(ValidationError(request).find("'height'"), std::string::npos);
  request = SmallRequest();
  request.steps = 0;
  EXPECT_NE(ValidationError(request).find("'steps'"), std::string::npos);
  request = SmallRequest();
  request.guidance_scale = -1;
  EXPECT_NE(ValidationError(request).find("'guidance_scale'"), std::string::npos);
  request = SmallRequest();
  request.shift = 0;
  EXPECT_NE(ValidationError(request).find("'shift'"), std::string::npos);
  request = SmallRequest();
  request.prompt = "";
  EXPECT_NE(ValidationError(request).find("'prompt'"), std::string::npos);
  // A prompt longer than the text encoder reads is cut, keeping </s>, as the reference's tokenizer does.
  request = SmallRequest();
  for (int i = 0; i < 100; ++i) request.prompt += " zebra xylophone";
  EXPECT_NO_THROW(pipeline_->Validate(request));
  const auto& tokenizer = pipeline_->tokenizer();
  const auto cut = tokenizer.Encode({request.prompt});
  EXPECT_EQ(cut.mask.sum().item<std::int64_t>(), tokenizer.text_len());
  EXPECT_EQ(cut.ids[0][tokenizer.text_len() - 1].item<std::int64_t>(), tokenizer.Ids("").back());
}

}  // namespace
}  // namespace vidgen::wan

namespace vidgen::wan {
namespace {

// An I2V checkpoint (image cross-attention, img_emb) written and read back through the released layout's files.
TEST(WanLoaderTest, I2VCheckpointLoadsAndUsesTheImageTokens) {
  torch::NoGradGuard no_grad;
  ScratchDir scratch;
  nlohmann::json config = {{"model_type", "i2v"}, {"in_dim", 36},   {"dim", 64},      {"ffn_dim", 128},
                           {"freq_dim", 32},      {"text_dim", 48}, {"num_heads", 2}, {"num_layers", 1},
                           {"out_dim", 16},       {"text_len", 8}};
  std::ofstream(scratch.path() / "config.json") << config.dump();
  const auto parsed = ReadWanDitConfig((scratch.path() / "config.json").string());
  ASSERT_EQ(parsed.model_type, WanModelType::kI2V);
  WanDit original(parsed);
  torch::manual_seed(5);
  io::NamedTensors tensors;
  for (const auto& item : original->named_parameters()) {
    item.value().normal_(0, 0.1);
    tensors.emplace_back(item.key(), item.value());
  }
  EXPECT_TRUE(
      std::any_of(tensors.begin(), tensors.end(), [](const auto& t) { return t.first == "img_emb.proj.1.weight"; }));
  EXPECT_TRUE(std::any_of(tensors.begin(), tensors.end(),
                          [](const auto& t) { return t.first == "blocks.0.cross_attn.k_img.weight"; }));
  io::WriteSafetensors((scratch.path() / "diffusion_pytorch_model.safetensors").string(), tensors);

  WanDit loaded(parsed);
  io::WeightStore store;
  store.AddFile((scratch.path() / "diffusion_pytorch_model.safetensors").string());
  store.LoadInto(*loaded);
  WanDitInput input;
  input.x = {torch::randn({36, 1, 4, 4})};
  input.timesteps = torch::tensor({700.0}, torch::kFloat64);
  input.context = {torch::randn({5, 48})};
  input.clip_features = torch::randn({1, 257, 1280});
  const auto out = loaded->forward(input)[0];
  EXPECT_EQ(out.sizes(), (std::vector<std::int64_t>{16, 1, 4, 4}));
  EXPECT_TRUE(torch::equal(out, original->forward(input)[0]));
  input.clip_features = torch::randn({1, 257, 1280});
  EXPECT_FALSE(torch::allclose(loaded->forward(input)[0], out));  // the image tokens are attended to
}

}  // namespace
}  // namespace vidgen::wan
