// SentencePiece: a sentencepiece model, reached through the isolated module of sentencepiece_shim.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vidgen::text {

class SentencePiece {
 public:
  // Loads a .model file. Throws Error naming the file (or the module, when it cannot be found).
  explicit SentencePiece(const std::string& model_path);
  ~SentencePiece();
  SentencePiece(const SentencePiece&) = delete;
  SentencePiece& operator=(const SentencePiece&) = delete;

  // Thread-safe, as sentencepiece's Encode is.
  std::vector<int> Encode(std::string_view text) const;
  int vocab_size() const;

 private:
  void* processor_ = nullptr;
};

}  // namespace vidgen::text
