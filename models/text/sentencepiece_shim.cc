// A C interface over libsentencepiece, built as its own loadable module.
//
// Debian's libsentencepiece carries a private copy of protobuf-lite 3.14 and exports its symbols; LibTorch pulls in
// the system's libprotobuf 3.21. Linked into one program the two copies interpose and the process crashes before
// main. SentencePiece (sentencepiece.cc) therefore loads this module with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so that
// sentencepiece binds to its own protobuf and nothing else sees it.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <vector>

namespace sentencepiece::logging {
void SetMinLogLevel(int level);  // exported by libsentencepiece, not declared in its public headers
}

namespace {

char* CopyString(const std::string& text) {
  char* out = new char[text.size() + 1];
  std::memcpy(out, text.c_str(), text.size() + 1);
  return out;
}

}  // namespace

extern "C" {

// Returns a processor of the serialized model `bytes`, or nullptr with *error set (free it with
// vidgen_spm_free_string).
void* vidgen_spm_load(const char* bytes, std::size_t size, char** error) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->LoadFromSerializedProto(std::string_view(bytes, size));
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    return nullptr;
  }
  return processor.release();
}

// Encodes UTF-8 `text` into *ids (free with vidgen_spm_free_ids); returns 0, or -1 with *error set.
int vidgen_spm_encode(void* processor, const char* text, std::size_t size, int** ids, std::size_t* count,
                      char** error) {
  std::vector<int> pieces;
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(processor)->Encode(std::string(text, size), &pieces);
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    return -1;
  }
  *ids = new int[pieces.size()];
  std::memcpy(*ids, pieces.data(), pieces.size() * sizeof(int));
  *count = pieces.size();
  return 0;
}

int vidgen_spm_vocab_size(void* processor) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(processor)->GetPieceSize();
}

// Trains a model from a command line of sentencepiece_trainer flags; returns 0, or -1 with *error set.
int vidgen_spm_train(const char* arguments, char** error) {
  // Quiet: under RTLD_DEEPBIND this module's std::cerr is libstdc++'s own, not the program's initialised copy, so
  // sentencepiece must not log (its status carries any error).
  sentencepiece::logging::SetMinLogLevel(3);
  const auto status = sentencepiece::SentencePieceTrainer::Train(arguments);
  if (!status.ok()) {
    *error = CopyString(status.ToString());
    return -1;
  }
  return 0;
}

void vidgen_spm_free(void* processor) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(processor);
}
void vidgen_spm_free_ids(int* ids) {
  delete[] ids;
}
void vidgen_spm_free_string(char* text) {
  delete[] text;
}

}  // extern "C"
