// HunyuanVideo's tokenizers, text encoders and whole pipeline on the golden checkpoint, beyond what the reference
// cases show: tokenizations derived from the formats' definitions, masking, determinism, the released key names.

#include <filesystem>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/hunyuan/pipeline.h"
#include "models/io/tensor_file.h"
#include "models/text/bpe.h"
#include "tests/support/expect_error.h"
#include "tests/support/golden.h"

namespace vidgen::hunyuan {
namespace {

namespace fs = std::filesystem;

// The LLaMA-3 pre-tokenizer regex, as its tokenizer.json spells it.
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A whole HunyuanVideo checkpoint: the one of the golden pipeline case.
class HunyuanTextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto cases = testing::GoldenCases("hunyuan_pipeline");
    ASSERT_FALSE(cases.empty()) << "no hunyuan_pipeline golden case";
    dir_ = testing::GoldenCase(cases.front()).CheckpointDir();
  }
  fs::path dir_;
};

TEST(BytePairTest, BytesMapToGpt2Symbols) {
  const auto& symbols = text::ByteSymbols();
  EXPECT_EQ(symbols[' '], "\u0120");   // Ġ
  EXPECT_EQ(symbols['\n'], "\u010A");  // Ċ
  EXPECT_EQ(symbols['a'], "a");
  EXPECT_EQ(symbols[0xE9], "\u00E9");  // printable Latin-1 stands for itself
  EXPECT_EQ(symbols[0x00], "\u0100");
}

