// Byte-level BPE tokenizers read from Hugging Face's files, as HunyuanVideo's text encoders use them: a
// `tokenizer.json` (LLaMA 3: its pre-tokenizer regex, special tokens, ignore_merges) and CLIP's `vocab.json` +
// `merges.txt` (BasicTokenizer's clean-up, lower case, "</w>" word ends).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/text/bpe.h"

namespace vidgen::text {

struct TokenBatch {
  at::Tensor ids;   // [B, max_length] int64
  at::Tensor mask;  // [B, max_length] int64, 1 for real tokens (a prefix)
};

class LlamaTokenizer {
 public:
  // Reads `tokenizer.json` (and `tokenizer_config.json` beside it for the pad token, when present). Throws Error
  // naming the file on what it cannot read.
  explicit LlamaTokenizer(const std::string& dir);

  // Token ids of a text: special tokens written in it ("<|eot_id|>") are recognised; no BOS.
  std::vector<std::int64_t> Encode(const std::string& text) const;
  // BOS + tokens, truncated to and right-padded to `max_length`, as tokenizer(..., padding="max_length").
  TokenBatch Batch(const std::vector<std::string>& texts, std::int64_t max_length) const;
  std::int64_t bos_id() const { return bos_; }
  std::int64_t pad_id() const { return pad_; }

 private:
  std::unique_ptr<BytePairEncoder> bpe_;
  std::unique_ptr<RegexSplitter> splitter_;
  std::vector<std::pair<std::string, std::int64_t>> specials_;  // longest first
  std::int64_t bos_ = -1, pad_ = 0;
};

class ClipTokenizer {
 public:
  // Reads `vocab.json` and `merges.txt`.
  explicit ClipTokenizer(const std::string& dir);

  // <|startoftext|> + tokens of the cleaned, lower-cased text (text::ClipNormalize) + <|endoftext|>, truncated to and padded
  // with <|endoftext|> to `max_length`.
  TokenBatch Batch(const std::vector<std::string>& texts, std::int64_t max_length = 77) const;
  std::int64_t eos_id() const { return eos_; }

 private:
  std::unique_ptr<BytePairEncoder> bpe_;
  std::unique_ptr<RegexSplitter> splitter_;
  std::int64_t bos_ = 0, eos_ = 0;
};

}  // namespace vidgen::text
