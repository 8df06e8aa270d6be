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

struct SentencePieceTraining {
  int vocab_size = 256;
  std::string model_type = "unigram";  // or "bpe"
  // T5's layout: <pad> 0, </s> 1, <unk> 2, no <s>.
  int pad_id = 0, eos_id = 1, unk_id = 2, bos_id = -1;
};

// Trains a model on `sentences` (one per line, single-threaded, so the same sentences give the same model) and
// writes it to `model_path` (a .model file). Throws Error naming what sentencepiece refused.
void TrainSentencePiece(const std::vector<std::string>& sentences, const std::string& model_path,
                        const SentencePieceTraining& options = {});

}  // namespace vidgen::text
