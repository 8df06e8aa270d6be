#include "models/text/hf_tokenizers.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/error.h"
#include "models/io/json_config.h"

namespace vidgen::text {
namespace {

namespace fs = std::filesystem;

// A tokenizer's JSON file, with errors naming it.
nlohmann::json ReadJson(const fs::path& path) {
  return io::JsonConfig(path.string(), "tokenizer file").json();
}

// Right-padded rows of ids, with their masks.
TokenBatch Pad(const std::vector<std::vector<std::int64_t>>& rows, std::int64_t max_length, std::int64_t pad) {
  auto ids = torch::full({static_cast<std::int64_t>(rows.size()), max_length}, pad, torch::kLong);
  auto mask = torch::zeros_like(ids);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto length = std::min<std::int64_t>(max_length, static_cast<std::int64_t>(rows[i].size()));
    const auto b = static_cast<std::int64_t>(i);
    ids[b].slice(0, 0, length).copy_(torch::tensor(std::vector<std::int64_t>(rows[i].begin(), rows[i].begin() + length)));
    mask[b].slice(0, 0, length).fill_(1);
  }
  return {ids, mask};
}

// The regex of a tokenizer.json pre-tokenizer: its Split step (alone or in a Sequence).
std::string SplitPattern(const nlohmann::json& pre) {
  if (pre.is_null()) return "";
  if (pre.value("type", "") == "Split") return pre.at("pattern").value("Regex", "");
  if (pre.value("type", "") == "Sequence") {
    for (const auto& step : pre.at("pretokenizers")) {
      if (auto pattern = SplitPattern(step); !pattern.empty()) return pattern;
    }
  }
  return "";
}

// GPT-2's pattern: the ByteLevel pre-tokenizer's own regex when no Split is given.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

LlamaTokenizer::LlamaTokenizer(const std::string& dir) {
  const auto path = fs::path(dir) / "tokenizer.json";
  const auto json = ReadJson(path);
  try {
    const auto& model = json.at("model");
    if (model.value("type", "BPE") != "BPE") {
      Fail(ErrorCode::kUnimplemented, "'{}': only BPE tokenizers are supported", path.string());
    }
    std::unordered_map<std::string, std::int64_t> vocab = model.at("vocab").get<std::unordered_map<std::string, std::int64_t>>();
    std::vector<std::pair<std::string, std::string>> merges;
    for (const auto& merge : model.at("merges")) {
      if (merge.is_array()) {
        merges.emplace_back(merge.at(0).get<std::string>(), merge.at(1).get<std::string>());
      } else {
        const auto text = merge.get<std::string>();
        const auto space = text.find(' ');
        merges.emplace_back(text.substr(0, space), text.substr(space + 1));
      }
    }
    for (const auto& added : json.value("added_tokens", nlohmann::json::array())) {
      const std::string content = added.at("content");
      vocab[content] = added.at("id").get<std::int64_t>();
      specials_.emplace_back(content, added.at("id").get<std::int64_t>());
    }
    std::sort(specials_.begin(), specials_.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    BpeOptions options;
    options.ignore_merges = model.value("ignore_merges", false);
    bpe_ = std::make_unique<BytePairEncoder>(std::move(vocab), merges, options);
    auto pattern = SplitPattern(json.value("pre_tokenizer", nlohmann::json()));
    splitter_ = std::make_unique<RegexSplitter>(pattern.empty() ? kGpt2Pattern : pattern, false);
    // The BOS the post-processor puts in front of every text.
    const auto& post = json.value("post_processor", nlohmann::json());
    std::vector<nlohmann::json> templates;
    if (post.value("type", "") == "TemplateProcessing") templates.push_back(post);
    if (post.value("type", "") == "Sequence") {
      for (const auto& step : post.at("processors")) {
        if (step.value("type", "") == "TemplateProcessing") templates.push_back(step);
      }
    }
    for (const auto& step : templates) {
      for (const auto& item : step.at("single")) {
        if (item.contains("SpecialToken")) {
          bos_ = bpe_->Id(item.at("SpecialToken").at("id").get<std::string>());
          break;
        }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, "'{}' is not a tokenizer.json vidgen can read: {}", path.string(), e.what());
  }
  // The pad token: tokenizer_config.json's, else the end of text.
  pad_ = bos_ >= 0 ? bos_ : 0;
  const auto config_path = fs::path(dir) / "tokenizer_config.json";
  std::string pad;
  if (fs::exists(config_path)) {
    const auto config = ReadJson(config_path);
    if (config.contains("pad_token") && config.at("pad_token").is_string()) pad = config.at("pad_token");
  }
  for (const char* candidate : {pad.c_str(), "<|end_of_text|>", "</s>"}) {
    if (*candidate && bpe_->Has(candidate)) {
      pad_ = bpe_->Id(candidate);
      break;
    }
  }
}

std::vector<std::int64_t> LlamaTokenizer::Encode(const std::string& text) const {
  std::vector<std::int64_t> ids;
  std::size_t start = 0, at = 0;
  auto flush = [&](std::size_t end) {
    if (end <= start) return;
    for (const auto& piece : splitter_->Split(text.substr(start, end - start), /*keep_gaps=*/true)) {
      const auto piece_ids = bpe_->Encode(piece);
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
  };
  while (at < text.size()) {
    const auto special = std::find_if(specials_.begin(), specials_.end(), [&](const auto& entry) {
      return text.compare(at, entry.first.size(), entry.first) == 0;
    });
    if (special == specials_.end()) {
      ++at;
      continue;
    }
    flush(at);
    ids.push_back(special->second);
    at += special->first.size();
    start = at;
  }
  flush(text.size());
  return ids;
}

TokenBatch LlamaTokenizer::Batch(const std::vector<std::string>& texts, std::int64_t max_length) const {
  std::vector<std::vector<std::int64_t>> rows;
  for (const auto& text : texts) {
    std::vector<std::int64_t> row;
    if (bos_ >= 0) row.push_back(bos_);
    const auto ids = Encode(text);
    row.insert(row.end(), ids.begin(), ids.end());
    rows.push_back(std::move(row));
  }
  return Pad(rows, max_length, pad_);
}

ClipTokenizer::ClipTokenizer(const std::string& dir) {
  const auto vocab_path = fs::path(dir) / "vocab.json", merges_path = fs::path(dir) / "merges.txt";
  auto vocab = ReadJson(vocab_path).get<std::unordered_map<std::string, std::int64_t>>();
  std::ifstream in(merges_path);
  if (!in) Fail(ErrorCode::kNotFound, "cannot read tokenizer file '{}'", merges_path.string());
  std::vector<std::pair<std::string, std::string>> merges;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("#version") || line.empty()) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos) {
      Fail(ErrorCode::kInvalidArgument, "'{}': merge '{}' is not two symbols", merges_path.string(), line);
    }
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  bpe_ = std::make_unique<BytePairEncoder>(std::move(vocab), merges, BpeOptions{.end_of_word = "</w>", .ignore_merges = false});
  bos_ = bpe_->Id("<|startoftext|>");
  eos_ = bpe_->Id("<|endoftext|>");
  splitter_ = std::make_unique<RegexSplitter>(
      R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)", true);
}

TokenBatch ClipTokenizer::Batch(const std::vector<std::string>& texts, std::int64_t max_length) const {
  std::vector<std::vector<std::int64_t>> rows;
  for (const auto& text : texts) {
    std::vector<std::int64_t> row = {bos_};
    for (const auto& piece : splitter_->Split(ClipNormalize(text), /*keep_gaps=*/false)) {
      const auto ids = bpe_->Encode(piece);
      row.insert(row.end(), ids.begin(), ids.end());
    }
    // Truncation keeps the end-of-text token, as the reference's tokenizer does.
    if (static_cast<std::int64_t>(row.size()) >= max_length) row.resize(static_cast<std::size_t>(max_length - 1));
    row.push_back(eos_);
    rows.push_back(std::move(row));
  }
  return Pad(rows, max_length, eos_);
}

}  // namespace vidgen::text
