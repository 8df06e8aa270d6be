// Reading the config.json files of checkpoints: one parse with errors that name the file, and typed fields that
// keep their defaults when absent.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json.h"

namespace vidgen::io {

class JsonConfig {
 public:
  // Tokenizer files of large vocabularies are about 10 MB; a config is a few KB.
  static constexpr std::uintmax_t kMaxBytes = std::uintmax_t{64} << 20;

  // `what` names the kind of file in errors ("Wan config"). Throws Error(NOT_FOUND) when the file cannot be read,
  // Error(INVALID_ARGUMENT) when it is larger than kMaxBytes, nests too deep or is not a JSON object.
  JsonConfig(const std::string& path, std::string what)
      : path_(path), what_(std::move(what)), json_(ReadJsonFile(path, what_, kMaxBytes)) {
    if (!json_.is_object()) Fail(ErrorCode::kInvalidArgument, "{} '{}' is not a JSON object", what_, path);
  }

  // Reads `key` into `field` when present and not null; throws Error(INVALID_ARGUMENT) naming it on a wrong type.
  template <typename T>
  void Read(const char* key, T& field) const {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return;
    try {
      it->get_to(field);
    } catch (const nlohmann::json::exception&) {
      Fail(ErrorCode::kInvalidArgument, "{} '{}': '{}' has the wrong type ({})", what_, path_, key, JsonExcerpt(*it));
    }
  }

  // Continues reading inside an object member (a CLIP model's "text_config"), when there is one.
  void Descend(const char* key) {
    if (json_.contains(key) && json_.at(key).is_object()) json_ = nlohmann::json(json_.at(key));
  }

  const nlohmann::json& json() const { return json_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, what_;
  nlohmann::json json_;
};

}  // namespace vidgen::io
