// Byte-level byte-pair encoding, as GPT-2, LLaMA 3 and CLIP tokenize: text is split into pieces by a Unicode regex,
// each piece's UTF-8 bytes become printable symbols (GPT-2's bytes_to_unicode), and ranked merges join symbols
// until none applies. The readers of the released tokenizer files build on this.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vidgen::text {

// The symbol (UTF-8) that stands for each byte.
const std::array<std::string, 256>& ByteSymbols();

// CLIP's clean-up of a text before its regex (transformers' CLIPTokenizer without ftfy, i.e. BERT's BasicTokenizer
// without accent stripping or punctuation splits): control characters, NUL and U+FFFD dropped, white space made
// one space between words, CJK ideographs set apart as words, NFC, and every word lower-cased by Unicode's rules
// ("É" -> "é"). Words joined by single spaces.
std::string ClipNormalize(const std::string& text);

// Splits text by a regex with Unicode classes and look-ahead (ICU), as tokenizers' pre-tokenizers do.
class RegexSplitter {
 public:
  // Throws Error(INVALID_ARGUMENT) when the pattern does not compile.
  RegexSplitter(const std::string& pattern, bool case_insensitive);
  ~RegexSplitter();
  // The matches in order; with keep_gaps, the text between them too (HF's "Isolated" split).
  std::vector<std::string> Split(const std::string& text, bool keep_gaps) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct BpeOptions {
  // Appended to a piece's last symbol before merging (CLIP's "</w>"), empty for GPT-2 style.
  std::string end_of_word;
  // A piece whose symbols are one vocabulary entry is that token, merges or not (tokenizers' `ignore_merges`, set
  // by LLaMA 3).
  bool ignore_merges = false;
};

class BytePairEncoder {
 public:
  BytePairEncoder(std::unordered_map<std::string, std::int64_t> vocab,
                  const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options = {});

  // The ids of one piece of raw text. Throws Error(INVALID_ARGUMENT) for a symbol the vocabulary lacks.
  std::vector<std::int64_t> Encode(std::string_view piece) const;
  // The id of a whole token; throws Error(NOT_FOUND) naming it when absent.
  std::int64_t Id(const std::string& token) const;
  bool Has(const std::string& token) const { return vocab_.contains(token); }

 private:
  std::unordered_map<std::string, std::int64_t> vocab_;
  std::unordered_map<std::string, int> ranks_;  // "left\x01right" -> merge rank
  BpeOptions options_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache_;
};

}  // namespace vidgen::text
