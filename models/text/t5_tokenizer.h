// A T5 tokenizer: a sentencepiece model in the T5 layout (pad 0, </s> 1), after the prompt cleaning of Hugging
// Face's tokenizers (Wan2.1's umT5 runs through it as `clean='whitespace'`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vidgen::text {

class SentencePiece;

// The reference's cleaning (html.unescape twice, strip, runs of white space folded to one space). The reference
// also runs ftfy.fix_text, which repairs mis-decoded text; vidgen expects valid UTF-8 and does not.
std::string CleanPrompt(std::string_view text);

struct TokenizedText {
  at::Tensor ids;   // [B, text_len] int64, padded with 0
  at::Tensor mask;  // [B, text_len] int64, 1 for real tokens (</s> included)
};

class T5Tokenizer {
 public:
  static constexpr int kPadId = 0;
  static constexpr int kEosId = 1;

  // Loads a sentencepiece model (google/umt5-xxl/spiece.model). Throws Error naming the file.
  T5Tokenizer(const std::string& model_path, std::int64_t text_len);
  ~T5Tokenizer();

  // Cleans each text, tokenizes it, appends </s>, cuts to text_len keeping </s> last, and pads.
  TokenizedText Encode(const std::vector<std::string>& texts) const;
  // The ids of one text before padding (</s> included, not cut): how long a prompt is.
  std::vector<int> Ids(std::string_view text) const;
  std::int64_t text_len() const { return text_len_; }
  int vocab_size() const;

 private:
  std::unique_ptr<SentencePiece> processor_;
  std::int64_t text_len_;
};

}  // namespace vidgen::text