TEST(BytePairTest, TheLlama3RegexSplitsAsItsDefinitionSays) {
  const text::RegexSplitter splitter(kLlama3Pattern, false);
  // Letters keep one leading non-letter; digits go in threes; a space before digits stands alone; contractions
  // split off case-insensitively; newlines gather.
  EXPECT_EQ(splitter.Split("Hello world's 12345!!\n\nÉté", true),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", "!!\n\n", "Été"}));
  EXPECT_EQ(splitter.Split("I'M  ok", true), (std::vector<std::string>{"I", "'M", " ", " ok"}));
}

TEST(BytePairTest, MergesApplyByRank) {
  std::unordered_map<std::string, std::int64_t> vocab;
  for (int b = 0; b < 256; ++b) vocab[text::ByteSymbols()[static_cast<std::size_t>(b)]] = b;
  vocab["ab"] = 300;
  vocab["bc"] = 301;
  vocab["abc"] = 302;
  // "b c" outranks "a b": "abc" -> a, bc; then no merge of (a, bc) exists.
  const text::BytePairEncoder ranked(vocab, {{"b", "c"}, {"a", "b"}, {"ab", "c"}});
  EXPECT_EQ(ranked.Encode("abc"), (std::vector<std::int64_t>{'a', 301}));
  const text::BytePairEncoder other(vocab, {{"a", "b"}, {"ab", "c"}, {"b", "c"}});
  EXPECT_EQ(other.Encode("abc"), (std::vector<std::int64_t>{302}));
  EXPECT_EQ(other.Encode("abab"), (std::vector<std::int64_t>{300, 300}));
}

TEST(BytePairTest, IgnoreMergesTakesAWholeVocabularyWord) {
  std::unordered_map<std::string, std::int64_t> vocab;
  for (int b = 0; b < 256; ++b) vocab[text::ByteSymbols()[static_cast<std::size_t>(b)]] = b;
  vocab["zebra"] = 300;  // no merge builds it
  vocab["ab"] = 301;
  const text::BytePairEncoder plain(vocab, {{"a", "b"}});
  EXPECT_EQ(plain.Encode("zebra"), (std::vector<std::int64_t>{'z', 'e', 'b', 'r', 'a'}));
  const text::BytePairEncoder whole(vocab, {{"a", "b"}}, {.end_of_word = "", .ignore_merges = true});
  EXPECT_EQ(whole.Encode("zebra"), (std::vector<std::int64_t>{300}));
  EXPECT_EQ(whole.Encode("zebras"), (std::vector<std::int64_t>{'z', 'e', 'b', 'r', 'a', 's'}));
  EXPECT_EQ(whole.Encode("abab"), (std::vector<std::int64_t>{301, 301}));
}

TEST(ClipNormalizeTest, CleansSplitsAndLowerCasesAsBasicTokenizer) {
  EXPECT_EQ(text::ClipNormalize("  The\tRED\n\nball  "), "the red ball");
  EXPECT_EQ(text::ClipNormalize("ÉTÉ Ωμέγα ΣΑΣ"), "été ωμέγα σας");  // Unicode case mapping, final sigma
  EXPECT_EQ(text::ClipNormalize("a\u200Bb\x01" "c\uFFFDd"), "abcd");    // format and control characters dropped
  EXPECT_EQ(text::ClipNormalize("猫が好き"), "猫 が 好 き");           // ideographs set apart, kana not
  EXPECT_EQ(text::ClipNormalize("e\u0301"), "é");                     // NFC
  EXPECT_EQ(text::ClipNormalize("a\u3000b\u2028c"), "a b c");         // other white space and separators
}

TEST_F(HunyuanTextTest, LlamaTokenizerReadsTokenizerJson) {
  const text::LlamaTokenizer tokenizer((dir_ / "text_encoder").string());
  const auto word = tokenizer.Encode(" the");
  const auto ids = tokenizer.Encode("<|eot_id|> the<|eot_id|>");
  ASSERT_EQ(ids.size(), word.size() + 2);
  EXPECT_EQ(ids.front(), ids.back());
  EXPECT_EQ(std::vector<std::int64_t>(ids.begin() + 1, ids.end() - 1), word);
  const auto batch = tokenizer.Batch({" the red", " the"}, 12);
  EXPECT_EQ(batch.ids[0][0].item<std::int64_t>(), tokenizer.bos_id());
  EXPECT_EQ(batch.mask.sum(1)[0].item<std::int64_t>(), static_cast<std::int64_t>(1 + tokenizer.Encode(" the red").size()));
  EXPECT_EQ(batch.mask.sum(1)[1].item<std::int64_t>(), static_cast<std::int64_t>(1 + word.size()));
  EXPECT_EQ(batch.ids[1][11].item<std::int64_t>(), tokenizer.pad_id());
  EXPECT_EQ(tokenizer.Batch({std::string(40, 'x')}, 6).mask.sum().item<std::int64_t>(), 6);  // truncated
}

TEST_F(HunyuanTextTest, ClipTokenizerLowerCasesAndEndsWords) {
  const text::ClipTokenizer tokenizer((dir_ / "text_encoder_2").string());
  const auto batch = tokenizer.Batch({"The   RED", "the red", "ÉTÉ", "été"}, 12);
  EXPECT_TRUE(torch::equal(batch.ids[0], batch.ids[1]));
  EXPECT_TRUE(torch::equal(batch.ids[2], batch.ids[3]));
  const auto length = batch.mask.sum(1)[0].item<std::int64_t>();
  EXPECT_GE(length, 4);  // <|startoftext|>, at least one token a word, <|endoftext|>
  EXPECT_EQ(batch.ids[0][length - 1].item<std::int64_t>(), tokenizer.eos_id());
  EXPECT_EQ(batch.ids[0][11].item<std::int64_t>(), tokenizer.eos_id());  // padded with the end of text
  const auto truncated = tokenizer.Batch({std::string(30, 'q')}, 8);
  EXPECT_EQ(truncated.mask.sum().item<std::int64_t>(), 8);
  EXPECT_EQ(truncated.ids[0][7].item<std::int64_t>(), tokenizer.eos_id());
}

TEST_F(HunyuanTextTest, TextEncodersMaskAndCrop) {
  const auto llama_dir = (dir_ / "text_encoder").string();
  auto llama = encoders::LoadLlamaEncoder(llama_dir, torch::kFloat, torch::kCPU);
  const text::LlamaTokenizer tokenizer(llama_dir);
  const auto a = tokenizer.Batch({" the red ball"}, 12), b = tokenizer.Batch({" the red ball the"}, 12);
  const auto ha = llama->HiddenState(a.ids, a.mask), hb = llama->HiddenState(b.ids, b.mask);
  EXPECT_EQ(ha.sizes(), (std::vector<std::int64_t>{1, 12, llama->config().hidden_size}));
  // Causal: a longer prompt leaves the states of the shared prefix as they were.
  const auto shared = a.mask.sum().item<std::int64_t>();
  EXPECT_TRUE(torch::allclose(ha.slice(1, 0, shared), hb.slice(1, 0, shared), 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(llama->HiddenState(a.ids, a.mask), ha));  // deterministic
  EXPECT_FALSE(torch::allclose(llama->HiddenState(a.ids, a.mask, 1), ha));  // another layer

  const auto clip_dir = (dir_ / "text_encoder_2").string();
  auto clip = encoders::LoadClipTextEncoder(clip_dir, torch::kFloat, torch::kCPU);
  const text::ClipTokenizer clip_tokenizer(clip_dir);
  // The pooled state sits at the end of text, so padding after it changes nothing.
  const auto short_batch = clip_tokenizer.Batch({"the red"}, 8), long_batch = clip_tokenizer.Batch({"the red"}, 20);
  const auto short_pad = clip->Forward(short_batch.ids, short_batch.mask).pooled;
  const auto long_pad = clip->Forward(long_batch.ids, long_batch.mask).pooled;
  EXPECT_EQ(short_pad.sizes(), (std::vector<std::int64_t>{1, clip->config().hidden_size}));
  EXPECT_TRUE(torch::allclose(short_pad, long_pad, 1e-5, 1e-5));
}

TEST_F(HunyuanTextTest, ThePipelineMakesAVideoFromAPrompt) {
  HunyuanLoadOptions options;
  options.dtype = torch::kFloat;
  options.text_len = 32;
  auto pipeline = HunyuanPipeline::Load(dir_.string(), options);
  GenerationRequest request;
  request.prompt = "the red ball";
  request.width = 48;
  request.height = 32;
  request.frames = 9;
  request.steps = 4;
  request.guidance_scale = 6.0;
  request.shift = 7.0;
  int steps = 0;
  GenerationCallbacks callbacks;
  callbacks.on_step = [&](const StepProgress&) { ++steps; };
  const auto result = pipeline->Generate(request, callbacks);
  EXPECT_EQ(result.frames.sizes(), (std::vector<std::int64_t>{9, 32, 48, 3}));
  EXPECT_EQ(result.frames.scalar_type(), torch::kUInt8);
  EXPECT_EQ(steps, 4);
  EXPECT_EQ(result.stats.full_steps, 4);
  EXPECT_TRUE(torch::equal(pipeline->Generate(request, {}).frames, result.frames));  // the seed decides
  request.seed = 1;
  EXPECT_FALSE(torch::equal(pipeline->Generate(request, {}).frames, result.frames));

  // The prompt's states follow the template's crop: a prefix of real tokens, then padding.
  const auto text = pipeline->EncodeText("the red ball");
  EXPECT_EQ(text.states.size(0), 32);
  EXPECT_EQ(text.mask.sum().item<std::int64_t>(), static_cast<std::int64_t>(
      text::LlamaTokenizer((dir_ / "text_encoder").string()).Encode("the red ball<|eot_id|>").size()));

  request.frames = 10;
  EXPECT_FAILS(pipeline->Generate(request, {}), kInvalidArgument, "'frames': 10");
  request.frames = 9;
  request.width = 40;
  EXPECT_FAILS(pipeline->Generate(request, {}), kInvalidArgument, "'width': 40");
  request.width = 48;
  // A prompt longer than the text encoder reads is cut, as the reference's tokenizer does.
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "the red ball ";
  EXPECT_EQ(pipeline->EncodeText(long_prompt).mask.sum().item<std::int64_t>(), options.text_len);
  EXPECT_FAILS(HunyuanPipeline::Load((dir_ / "vae").string(), options), kNotFound, "no diffusion_pytorch_model");
}

}  // namespace
}  // namespace vidgen::hunyuan

