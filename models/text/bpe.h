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

class BytePairEncoder {
 public:
  // `end_of_word` is appended to a piece's last symbol before merging (CLIP's "</w>"), empty for GPT-2 style.
  BytePairEncoder(std::unordered_map<std::string, std::int64_t> vocab,
                  const std::vector<std::pair<std::string, std::string>>& merges, std::string end_of_word = "");

  // The ids of one piece of raw text. Throws Error(INVALID_ARGUMENT) for a symbol the vocabulary lacks.
  std::vector<std::int64_t> Encode(std::string_view piece) const;
  // The id of a whole token; throws Error(NOT_FOUND) naming it when absent.
  std::int64_t Id(const std::string& token) const;
  bool Has(const std::string& token) const { return vocab_.contains(token); }

 private:
  std::unordered_map<std::string, std::int64_t> vocab_;
  std::unordered_map<std::string, int> ranks_;  // "left\x01right" -> merge rank
  std::string end_of_word_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache_;
};

}  // namespace vidgen::text
