#include "models/text/sentencepiece.h"

#include <dlfcn.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/error.h"
#include "models/io/mapped_file.h"
#include "models/io/sentencepiece_model.h"

namespace vidgen::text {
namespace {

constexpr const char* kModuleName = "libvidgen_sentencepiece.so";

struct ShimApi {
  void* (*load)(const char*, std::size_t, char**);
  int (*encode)(void*, const char*, std::size_t, int**, std::size_t*, char**);
  int (*vocab_size)(void*);
  void (*free_processor)(void*);
  void (*free_ids)(int*);
  void (*free_string)(char*);
  int (*train)(const char*, char**);
};

// Where the module may be: $VIDGEN_SENTENCEPIECE_MODULE, beside the executable, ../lib from it, and the build tree.
std::vector<std::string> Candidates() {
  std::vector<std::string> paths;
  if (const char* path = std::getenv("VIDGEN_SENTENCEPIECE_MODULE"); path && *path) paths.emplace_back(path);
  std::error_code error;
  const auto exe_dir = std::filesystem::read_symlink("/proc/self/exe", error).parent_path();
  if (!error) {
    paths.push_back((exe_dir / kModuleName).string());
    paths.push_back((exe_dir.parent_path() / "lib" / kModuleName).string());
  }
  paths.emplace_back(VIDGEN_SENTENCEPIECE_MODULE_PATH);
  return paths;
}

const ShimApi& Api() {
  static ShimApi api{};
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    void* handle = nullptr;
    std::string tried;
    for (const auto& path : Candidates()) {
      if (!std::filesystem::exists(path)) continue;
      handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle) break;
      tried += fmt::format(" {} ({})", path, ::dlerror());
    }
    if (!handle) {
      failure = fmt::format("cannot load {} (set VIDGEN_SENTENCEPIECE_MODULE):{}", kModuleName, tried);
      return;
    }
    auto symbol = [&](const char* name) {
      void* p = ::dlsym(handle, name);
      if (!p) failure = fmt::format("{} lacks {}", kModuleName, name);
      return p;
    };
    api.load = reinterpret_cast<decltype(api.load)>(symbol("vidgen_spm_load"));
    api.encode = reinterpret_cast<decltype(api.encode)>(symbol("vidgen_spm_encode"));
    api.vocab_size = reinterpret_cast<decltype(api.vocab_size)>(symbol("vidgen_spm_vocab_size"));
    api.free_processor = reinterpret_cast<decltype(api.free_processor)>(symbol("vidgen_spm_free"));
    api.free_ids = reinterpret_cast<decltype(api.free_ids)>(symbol("vidgen_spm_free_ids"));
    api.free_string = reinterpret_cast<decltype(api.free_string)>(symbol("vidgen_spm_free_string"));
    api.train = reinterpret_cast<decltype(api.train)>(symbol("vidgen_spm_train"));
  });
  if (!failure.empty()) throw Error(ErrorCode::kFailedPrecondition, failure);
  return api;
}

std::string TakeError(const ShimApi& api, char* error) {
  std::string text = error ? error : "unknown error";
  if (error) api.free_string(error);
  return text;
}

}  // namespace

SentencePiece::SentencePiece(const std::string& model_path) {
  if (!std::filesystem::exists(model_path)) {
    Fail(ErrorCode::kNotFound, "sentencepiece model '{}' does not exist", model_path);
  }
  // What libsentencepiece would trust blindly is checked first, and a probe prompt is encoded, so that a bad model
  // fails its load instead of a job.
  // The bytes checked are the bytes loaded.
  const auto file = io::MappedFile::Open(model_path);
  io::CheckSentencePieceModel(file->bytes(), model_path);
  const auto& api = Api();
  char* error = nullptr;
  processor_ = api.load(reinterpret_cast<const char*>(file->bytes().data()), file->size(), &error);
  if (!processor_) {
    Fail(ErrorCode::kInvalidArgument, "cannot load the sentencepiece model '{}': {}", model_path,
         TakeError(api, error));
  }
  try {
    Encode("A probe: the quick brown fox, 42 × café — 日本語.");
  } catch (const Error& e) {
    api.free_processor(processor_);
    processor_ = nullptr;
    Fail(ErrorCode::kInvalidArgument, "the sentencepiece model '{}' cannot encode a probe prompt: {}", model_path,
         e.what());
  }
}

SentencePiece::~SentencePiece() {
  if (processor_) Api().free_processor(processor_);
}

std::vector<int> SentencePiece::Encode(std::string_view text) const {
  const auto& api = Api();
  int* ids = nullptr;
  std::size_t count = 0;
  char* error = nullptr;
  if (api.encode(processor_, text.data(), text.size(), &ids, &count, &error) != 0) {
    Fail(ErrorCode::kInvalidArgument, "cannot tokenize the text: {}", TakeError(api, error));
  }
  std::vector<int> out(ids, ids + count);
  api.free_ids(ids);
  return out;
}

int SentencePiece::vocab_size() const {
  return Api().vocab_size(processor_);
}

void TrainSentencePiece(const std::vector<std::string>& sentences, const std::string& model_path,
                        const SentencePieceTraining& options) {
  const auto& api = Api();
  if (!model_path.ends_with(".model")) {
    Fail(ErrorCode::kInvalidArgument, "a sentencepiece model path must end in .model, got '{}'", model_path);
  }
  const std::string prefix = model_path.substr(0, model_path.size() - std::strlen(".model"));
  const std::string input = prefix + ".sentences.txt";
  {
    std::ofstream out(input);
    for (const auto& sentence : sentences) out << sentence << "\n";
    if (!out) Fail(ErrorCode::kUnavailable, "cannot write '{}'", input);
  }
  const std::string arguments = fmt::format(
      "--input={} --model_prefix={} --vocab_size={} --model_type={} --character_coverage=1.0 --pad_id={} "
      "--eos_id={} --unk_id={} --bos_id={} --hard_vocab_limit=false --num_threads=1 --minloglevel=2",
      input, prefix, options.vocab_size, options.model_type, options.pad_id, options.eos_id, options.unk_id,
      options.bos_id);
  char* error = nullptr;
  const int status = api.train(arguments.c_str(), &error);
  std::filesystem::remove(input);
  std::filesystem::remove(prefix + ".vocab");
  if (status != 0) Fail(ErrorCode::kInvalidArgument, "sentencepiece training failed: {}", TakeError(api, error));
}

}  // namespace vidgen::text