namespace vidgen::hunyuan {
namespace {

TEST_F(HunyuanTextTest, TextEncodersHaveHuggingFacesNamesAndPrefixes) {
  const auto llama_dir = dir_ / "text_encoder";
  auto llama = encoders::LoadLlamaEncoder(llama_dir.string(), torch::kFloat, torch::kCPU);
  std::set<std::string> names;
  for (const auto& item : llama->named_parameters()) names.insert(item.key());
  const auto layers = static_cast<std::size_t>(llama->config().num_hidden_layers);
  EXPECT_EQ(names.size(), 1 + 9 * layers + 1);  // 290 for LLaMA-3-8B
  for (const char* name : {"embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.o_proj.weight",
                           "layers.0.mlp.gate_proj.weight", "layers.0.mlp.down_proj.weight",
                           "layers.0.input_layernorm.weight", "layers.0.post_attention_layernorm.weight",
                           "norm.weight"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
  // A LlamaForCausalLM save: "model." prefixes and an lm_head, read the same.
  const auto causal = fs::temp_directory_path() / ("vidgen-llama-causal-" + std::to_string(::getpid()));
  fs::create_directories(causal);
  fs::copy(llama_dir / "config.json", causal / "config.json");
  io::NamedTensors tensors;
  for (const auto& item : llama->named_parameters()) tensors.emplace_back("model." + item.key(), item.value().detach());
  tensors.emplace_back("lm_head.weight", torch::zeros({llama->config().vocab_size, llama->config().hidden_size}));
  io::WriteSafetensors((causal / "model.safetensors").string(), tensors);
  auto reloaded = encoders::LoadLlamaEncoder(causal.string(), torch::kFloat, torch::kCPU);
  fs::remove_all(causal);
  const auto ids = torch::tensor({{1, 2, 3}}, torch::kLong), mask = torch::ones({1, 3}, torch::kLong);
  EXPECT_TRUE(torch::equal(reloaded->HiddenState(ids, mask), llama->HiddenState(ids, mask)));

  auto clip = encoders::LoadClipTextEncoder((dir_ / "text_encoder_2").string(), torch::kFloat, torch::kCPU);
  names.clear();
  for (const auto& item : clip->named_parameters()) names.insert(item.key());
  EXPECT_EQ(names.size(), 2 + 16 * static_cast<std::size_t>(clip->config().num_hidden_layers) + 2);  // 196 for CLIP-L
  for (const char* name : {"text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
                           "text_model.encoder.layers.0.self_attn.q_proj.bias", "text_model.encoder.layers.0.layer_norm1.weight",
                           "text_model.encoder.layers.0.mlp.fc2.weight", "text_model.final_layer_norm.bias"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
}

}  // namespace
}  // namespace vidgen::hunyuan
