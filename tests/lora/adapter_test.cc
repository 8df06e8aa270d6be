// LoRA adapters on the Wan DiT: one adapter saved in the published formats merges to the same weights, merge then
// restore is bit-identical, a bad adapter is refused with every bad key named, and sets switch per job exactly.
#include "models/lora/adapter.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"
#include "models/lora/merged_sets.h"
#include "models/wan/loader.h"
#include "tests/support/scratch_dir.h"

namespace vidgen::lora {
namespace {

wan::WanDitConfig SmallConfig() {
  wan::WanDitConfig config;
  config.dim = 32;
  config.ffn_dim = 64;
  config.freq_dim = 16;
  config.text_dim = 24;
  config.num_heads = 2;
  config.num_layers = 2;
  config.text_len = 8;
  return config;
}

// A rank-4 update of a few weights (linear and the 3D patch convolution), with alpha 8, and a bias delta.
struct Reference {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> pairs;  // released name -> (down, up)
  at::Tensor bias_delta;
  static constexpr double kAlpha = 8;
};

Reference MakeReference(wan::WanDit& dit) {
  torch::manual_seed(3);
  Reference reference;
  auto parameters = dit->named_parameters();
  for (const char* name : {"blocks.0.self_attn.q", "blocks.1.cross_attn.k", "blocks.1.ffn.0", "patch_embedding"}) {
    const auto& weight = parameters[std::string(name) + ".weight"];
    reference.pairs[name] = {torch::randn({4, weight.numel() / weight.size(0)}) * 0.1,
                             torch::randn({weight.size(0), 4}) * 0.1};
  }
  reference.bias_delta = torch::randn({SmallConfig().dim}) * 0.1;
  return reference;
}

at::Tensor Delta(const std::pair<at::Tensor, at::Tensor>& pair, at::IntArrayRef shape) {
  return torch::matmul(pair.second, pair.first).mul_(Reference::kAlpha / 4).reshape(shape);
}

std::string Underscored(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

TEST(LoraTest, EveryKeyFormatMergesToTheSameWeightsAndRestoresExactly) {
  torch::NoGradGuard no_grad;
  wan::WanDit dit(SmallConfig());
  for (auto& p : dit->parameters()) p.normal_(0, 0.2);
  const auto reference = MakeReference(dit);
  auto parameters = dit->named_parameters();
  const auto to_diffusers = io::InverseKeyMap(wan::DiffusersDitKeyMap());

  io::NamedTensors peft, kohya, deltas;
  for (const auto& [name, pair] : reference.pairs) {
    const auto diffusers = io::ApplyKeyMap(to_diffusers, name);
    peft.emplace_back("transformer." + diffusers + ".lora_A.weight", pair.first);
    peft.emplace_back("transformer." + diffusers + ".lora_B.weight", pair.second);
    peft.emplace_back("transformer." + diffusers + ".alpha", torch::tensor(Reference::kAlpha));
    kohya.emplace_back("lora_unet_" + Underscored(name) + ".lora_down.weight", pair.first);
    kohya.emplace_back("lora_unet_" + Underscored(name) + ".lora_up.weight", pair.second);
    kohya.emplace_back("lora_unet_" + Underscored(name) + ".alpha", torch::tensor(Reference::kAlpha));
    deltas.emplace_back("diffusion_model." + name + ".diff", Delta(pair, parameters[name + ".weight"].sizes()));
  }
  for (auto* format : {&peft, &kohya}) {
    format->emplace_back(
        format == &peft ? "transformer.blocks.0.attn1.to_q.diff_b" : "lora_unet_blocks_0_self_attn_q.diff_b",
        reference.bias_delta);
  }
  deltas.emplace_back("diffusion_model.blocks.0.self_attn.q.diff_b", reference.bias_delta);

  testing::ScratchDir scratch;
  std::vector<at::Tensor> merged;
  std::map<std::string, at::Tensor> original;
  for (const auto& item : parameters) original[item.key()] = item.value().clone();
  for (const auto& [file, tensors] : {std::pair{"peft", &peft}, {"kohya", &kohya}, {"deltas", &deltas}}) {
    const auto path = (scratch.path() / (std::string(file) + ".safetensors")).string();
    io::WriteSafetensors(path, *tensors);
    const auto adapter = ReadAdapter(path, *dit, wan::DiffusersDitKeyMap());
    EXPECT_EQ(adapter.updates.size(), reference.pairs.size() + 1) << file;
    const std::vector<std::pair<const Adapter*, double>> stack = {{&adapter, 0.7}};
    {
      AppliedAdapters applied(*dit, stack);
      const auto& q = parameters["blocks.0.self_attn.q.weight"];
      EXPECT_TRUE(torch::allclose(
          q,
          original["blocks.0.self_attn.q.weight"] + 0.7 * Delta(reference.pairs.at("blocks.0.self_attn.q"), q.sizes()),
          1e-6, 1e-6))
          << file;
      merged.push_back(torch::cat(
          {parameters["blocks.0.self_attn.q.weight"].flatten(), parameters["blocks.0.self_attn.q.bias"].flatten(),
           parameters["patch_embedding.weight"].flatten(), parameters["blocks.1.ffn.0.weight"].flatten()}));
    }
    for (const auto& item : parameters) {
      EXPECT_TRUE(torch::equal(item.value(), original[item.key()])) << file << ": " << item.key() << " not restored";
    }
  }
  EXPECT_TRUE(torch::allclose(merged[0], merged[1], 0, 0));
  EXPECT_TRUE(torch::allclose(merged[0], merged[2], 1e-6, 1e-6));

  // PEFT's own folder: the alpha in adapter_config.json, none in the tensors.
  const auto folder = scratch.path() / "peft-folder";
  std::filesystem::create_directories(folder);
  io::NamedTensors without_alpha;
  for (const auto& [name, tensor] : peft) {
    if (!name.ends_with(".alpha")) without_alpha.emplace_back("base_model.model." + name, tensor);
  }
  io::WriteSafetensors((folder / "adapter_model.safetensors").string(), without_alpha);
  std::ofstream(folder / "adapter_config.json") << R"({"r": 4, "lora_alpha": 8, "peft_type": "LORA"})";
  const auto folder_adapter = ReadAdapter(folder.string(), *dit, wan::DiffusersDitKeyMap());
  {
    const std::vector<std::pair<const Adapter*, double>> stack = {{&folder_adapter, 0.7}};
    AppliedAdapters applied(*dit, stack);
    EXPECT_TRUE(torch::equal(
        torch::cat({parameters["blocks.0.self_attn.q.weight"].flatten(),
                    parameters["blocks.0.self_attn.q.bias"].flatten(), parameters["patch_embedding.weight"].flatten(),
                    parameters["blocks.1.ffn.0.weight"].flatten()}),
        merged[0]));
  }

  // Two adapters stacked: the sum of both; bf16 weights come back bit for bit too.
  const auto peft_adapter =
      ReadAdapter((scratch.path() / "peft.safetensors").string(), *dit, wan::DiffusersDitKeyMap());
  dit->SetComputeDType(torch::kBFloat16);
  parameters = dit->named_parameters();
  const auto before = parameters["blocks.1.cross_attn.k.weight"].clone();
  {
    const std::vector<std::pair<const Adapter*, double>> stack = {{&peft_adapter, 1.0}, {&peft_adapter, -1.0}};
    AppliedAdapters applied(*dit, stack);
    EXPECT_TRUE(torch::equal(parameters["blocks.1.cross_attn.k.weight"], before));  // +Δ − Δ, rounded once
  }
  EXPECT_TRUE(torch::equal(parameters["blocks.1.cross_attn.k.weight"], before));
}

TEST(LoraTest, ABadAdapterIsRefusedNamingEveryBadKey) {
  torch::NoGradGuard no_grad;
  wan::WanDit dit(SmallConfig());
  const auto q = dit->named_parameters()["blocks.0.self_attn.q.weight"];
  io::NamedTensors tensors = {
      {"diffusion_model.blocks.7.self_attn.q.lora_A.weight", torch::zeros({4, 32})},  // no block 7
      {"diffusion_model.blocks.7.self_attn.q.lora_B.weight", torch::zeros({32, 4})},
      {"diffusion_model.blocks.0.self_attn.q.lora_A.weight", torch::zeros({4, 31})},  // in 31, not 32
      {"diffusion_model.blocks.0.self_attn.q.lora_B.weight", torch::zeros({q.size(0), 4})},
      {"diffusion_model.blocks.0.self_attn.k.lora_A.weight", torch::zeros({4, 32})},  // no lora_B
      {"diffusion_model.blocks.1.ffn.2.diff", torch::zeros({3, 3})},                  // not the weight's shape
      {"diffusion_model.blocks.1.ffn.2.hada_w1_a", torch::zeros({3})},                // LoHa: not supported
      {"diffusion_model.blocks.1.self_attn.v.lora_A.weight", torch::zeros({4, 32})},  // a good one
      {"diffusion_model.blocks.1.self_attn.v.lora_B.weight", torch::zeros({32, 4})},
  };
  testing::ScratchDir scratch;
  const auto path = (scratch.path() / "bad.safetensors").string();
  io::WriteSafetensors(path, tensors);
  try {
    ReadAdapter(path, *dit, wan::DiffusersDitKeyMap());
    FAIL() << "a bad adapter was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string message = e.what();
    EXPECT_NE(message.find("6 problem(s)"), std::string::npos) << message;
    for (const char* key : {"blocks.7.self_attn.q.lora_A.weight", "blocks.7.self_attn.q.lora_B.weight",
                            "blocks.0.self_attn.q.lora_A.weight", "blocks.0.self_attn.k.lora_A.weight",
                            "blocks.1.ffn.2.diff", "hada_w1_a"}) {
      EXPECT_NE(message.find(key), std::string::npos) << key << " not named in: " << message;
    }
    EXPECT_EQ(message.find("self_attn.v"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace vidgen::lora

namespace vidgen::lora {
namespace {

// Snapshot of every parameter, for bit-for-bit comparisons.
std::map<std::string, at::Tensor> Snapshot(torch::nn::Module& module) {
  std::map<std::string, at::Tensor> values;
  for (const auto& item : module.named_parameters()) values[item.key()] = item.value().clone();
  return values;
}

bool Equal(torch::nn::Module& module, const std::map<std::string, at::Tensor>& values) {
  for (const auto& item : module.named_parameters()) {
    if (!torch::equal(item.value(), values.at(item.key()))) return false;
  }
  return true;
}

TEST(LoraTest, MergedSetsSwitchPerJobKeepTheLastFewAndComeBackToTheBaseExactly) {
  torch::NoGradGuard no_grad;
  wan::WanDit dit(SmallConfig());
  for (auto& p : dit->parameters()) p.normal_(0, 0.2);
  dit->SetComputeDType(torch::kBFloat16);  // the merge rounds into bf16; the base must still come back exactly
  const auto reference = MakeReference(dit);
  io::NamedTensors first, second;
  for (const auto& [name, pair] : reference.pairs) {
    first.emplace_back(name + ".lora_A.weight", pair.first);
    first.emplace_back(name + ".lora_B.weight", pair.second);
    second.emplace_back(name + ".lora_A.weight", pair.first * -3);
    second.emplace_back(name + ".lora_B.weight", pair.second);
  }
  testing::ScratchDir scratch;
  io::WriteSafetensors((scratch.path() / "a.safetensors").string(), first);
  io::WriteSafetensors((scratch.path() / "b.safetensors").string(), second);
  const auto a = ReadAdapter((scratch.path() / "a.safetensors").string(), *dit, {});
  const auto b = ReadAdapter((scratch.path() / "b.safetensors").string(), *dit, {});
  const AdapterSet set_a = {{&a, 1.0}}, set_b = {{&b, 0.5}}, set_ab = {{&a, 1.0}, {&b, 0.5}};

  const auto base = Snapshot(*dit);
  std::map<std::string, at::Tensor> merged_a;
  {
    AppliedAdapters applied(*dit, set_a);  // what one merge of the set makes
    merged_a = Snapshot(*dit);
  }
  MergedSets sets(*dit, /*capacity=*/1);
  sets.Use(set_a);
  EXPECT_TRUE(Equal(*dit, merged_a));
  sets.Use({});
  EXPECT_TRUE(Equal(*dit, base));
  sets.Use(set_a);  // kept: copied back, not merged again
  EXPECT_EQ(sets.merges(), 1u);
  EXPECT_TRUE(Equal(*dit, merged_a));
  sets.Use(set_b);
  EXPECT_FALSE(Equal(*dit, merged_a));
  sets.Use(set_a);
  EXPECT_EQ(sets.merges(), 2u);  // a and b both kept (one besides the one in use)
  EXPECT_TRUE(Equal(*dit, merged_a));
  sets.Use(set_ab);  // a third set pushes out b, the least recently used
  sets.Use(set_b);
  EXPECT_EQ(sets.merges(), 4u);
  sets.Use({});
  EXPECT_TRUE(Equal(*dit, base));
  EXPECT_GT(sets.kept_bytes(), 0);

  MergedSets none_kept(*dit, /*capacity=*/0);
  none_kept.Use(set_a);
  none_kept.Use(set_b);
  none_kept.Use(set_a);
  EXPECT_EQ(none_kept.merges(), 3u);
  EXPECT_TRUE(Equal(*dit, merged_a));
  EXPECT_EQ(none_kept.kept_bytes(), 0);  // no host copy of a merged set, not even of the one in use
  none_kept.Use({});
  EXPECT_TRUE(Equal(*dit, base));
}

}  // namespace
}  // namespace vidgen::lora
