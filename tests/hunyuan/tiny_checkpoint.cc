#include "tests/hunyuan/tiny_checkpoint.h"

#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/hunyuan/loader.h"
#include "models/hunyuan/text_encoders.h"
#include "models/hunyuan/vae.h"
#include "models/io/tensor_file.h"
#include "models/text/bpe.h"
#include "tests/support/golden.h"

namespace vidgen::testing {
namespace {

namespace fs = std::filesystem;

io::NamedTensors Parameters(torch::nn::Module& module) {
  io::NamedTensors tensors;
  for (const auto& item : module.named_parameters()) tensors.emplace_back(item.key(), item.value().detach().clone());
  return tensors;
}

void WriteJson(const fs::path& path, const nlohmann::json& json) {
  std::ofstream(path) << json.dump(2);
}

// Merges that build a few words of the prompts the tests use.
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"t", "h"}, {"th", "e"}, {"Ġ", "the"}, {"r", "e"}, {"re", "d"}, {"Ġ", "red"}, {"b", "a"}, {"ba", "l"}, {"bal", "l"}};

}  // namespace

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

fs::path MakeTinyHunyuanCheckpoint(const fs::path& dir) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(42);
  const auto cases = GoldenCases("hunyuan_dit");
  if (cases.empty()) throw std::runtime_error("no hunyuan golden case");
  const auto golden = GoldenCase(cases.front()).CheckpointDir();
  fs::create_directories(dir);
  fs::copy(golden / "transformers", dir / "transformers", fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  const auto config = hunyuan::LoadHunyuanDit(golden.string())->config();

  // VAE: the released topology, narrow.
  hunyuan::HunyuanVaeConfig vae_config;
  vae_config.block_out_channels = {8, 8, 16, 16};
  vae_config.norm_num_groups = 4;
  vae_config.layers_per_block = 1;
  hunyuan::HunyuanVae vae(vae_config);
  fs::create_directories(dir / "vae");
  io::WriteSafetensors((dir / "vae" / "diffusion_pytorch_model.safetensors").string(), Parameters(*vae));
  WriteJson(dir / "vae" / "config.json", {{"block_out_channels", vae_config.block_out_channels},
                                          {"layers_per_block", vae_config.layers_per_block},
                                          {"norm_num_groups", vae_config.norm_num_groups},
                                          {"latent_channels", 16},
                                          {"scaling_factor", 0.476986}});

  // LLaMA: byte-level vocabulary, a few merges, LLaMA 3's special tokens.
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[text::ByteSymbols()[static_cast<std::size_t>(b)]] = b;
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& [left, right] : kMerges) {
    if (!vocab.contains(left + right)) vocab[left + right] = vocab.size();
    merges.push_back(left + " " + right);
  }
  nlohmann::json added = nlohmann::json::array();
  for (const char* special : {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                              "<|eot_id|>"}) {
    added.push_back({{"id", vocab.size() + added.size()}, {"content", special}, {"special", true}});
  }
  const std::int64_t llama_vocab = static_cast<std::int64_t>(vocab.size() + added.size());
  fs::create_directories(dir / "text_encoder");
  WriteJson(dir / "text_encoder" / "tokenizer.json",
            {{"added_tokens", added},
             {"pre_tokenizer",
              {{"type", "Sequence"},
               {"pretokenizers",
                {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}},
                 {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
             {"post_processor",
              {{"type", "TemplateProcessing"},
               {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
             {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}});
  hunyuan::LlamaConfig llama_config;
  llama_config.vocab_size = llama_vocab;
  llama_config.hidden_size = config.text_states_dim;
  llama_config.intermediate_size = 2 * config.text_states_dim;
  llama_config.num_hidden_layers = 4;
  llama_config.num_attention_heads = 4;
  llama_config.num_key_value_heads = 2;
  hunyuan::LlamaEncoder llama(llama_config);
  io::WriteSafetensors((dir / "text_encoder" / "model.safetensors").string(), Parameters(*llama));
  WriteJson(dir / "text_encoder" / "config.json",
            {{"vocab_size", llama_vocab}, {"hidden_size", llama_config.hidden_size},
             {"intermediate_size", llama_config.intermediate_size}, {"num_hidden_layers", 4},
             {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5},
             {"rope_theta", 500000.0}, {"rope_scaling", nullptr}});

  // CLIP: byte symbols with and without "</w>", merges, start and end of text.
  nlohmann::json clip_vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    clip_vocab[text::ByteSymbols()[static_cast<std::size_t>(b)]] = clip_vocab.size();
    clip_vocab[text::ByteSymbols()[static_cast<std::size_t>(b)] + "</w>"] = clip_vocab.size();
  }
  std::string clip_merges = "#version: 0.2\n";
  for (const auto& [left, right] : std::vector<std::pair<std::string, std::string>>{
           {"t", "h"}, {"th", "e</w>"}, {"r", "e"}, {"re", "d</w>"}}) {
    clip_merges += left + " " + right + "\n";
    if (!clip_vocab.contains(left + right)) clip_vocab[left + right] = clip_vocab.size();
  }
  clip_vocab["<|startoftext|>"] = clip_vocab.size();
  const std::int64_t eos = static_cast<std::int64_t>(clip_vocab.size());
  clip_vocab["<|endoftext|>"] = eos;
  fs::create_directories(dir / "text_encoder_2");
  WriteJson(dir / "text_encoder_2" / "vocab.json", clip_vocab);
  std::ofstream(dir / "text_encoder_2" / "merges.txt") << clip_merges;
  hunyuan::ClipTextConfig clip_config;
  clip_config.vocab_size = eos + 1;
  clip_config.hidden_size = config.text_states_dim_2;
  clip_config.intermediate_size = 2 * config.text_states_dim_2;
  clip_config.num_hidden_layers = 2;
  clip_config.num_attention_heads = 2;
  clip_config.eos_token_id = eos;
  hunyuan::ClipTextEncoder clip(clip_config);
  io::WriteSafetensors((dir / "text_encoder_2" / "model.safetensors").string(), Parameters(*clip));
  WriteJson(dir / "text_encoder_2" / "config.json",
            {{"vocab_size", clip_config.vocab_size}, {"hidden_size", clip_config.hidden_size},
             {"intermediate_size", clip_config.intermediate_size}, {"num_hidden_layers", 2},
             {"num_attention_heads", 2}, {"max_position_embeddings", 77}, {"eos_token_id", eos},
             {"hidden_act", "quick_gelu"}});
  return dir;
}

}  // namespace vidgen::testing
